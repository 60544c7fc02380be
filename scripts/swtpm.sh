#!/usr/bin/env bash
# The Azure CVM provider's tests run against Debian's software TPM (swtpm, TPM 2.0 over TCP; tests/support/swtpm.py
# starts and provisions one per test module). Install it when it is missing and this machine may (root with apt-get);
# never fails the run on its own.
set -u
SWTPM=/usr/bin/swtpm
if [ ! -x "$SWTPM" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "swtpm: installing Debian's swtpm"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq swtpm swtpm-tools >/dev/null || true
fi
[ -x "$SWTPM" ] && "$SWTPM" --version || echo "swtpm: $SWTPM not available"
exit 0

#!/usr/bin/env bash
# The dashboard's browser tests drive Debian's chromium (Playwright from PyPI, launched with
# executable_path=/usr/bin/chromium; Playwright's own browser downloads are not reachable here). Install it when it
# is missing and this machine may (root with apt-get); never fails the run on its own.
set -u
CHROMIUM=/usr/bin/chromium
if [ ! -x "$CHROMIUM" ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "browser: installing Debian's chromium"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || true
fi
[ -x "$CHROMIUM" ] && "$CHROMIUM" --version || echo "browser: $CHROMIUM not available"
exit 0

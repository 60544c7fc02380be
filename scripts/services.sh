#!/usr/bin/env bash
# Make sure the local PostgreSQL and Redis answer (start them if this machine has them but they stopped).
# The Intel verifier tests do not need them yet; later suites do. Never fails the run on its own.
set -u
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if command -v redis-cli >/dev/null 2>&1 && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "services: starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
command -v pg_isready >/dev/null 2>&1 && pg_isready -h 127.0.0.1 -p 5432 || echo "services: PostgreSQL not available"
command -v redis-cli >/dev/null 2>&1 && redis-cli -h 127.0.0.1 -p 6379 ping || echo "services: Redis not available"
exit 0

#!/usr/bin/env bash
# Start the local PostgreSQL (used by the postgres-marked tests) when it is installed but down.
set -u
if command -v pg_isready >/dev/null 2>&1 && pg_isready -h 127.0.0.1 -p 5432 -q; then
  exit 0
fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  ver=$(ls /etc/postgresql | head -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start >/dev/null 2>&1 || true
  for _ in $(seq 1 30); do
    pg_isready -h 127.0.0.1 -p 5432 -q && exit 0
    sleep 0.5
  done
  echo "warning: PostgreSQL did not come up; postgres tests will be skipped" >&2
else
  echo "note: no local PostgreSQL; postgres tests will be skipped" >&2
fi
exit 0

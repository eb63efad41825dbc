#!/usr/bin/env bash
# The whole test suite. Uses Postgres and Redis on 127.0.0.1 when they answer (CI requires them),
# else SQLite and the filesystem broker; the integration tests that need a real broker then skip.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

reachable() { "$BIN/python" -c "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 2)" "$1" "$2" 2>/dev/null; }

if [ -z "${DATABASE_URL:-}" ] && reachable 127.0.0.1 5432; then
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/advisor"
fi
if [ -z "${CELERY_BROKER_URL:-}" ] && reachable 127.0.0.1 6379; then
  export CELERY_BROKER_URL="redis://127.0.0.1:6379/15"
fi
echo "test database: ${DATABASE_URL:-sqlite (var/)}"
echo "test broker:   ${CELERY_BROKER_URL:-filesystem (var/broker)}"

echo "== lint"
"$BIN/ruff" check .
"$BIN/ruff" format --check .
"$BIN/mypy"
echo "== migrations are complete"
env -u DATABASE_URL "$BIN/python" manage.py makemigrations --check --dry-run
echo "== pytest"
# --create-db: a clean checkout or a changed migration never reuses a stale test database.
exec "$BIN/pytest" --create-db "$@"

#!/usr/bin/env bash
# The full test suite, as CI runs it: lint, layer contract, then pytest on SQLite and on
# PostgreSQL (a throwaway cluster started here). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh test

echo "== ruff"
.venv/bin/ruff check .
echo "== import layers"
.venv/bin/lint-imports --no-cache

echo "== tests on SQLite"
env -u TEST_DATABASE_URL .venv/bin/pytest "$@"

pgdir="$(mktemp -d /tmp/burgernet-pg.XXXXXX)"
pgport="$(.venv/bin/python -c 'from core.redis_server import free_port; print(free_port())')"
trap 'scripts/pg.sh stop "$pgdir"; rm -rf "$pgdir"' EXIT
scripts/pg.sh start "$pgdir" "$pgport"
echo "== tests on PostgreSQL (port $pgport)"
TEST_DATABASE_URL="postgresql+psycopg://burgernet@127.0.0.1:$pgport/postgres" .venv/bin/pytest "$@"

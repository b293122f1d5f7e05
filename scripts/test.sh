#!/usr/bin/env bash
# The full test suite, as CI runs it: lint, layer contract, types (mypy), then pytest on
# SQLite and on PostgreSQL (a throwaway cluster started here) side by side, since the suite
# spends more than half its time waiting on servers, browsers and calls. The fault suite
# (tests/faults: real processes killed and restarted) runs each fault once, shared between
# the passes (FAULT_PASS, tests/faults/conftest.py). Each run's output is printed when both
# are done; the exit status is non-zero if either failed. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh test

echo "== ruff"
.venv/bin/ruff check .
echo "== import layers"
.venv/bin/lint-imports --no-cache
echo "== types (strict: core, routing; the rest: check_untyped_defs, see pyproject.toml)"
.venv/bin/mypy --strict -p core -p routing
.venv/bin/mypy -p ivr -p outbound -p web

work="$(mktemp -d /tmp/burgernet-test.XXXXXX)"
# The cluster gets its own directory: as root, pg.sh hands it to the postgres user, who
# cannot enter the private $work.
pgdir="$(mktemp -d /tmp/burgernet-pg.XXXXXX)"
pgport="$(.venv/bin/python -c 'from core.redis_server import free_port; print(free_port())')"
trap 'scripts/pg.sh stop "$pgdir"; rm -rf "$work" "$pgdir"' EXIT
scripts/pg.sh start "$pgdir" "$pgport"

echo "== tests on SQLite and on PostgreSQL (port $pgport), side by side"
started=$SECONDS
env -u TEST_DATABASE_URL FAULT_PASS=sqlite .venv/bin/pytest "$@" >"$work/sqlite.log" 2>&1 &
sqlite=$!
TEST_DATABASE_URL="postgresql+psycopg://burgernet@127.0.0.1:$pgport/postgres" \
  FAULT_PASS=postgresql .venv/bin/pytest "$@" >"$work/postgresql.log" 2>&1 &
postgresql=$!
status=0
wait "$sqlite" || status=1
wait "$postgresql" || status=1
echo "== tests on SQLite"
cat "$work/sqlite.log"
echo "== tests on PostgreSQL"
cat "$work/postgresql.log"
echo "== both in $((SECONDS - started)) s"
exit "$status"

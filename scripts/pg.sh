#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: `pg.sh start DIR PORT` / `pg.sh stop DIR [MODE]`.
# Start again on an existing DIR restarts the cluster with its data; MODE is pg_ctl's shutdown
# mode (fast, or immediate: no checkpoint, recovery at the next start), for the fault tests.
# PG_OPTIONS are added to the server's options: synchronous_commit=on for a test that crashes
# the server (off, a transaction may be lost in a crash after its commit returned).
# Runs as the postgres system user when started as root (PostgreSQL refuses root). Its time
# zone is the one tests/conftest.py gives the tests, not the developer's: neither UTC nor Dutch.
set -euo pipefail
bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
cmd="$1"; dir="$2"
run() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "$cmd" in
  start)
    port="$3"
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    if [ ! -d "$dir/data" ]; then
      run "$bin/initdb" -D "$dir/data" -U burgernet --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    run "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c jit=off -c timezone=America/St_Johns ${PG_OPTIONS:-}" start >/dev/null
    ;;
  stop)
    run "$bin/pg_ctl" -D "$dir/data" -m "${3:-fast}" -w stop >/dev/null || true
    ;;
esac

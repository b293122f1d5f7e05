#!/usr/bin/env bash
# Installs what the project needs on Debian 12: system packages (only those missing, via apt)
# and the Python dependencies in .venv. Sourced by demo.sh and test.sh; safe to run again.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# $1: "run" installs what the demo needs, "test" adds the test peers.
need="${1:-run}"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# Prompts: espeak-ng speaks when Google is out of reach, sox converts to 8 kHz (and reads MP3).
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v sox >/dev/null 2>&1 || missing+=(sox)
ls /usr/lib/*/sox/libsox_fmt_mp3.so >/dev/null 2>&1 || missing+=(libsox-fmt-mp3)
if [ "$need" = test ]; then
  # The SIP peers of the integration tests.
  command -v kamailio >/dev/null 2>&1 || missing+=(kamailio)
  # Kamailio's lost and http_client modules: a real LoST client for /lost.
  ls /usr/lib/*/kamailio/modules/lost.so >/dev/null 2>&1 || missing+=(kamailio-utils-modules)
  command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
  # Redis without a single point of failure: a primary, a replica and three sentinels.
  command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
  ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1 \
    || missing+=(postgresql-15-postgis-3)
  # A real Prometheus scrapes a running system; promtool checks and tests the alert rules.
  command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
  # The browser of the web UI tests, driven by Playwright (which downloads no browser).
  command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing ${missing[*]} (apt)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  if ! "$PYTHON" -m venv .venv >/dev/null 2>&1; then
    # Debian's own Python ships venv separately.
    rm -rf .venv
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3-venv >/dev/null
    "$PYTHON" -m venv .venv
  fi
fi
# The versions in constraints.txt, which the tests last passed with (scripts/lock.sh renews it):
# a fresh clone must not pick up a release nobody has tested.
stamp=".venv/.installed-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "== installing Python dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi

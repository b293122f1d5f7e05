#!/usr/bin/env bash
# The whole system with demo data, until Ctrl-C: see README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh run
exec .venv/bin/burgernet run "$@"

#!/usr/bin/env bash
# Refreshes constraints.txt: the newest releases that pyproject.toml admits, resolved in a
# throwaway virtualenv. Run it on purpose (then run the test command), never from CI: a fresh
# clone installs exactly the versions the last green run was tested with.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch="$(mktemp -d /tmp/burgernet-lock.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
"${PYTHON:-python3}" -m venv "$scratch/venv"
"$scratch/venv/bin/python" -m pip install -q --upgrade pip
"$scratch/venv/bin/python" -m pip install -q -e '.[dev]'
{
  echo "# Exact versions for scripts/setup.sh (pip install -c constraints.txt)."
  echo "# Made by scripts/lock.sh on $(date -u +%Y-%m-%d) with $("$scratch/venv/bin/python" -V)."
  # --all: setuptools too (a dev dependency: the wheel test builds without isolation)
  "$scratch/venv/bin/python" -m pip freeze --all --exclude-editable | grep -v '^pip=='
} > constraints.txt
echo "constraints.txt: $(grep -c '==' constraints.txt) packages"

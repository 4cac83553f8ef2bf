#!/usr/bin/env bash
# Installs what the tests need (a venv in .venv, the package with its test extras), then runs
# the linter and the whole test suite. Usage: bash scripts/test.sh [pytest args…]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test,postgres,redis]'
.venv/bin/ruff check src tests bench
.venv/bin/python -m pytest -q "$@"

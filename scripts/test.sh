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
# Browser tests (tests/e2e) drive Debian's Chromium through Playwright; no browser download.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } \
    || echo "scripts/test.sh: could not install chromium; browser tests will be skipped" >&2
fi
.venv/bin/ruff check src tests bench
.venv/bin/python -m pytest -q "$@"

#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh machine, idempotently:
# system packages (Chromium renders the HTML report in a test; PostgreSQL serves the
# catalog tests, which must pass on a real server as well as on SQLite), a virtual
# environment in .venv, and the project with its dev extras.
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL is present when Debian's versioned bin dir (not on PATH) or PATH has initdb.
have_postgres() {
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null 2>&1 \
    || { command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; }
}

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
have_postgres || missing+=(postgresql)

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = "0" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup-dev: missing system packages: ${missing[*]}; install them" \
      "(sudo apt-get install -y ${missing[*]}) or rerun this script as root" >&2
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q -e ".[dev]"
echo "setup-dev: ready (.venv)"

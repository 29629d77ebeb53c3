#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh machine, idempotently:
# system packages (Chromium renders the HTML report in a test), a virtual
# environment in .venv, and the project with its dev extras.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
  else
    echo "setup-dev: chromium is missing; install it (sudo apt-get install -y chromium)" >&2
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q -e ".[dev]"
echo "setup-dev: ready (.venv)"

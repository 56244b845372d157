#!/usr/bin/env bash
# Installs what the tests need (system packages included) and runs the whole suite.
# Tests are spread over FAB_TEST_WORKERS pytest-xdist workers (default 4: fleet tests
# mostly wait on SSH, process starts and health checks, so even 2 cores run 4 fleets),
# each with a fleet of its own. Extra arguments go to pytest, e.g. scripts/test.sh -k lifecycle
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh requirements-dev.txt
exec .venv/bin/python -m pytest -n "${FAB_TEST_WORKERS:-4}" --dist loadgroup "$@"

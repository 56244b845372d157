#!/usr/bin/env bash
# Sets everything up and deploys the sample app to the built-in sandbox:
# three local SSH hosts (web1, web2 on webworkers; pillow1 on pillowtop).
# Safe to run again: each run makes and deploys a new release.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh requirements.txt
.venv/bin/python -m fab.sandbox up
.venv/bin/fab sandbox deploy
echo
echo "The sample app answers at:"
for address in 127.0.0.11 127.0.0.12; do
  echo "  http://$address:8000/        (/health, /version)"
done
echo "Try: .venv/bin/fab sandbox releases    Stop the fleet: .venv/bin/python -m fab.sandbox down"

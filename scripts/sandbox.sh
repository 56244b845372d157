#!/usr/bin/env bash
# Sets everything up and deploys the sample app to the built-in sandbox:
# four local SSH hosts (web1, web2: webworkers; pillow1: pillowtop; proxy1: proxy, nginx).
# Safe to run again: each run makes and deploys a new release.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh requirements.txt
.venv/bin/python -m fab.sandbox up
# A history store an older checkout made is brought to this version's schema (a new one is made).
.venv/bin/fab sandbox history_upgrade >/dev/null
.venv/bin/fab sandbox deploy
echo
echo "The sample app answers through the proxy at http://127.0.0.14:8080/ (/health, /version)"
echo "and on each web host at http://127.0.0.11:8000/ and http://127.0.0.12:8000/."
echo "Commit changes to the app in /srv/fab-sandbox/app-src (git push), then deploy again."
echo "Try: .venv/bin/fab sandbox releases    Stop the fleet: .venv/bin/python -m fab.sandbox down"
echo "The team's web page over the history: .venv/bin/fab dashboard, then http://127.0.0.1:8465/"

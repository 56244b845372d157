#!/usr/bin/env bash
# This project timed beside real deployers, in one command: ../shared/peers/bench.sh with
# the project as a peer (peers/project/run.sh), then its results table.
#
#   bash bench/peers.sh [bench.sh options]
#     default: -r 3 -n "1 5" -p "project <every installed peer> ssh-floor"
#     e.g.     bash bench/peers.sh -r 1 -n 1 -p "project ssh-floor"     (a few minutes)
#
# Needs root. The project is run from a clean clone of this checkout's committed HEAD
# (uncommitted changes are not timed) in $PEERS_PROJECT (/tmp/peers-project), updated to
# that commit first and set up with peers/setup.sh project (its bootstrap, apt virtualenv)
# when it is not yet. The other peers are not installed here: `peers/setup.sh capistrano
# shipit ansistrano` does that (see peers/README.md); those missing are left out of the
# default list. Hosts: peers' own (127.0.0.15-19 here, port 2322, users deploy<i>),
# started and stopped by bench.sh. Results: /tmp/peers-results/<stamp>/results.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
project="$(dirname "$here")"
harness="${PEERS_HARNESS:-$(cd "$project/../shared/peers" 2>/dev/null && pwd || true)}"
[ -x "$harness/bench.sh" ] || { echo "peers.sh: no peers harness at ${harness:-../shared/peers} (set PEERS_HARNESS)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "peers.sh: needs root (the peers' hosts are sshd instances and users)" >&2; exit 1; }

export PEERS_PROJECT_SRC="${PEERS_PROJECT_SRC:-$project}"
export PEERS_PROJECT="${PEERS_PROJECT:-/tmp/peers-project}"
# Clear of the sandbox (127.0.0.11-14) and the test fleets (127.0.0.21-24).
export PEERS_ADDR_FIRST="${PEERS_ADDR_FIRST:-15}"
source "$harness/lib.sh"

installed() { # peer -> 0 when its tool is installed
  case $1 in
    project) [ -x "$PEERS_PROJECT/.venv/bin/fab" ] ;;
    ssh-floor) true ;;
    capistrano) command -v cap >/dev/null ;;
    shipit) [ -x "$PEERS_NODE/node_modules/.bin/shipit" ] ;;
    ansistrano|ansistrano-pipelining)
      [ -x "$PEERS_ANSIBLE_VENV/bin/ansible-playbook" ] && [ -f "$PEERS_SRC/ansistrano.deploy/tasks/main.yml" ] ;;
    *=*) true ;;
    *) false ;;
  esac
}

# The options, with -p filled in when not given.
args=("$@") peers=""
for ((i = 0; i < ${#args[@]}; i++)); do
  [ "${args[$i]}" = -p ] && peers="${args[$((i + 1))]:-}"
done
if [ -z "$peers" ]; then
  peers="project"
  for peer in capistrano shipit ansistrano; do
    if installed "$peer"; then peers+=" $peer"; else echo "peers.sh: $peer is not installed: left out (peers/setup.sh $peer)" >&2; fi
  done
  peers+=" ssh-floor"
  [ ${#args[@]} -gt 0 ] || args=(-r 3 -n "1 5")
  args+=(-p "$peers")
fi

# The project under test: a clean clone at this checkout's HEAD.
if [[ " $peers " == *" project "* ]]; then
  commit=$(git -C "$PEERS_PROJECT_SRC" rev-parse HEAD)
  if [ -d "$PEERS_PROJECT/.git" ]; then
    git -C "$PEERS_PROJECT" fetch -q "$PEERS_PROJECT_SRC" "$commit"
    git -C "$PEERS_PROJECT" checkout -q -f --detach "$commit"
    git -C "$PEERS_PROJECT" clean -q -fdx -e .venv
  fi
  "$harness/setup.sh" project >&2                           # clones when missing, bootstraps
  (cd "$PEERS_PROJECT" && bash scripts/bootstrap.sh >&2)     # new requirements, if any
  echo "peers.sh: project at $(git -C "$PEERS_PROJECT" log -1 --format='%h %s' | cut -c1-70)" >&2
fi
for peer in $peers; do
  installed "$peer" || { echo "peers.sh: $peer is not installed (peers/setup.sh ${peer%-pipelining})" >&2; exit 1; }
done

"$harness/bench.sh" "${args[@]}" >&2
latest=$(ls -1d "$PEERS_RESULTS"/*/ | sort | tail -n 1)
echo
echo "Peers and this project, one run ($latest):"
echo
cat "$latest/results.md"

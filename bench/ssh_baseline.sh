#!/usr/bin/env bash
# BASELINE, not a deployer: about the least a symlink-release deploy must do, as
# ../shared/peers/ssh-floor/run.sh does it, with the bench environments' own settings
# (their virtualenv command, python, wheelhouse, keep 3). One OpenSSH session per host,
# all hosts in parallel, one shell script piped into `bash -s`:
#   git cache (mirror clone, or fetch) -> git archive into releases/<ts> -> virtualenv +
#   offline pip install -> atomic `current` swap -> keep 3.
#
#   bench/ssh_baseline.sh SSH_CONFIG TREE REPO HOST...
#     TREE: the deploy tree, relative to each host user's home (e.g. www/bench-floor)
#   Settings (environment): BASELINE_VIRTUALENV, BASELINE_PYTHON, BASELINE_WHEELHOUSE,
#   BASELINE_BRANCH (defaults: the sandbox tools' virtualenv, /usr/bin/python3, their
#   wheelhouse, main).
set -euo pipefail
ssh_config=${1:?SSH_CONFIG}; tree=${2:?TREE}; repo=${3:?REPO}; shift 3
[ $# -gt 0 ] || { echo "usage: $0 SSH_CONFIG TREE REPO HOST..." >&2; exit 2; }
virtualenv=${BASELINE_VIRTUALENV:-/opt/fab-sandbox-tools/bin/virtualenv}
python=${BASELINE_PYTHON:-/usr/bin/python3}
wheels=${BASELINE_WHEELHOUSE:-/opt/fab-sandbox-tools/wheelhouse}
branch=${BASELINE_BRANCH:-main}
ts=$(date -u +%Y%m%d%H%M%S)

script=$(cat <<SH
set -e
d=\$HOME/$tree
mkdir -p \$d/releases
if [ -d \$d/repo ]; then git -C \$d/repo remote update --prune >/dev/null
else git clone -q --mirror $repo \$d/repo; fi
r=\$d/releases/$ts
mkdir \$r
git -C \$d/repo archive $branch | tar -x -C \$r
git -C \$d/repo rev-parse $branch > \$r/REVISION
cd \$r
$virtualenv --quiet --python $python python_env
./python_env/bin/pip install -q --no-index --find-links $wheels -r requirements.txt
ln -sfn releases/$ts \$d/current.tmp && mv -T \$d/current.tmp \$d/current
cd \$d/releases && ls -1 | sort | head -n -3 | xargs -r rm -rf
SH
)

pids=()
for host in "$@"; do
  ssh -F "$ssh_config" -o BatchMode=yes "$host" bash -s <<<"$script" &
  pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit $rc

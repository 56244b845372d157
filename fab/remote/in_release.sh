# Runs the environment's own commands (config text, trusted as it is) in a release
# as the release's programs see it: in the release directory $2, with its
# virtualenv first on PATH and, when $3 names a file, the environment's secrets
# exported. The commands run in order, in this shell, under set -e.
#   $1 run: the commands are $4...
#   $1 check: first checks that the release can run: its python starts and each
#      service config exists ($4 how many, then the configs); the commands (the
#      environment's checks) follow the configs. Prints "ready".
mode=$1
release=$2
secrets=$3
shift 3
cd "$release" || exit 1
set -e
if [ "$mode" = check ]; then
  count=$1
  shift
  python_env/bin/python -c 'import sys' || { echo "python_env does not run" >&2; exit 1; }
  for conf in "${@:1:count}"; do [ -f "$conf" ] || { echo "missing $conf" >&2; exit 1; }; done
  shift "$count"
elif [ "$mode" != run ]; then
  echo "in_release.sh: unknown mode ${mode@Q}" >&2
  exit 2
fi
export PATH="$PWD/python_env/bin:$PATH" VIRTUAL_ENV="$PWD/python_env"
# shellcheck source=/dev/null  # the environment's secrets.env, KEY='value' lines
if [ -n "$secrets" ]; then set -a; . "$secrets"; set +a; fi
for command in "$@"; do eval "$command"; done
if [ "$mode" = check ]; then echo ready; fi

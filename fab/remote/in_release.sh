# Runs the environment's own commands (config text, trusted as it is) in a release
# as the release's programs see it: in the release directory $2, with its
# virtualenv first on PATH and, when $3 names a file, the environment's secrets
# exported. The commands run in order, in this shell, under set -e.
#   $4 the release's link to its virtualenv (fab.paths.VENV_LINK; "": it has none,
#      its host runs no app code)
#   $1 run: the commands are $5...
#   $1 check: first checks that the release can run: its python starts (if it has
#      a virtualenv) and each service config exists ($5 how many, then the configs);
#      the commands (the environment's checks) follow the configs. Prints "ready".
mode=$1
release=$2
secrets=$3
venv_link=$4
shift 4
cd "$release" || exit 1
set -e
if [ "$mode" = check ]; then
  count=$1
  shift
  if [ -n "$venv_link" ]; then
    "$venv_link/bin/python" -c 'import sys' || { echo "$venv_link does not run" >&2; exit 1; }
  fi
  for conf in "${@:1:count}"; do [ -f "$conf" ] || { echo "missing $conf" >&2; exit 1; }; done
  shift "$count"
elif [ "$mode" != run ]; then
  echo "in_release.sh: unknown mode ${mode@Q}" >&2
  exit 2
fi
if [ -n "$venv_link" ]; then export PATH="$PWD/$venv_link/bin:$PATH" VIRTUAL_ENV="$PWD/$venv_link"; fi
# shellcheck source=/dev/null  # the environment's secrets.env, KEY='value' lines
if [ -n "$secrets" ]; then set -a; . "$secrets"; set +a; fi
for command in "$@"; do eval "$command"; done
if [ "$mode" = check ]; then echo ready; fi

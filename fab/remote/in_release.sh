# Runs the environment's own commands (config text, trusted as it is) in a release
# as the release's programs see it: in the release directory $2, with its
# virtualenv first on PATH and, when $3 names a file, the environment's secrets
# exported. The commands run in order, in this shell, under set -e.
#   $4 the release's link to its virtualenv (fab.paths.VENV_LINK; "": it has none,
#      its host runs no app code)
#   $1 run: the commands are $5...
#   $1 check: first checks that the release can run: its python starts (if it has
#      a virtualenv) and each service config exists ($6 how many, then the configs);
#      the commands (the environment's checks) follow the configs. Prints "ready".
#      $5 the file in the venv that names the interpreter that last started there
#      (fab.paths.VENV_STARTED): starting python costs a host about 10 ms, so it
#      is started again only when the venv's interpreter is another file (its
#      inode and change time, which any reinstall or upgrade changes).
mode=$1
release=$2
secrets=$3
venv_link=$4
shift 4
cd "$release" || exit 1
set -e
if [ "$mode" = check ]; then
  started=$1
  count=$2
  shift 2
  if [ -n "$venv_link" ]; then
    interpreter=$(find -L "$venv_link/bin/python" -maxdepth 0 -type f -printf '%i %C@' 2>/dev/null) || interpreter=
    seen=
    if [ -f "$venv_link/$started" ]; then { read -r seen || true; } < "$venv_link/$started"; fi
    if [ -z "$interpreter" ] || [ "$seen" != "$interpreter" ]; then
      "$venv_link/bin/python" -c 'import sys' || { echo "$venv_link does not run" >&2; exit 1; }
      if [ -n "$interpreter" ]; then printf '%s\n' "$interpreter" > "$venv_link/$started" || true; fi
    fi
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

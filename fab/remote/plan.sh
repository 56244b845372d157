# Prints what a plan needs from a host, one fact per line. Read-only: it writes
# nothing anywhere and starts nothing but the interpreter's version check.
#   $1 the venvs dir, $2 the file a complete venv has (Paths.venvs, fab.paths.VENV_COMPLETE)
#   $3 the current release's dir ("" if none), $4 its link to its venv, $5 its
#      services dir (Paths.release, fab.paths.VENV_LINK, SERVICES)
#   $6 the deploy lock file, $7 its owner record (Paths.lock, .lock_owner)
#   $8 python ("": skip)   $9... requirements files (relative to a release)
# (fab.operations.plan_facts.arguments builds them.)
# Lines:
#   python <base64 of `python -c "import sys; print(sys.version)"`> | python-failed <reason>
#   venv <key>                       a complete virtualenv
#   current-venv <key>               the venv the current release links to
#   requirement <file> <base64>      a requirements file of the current release
#   config <control>/<file> <base64> a rendered service config of the current release
#   lock <base64 of the owner record> while a live task holds the deploy lock
venvs=$1
complete_file=$2
release=$3
venv_link=$4
services=$5
lockfile=$6
owner=$7
python=$8
shift 8
if [ -n "$python" ]; then
  # Exactly the bytes the virtualenv step hashes (stdout only).
  if version=$("$python" -S -c 'import sys; print(sys.version)' 2>/dev/null | base64 -w0; exit "${PIPESTATUS[0]}"); then
    printf 'python %s\n' "$version"
  else
    printf 'python-failed %s\n' "$("$python" -c 'import sys' 2>&1 | tail -n1)"
  fi
fi
for complete in "$venvs"/*/"$complete_file"; do
  [ -f "$complete" ] && printf 'venv %s\n' "$(basename "$(dirname "$complete")")"
done
if [ -n "$release" ] && [ -d "$release" ]; then
  if [ -L "$release/$venv_link" ]; then
    printf 'current-venv %s\n' "$(basename "$(readlink "$release/$venv_link")")"
  fi
  for file in "$@"; do
    [ -f "$release/$file" ] && printf 'requirement %s %s\n' "$file" "$(base64 -w0 < "$release/$file")"
  done
  for conf in "$release/$services"/*/*.conf; do
    [ -f "$conf" ] || continue
    control=$(basename "$(dirname "$conf")")
    printf 'config %s/%s %s\n' "$control" "$(basename "$conf")" "$(base64 -w0 < "$conf")"
  done
fi
# The lock is held by a live process (lock.sh) whose command line names this lock file.
if [ -f "$owner" ]; then
  pid=$(sed -n 's/.*"lock_pid": \([0-9][0-9]*\).*/\1/p' "$owner")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$lockfile"; then
    printf 'lock %s\n' "$(base64 -w0 < "$owner")"
  fi
fi
true

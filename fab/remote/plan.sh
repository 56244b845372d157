# Prints what a plan needs from a host, one fact per line. Read-only: it writes
# nothing anywhere and starts nothing but the interpreter's version check.
#   $1 code root   $2 the current release ("" if none)   $3 python ("": skip)
#   $4... requirements files (relative to a release)
# Lines:
#   python <base64 of `python -c "import sys; print(sys.version)"`> | python-failed <reason>
#   venv <key>                       a complete virtualenv under venvs/
#   current-venv <key>               the venv the current release links to
#   requirement <file> <base64>      a requirements file of the current release
#   config <control>/<file> <base64> a rendered service config of the current release
#   lock <base64 of the owner record> while a live task holds the deploy lock
root=$1
current=$2
python=$3
shift 3
if [ -n "$python" ]; then
  # Exactly the bytes the virtualenv step hashes (stdout only).
  if version=$("$python" -S -c 'import sys; print(sys.version)' 2>/dev/null | base64 -w0; exit "${PIPESTATUS[0]}"); then
    printf 'python %s\n' "$version"
  else
    printf 'python-failed %s\n' "$("$python" -c 'import sys' 2>&1 | tail -n1)"
  fi
fi
for complete in "$root"/venvs/*/.complete; do
  [ -f "$complete" ] && printf 'venv %s\n' "$(basename "$(dirname "$complete")")"
done
if [ -n "$current" ] && [ -d "$root/releases/$current" ]; then
  release="$root/releases/$current"
  if [ -L "$release/python_env" ]; then
    printf 'current-venv %s\n' "$(basename "$(readlink "$release/python_env")")"
  fi
  for file in "$@"; do
    [ -f "$release/$file" ] && printf 'requirement %s %s\n' "$file" "$(base64 -w0 < "$release/$file")"
  done
  for conf in "$release"/services/*/*.conf; do
    [ -f "$conf" ] || continue
    control=$(basename "$(dirname "$conf")")
    printf 'config %s/%s %s\n' "$control" "$(basename "$conf")" "$(base64 -w0 < "$conf")"
  done
fi
# The lock is held by a live process whose command line names this code root.
owner="$root/.deploy.lock.owner"
if [ -f "$owner" ]; then
  pid=$(sed -n 's/.*"lock_pid": \([0-9][0-9]*\).*/\1/p' "$owner")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$root"; then
    printf 'lock %s\n' "$(base64 -w0 < "$owner")"
  fi
fi
true

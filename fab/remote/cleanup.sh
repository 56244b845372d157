# Deletes exactly the releases, virtualenvs and stored wheels it is told, nothing else:
#   $1 the releases directory   $2 the venvs directory
#   $3 how many release names follow; then the release names, then the venv keys;
#   then, optionally, --wheels, the store (Paths.store), the name of a venv's wheel
#   manifest (fab.paths.VENV_WHEELS), and pairs: a stored wheel's sha256, its file.
# Which ones is decided by the deployer (fab.releases, fab.venvs, fab.wheels); every
# name is one path component, checked again here so that none climbs out of its
# directory, and a wheel a remaining venv's manifest names (one made since the
# deployer read the host) is kept.
# Prints "removed <releases> <venvs>" (and " <wheels>" with --wheels). Safe to rerun.
set -e
releases=$1
venvs=$2
count=$3
shift 3
doomed=()
store=
while [ $# -gt 0 ]; do
  if [ "$1" = --wheels ]; then
    store=$2
    manifest=$3
    shift 3
    break
  fi
  case $1 in
    '' | . | .. | */* | -*) echo "refused: ${1@Q} is not a release or venv name" >&2; exit 1 ;;
  esac
  if [ "${#doomed[@]}" -lt "$count" ]; then doomed+=("$releases/$1"); else doomed+=("$venvs/$1"); fi
  shift
done
if [ "${#doomed[@]}" -gt 0 ]; then rm -rf -- "${doomed[@]}"; fi
result="removed $count $((${#doomed[@]} - count))"
if [ -n "$store" ]; then
  used=" "
  for listed in "$venvs"/*/"$manifest"; do
    if [ -f "$listed" ]; then
      while read -r digest _; do used+="$digest "; done < "$listed"
    fi
  done
  removed=0
  while [ $# -gt 1 ]; do
    [[ $1 =~ ^[0-9a-f]{64}$ ]] || { echo "refused: ${1@Q} is not a wheel's sha256" >&2; exit 1; }
    if [[ $used != *" $1 "* ]]; then
      rm -rf -- "${store:?}/$1"
      removed=$((removed + 1))
    fi
    shift 2
  done
  result+=" $removed"
fi
echo "$result"

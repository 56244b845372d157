# Deletes exactly the releases and virtualenvs it is told, nothing else:
#   $1 the releases directory   $2 the venvs directory
#   $3 how many release names follow; then the release names, then the venv keys.
# Which ones is decided by the deployer (fab.releases, fab.venvs); every name is
# one path component, checked again here so that none climbs out of its directory.
# Prints "removed <releases> <venvs>". Safe to rerun.
set -e
releases=$1
venvs=$2
count=$3
shift 3
doomed=()
for name in "$@"; do
  case $name in
    '' | . | .. | */* | -*) echo "refused: ${name@Q} is not a release or venv name" >&2; exit 1 ;;
  esac
  if [ "${#doomed[@]}" -lt "$count" ]; then doomed+=("$releases/$name"); else doomed+=("$venvs/$name"); fi
done
if [ "${#doomed[@]}" -gt 0 ]; then rm -rf -- "${doomed[@]}"; fi
echo "removed $count $(($# - count))"

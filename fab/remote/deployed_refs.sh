# A function the scripts that read the git cache's refs/fab/deployed/ include
# (a line `#@include deployed_refs.sh`: fab.shell.remote_script puts this text
# there): every host reads them on every deploy, so without a git process.
#   deployed_refs <cache> <array>: fills the associative array named <array> with
#   each ref's commit (its name under refs/fab/deployed/) -> the object id it holds,
#   as git's files backend keeps them: a loose ref (a file holding the id) wins
#   over the same name in packed-refs ("<id> <ref>" lines). Returns 1 when the
#   cache keeps its refs otherwise (reftable): then ask git.
# shellcheck disable=SC2034  # `into` is the caller's array (a nameref)
deployed_refs() {
  local cache=$1 id ref file
  local -n into=$2
  [ ! -e "$cache/reftable" ] || return 1
  if [ -f "$cache/packed-refs" ]; then
    while read -r id ref; do
      if [[ $ref == refs/fab/deployed/* && $id =~ ^[0-9a-f]{40,64}$ ]]; then into[${ref#refs/fab/deployed/}]=$id; fi
    done < "$cache/packed-refs"
  fi
  for file in "$cache"/refs/fab/deployed/*; do
    id=
    if [ -f "$file" ]; then read -r id < "$file" || true; fi
    if [[ $id =~ ^[0-9a-f]{40,64}$ ]]; then into[${file##*/}]=$id; fi
  done
  return 0
}

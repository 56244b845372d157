# Deletes exactly the releases and virtualenvs it is told, then tidies what they leave:
#   $1 the releases directory   $2 the venvs directory
#   $3 the store (Paths.store)   $4 the name of a venv's wheel manifest (fab.paths.VENV_WHEELS)
#   $5 minutes an unused store entry is kept (a resume right after a failure finds it)
#   $6 the git cache (Paths.git_cache)   $7 a release's revision file (fab.paths.REVISION)
#   $8 how many of the newest deployed commits keep their ref beside the present releases'
#   $9 how many packs the cache may have before it is repacked
#   $10 how many release names follow; then the release names, then the venv keys.
# Which releases and venvs is decided by the deployer (fab.releases, fab.venvs); every
# name is one path component, checked again here so that none climbs out of its directory.
# Then, on the host itself:
# - the store: an entry (<sha256>/) no remaining venv's manifest names and nothing has
#   written for $5 minutes goes: a wheel no venv uses any more, a bundle never fetched
#   (its deploy failed after the transfer), a transfer's part. A fresh one stays.
# - the git cache: a ref under refs/fab/deployed/ (fab.app_repo.DEPLOYED, the bases of the
#   next bundle) stays for every commit a present release holds (its revision file: a
#   hotfix or a rollback needs it) and for the $8 newest; then, past $9 packs (each
#   bundle fetched makes one; the deploys' fetches never start git's auto-gc), the cache
#   is repacked into one, which keeps what those refs reach and drops the rest. (Refs
#   past the $8 newest are only pruned past twice as many, or before a repack.)
# git writes to the cache through git_in_cache (git_cache_functions.sh, included), which
# removes the lock files a killed git left there.
# Prints "removed <releases> <venvs> <store entries> packs <before> <after>", then
# "; removed stale git locks: <their paths in the cache>" if there were. Safe to rerun.
set -e -o pipefail
#@include git_cache_functions.sh
#@include deployed_refs.sh
releases=$1
venvs=$2
store=$3
manifest=$4
store_minutes=$5
cache=$6
revision=$7
kept_refs=$8
max_packs=$9
count=${10}
shift 10
git_locks_removed=
doomed=()
for name in "$@"; do
  case $name in
    '' | . | .. | */* | -*) echo "refused: ${name@Q} is not a release or venv name" >&2; exit 1 ;;
  esac
  if [ "${#doomed[@]}" -lt "$count" ]; then doomed+=("$releases/$name"); else doomed+=("$venvs/$name"); fi
done
if [ "${#doomed[@]}" -gt 0 ]; then rm -rf -- "${doomed[@]}"; fi

used=" "
for listed in "$venvs"/*/"$manifest"; do
  if [ -f "$listed" ]; then
    while read -r digest _; do used+="$digest "; done < "$listed"
  fi
done
# The age of an entry no venv uses is asked of find (usually there is none: no process).
unneeded=()
for entry in "$store"/*/; do
  entry=${entry%/}
  digest=${entry##*/}
  if [[ $digest =~ ^[0-9a-f]{64}$ && $used != *" $digest "* ]]; then unneeded+=("$entry"); fi
done
unused=()
if [ "${#unneeded[@]}" -gt 0 ]; then
  while read -r entry; do unused+=("$entry"); done < <(
    find "${unneeded[@]}" -maxdepth 0 -type d -mmin "+$store_minutes" -printf '%p\n')
fi
if [ "${#unused[@]}" -gt 0 ]; then rm -rf -- "${unused[@]}"; fi

# Sets pack_count to how many packs the git cache has.
count_packs() {
  local packs=("$cache"/objects/pack/*.pack)
  [ -e "${packs[0]}" ] || packs=()
  pack_count=${#packs[@]}
}
count_packs
before=$pack_count
after=$before
if [ -d "$cache/objects" ]; then
  deployed=refs/fab/deployed/
  declare -A present=()
  for file in "$releases"/*/"$revision"; do
    if [ -f "$file" ] && read -r commit < "$file" && [[ $commit =~ ^[0-9a-f]{40}$ ]]; then present[$commit]=1; fi
  done
  changes=()
  # Refs are pruned to the newest $kept_refs (by git, which knows their dates) only
  # past twice that many, or before a repack: each deploy adds one, and the other
  # deploys need no git process for them.
  declare -A refs=()
  if deployed_refs "$cache" refs && [ "${#refs[@]}" -le $((2 * kept_refs)) ] && [ "$before" -le "$max_packs" ]; then
    for commit in "${!present[@]}"; do
      if [ -n "${refs[$commit]:-}" ]; then unset "present[$commit]"; fi
    done
  else
    newest=0
    while read -r commit; do
      if [ -n "${present[$commit]:-}" ]; then
        unset "present[$commit]"
      elif [ "$newest" -ge "$kept_refs" ]; then
        changes+=("delete $deployed$commit")
      fi
      newest=$((newest + 1))
    done < <(git --git-dir="$cache" for-each-ref --sort=-committerdate --format='%(objectname)' "$deployed")
  fi
  if [ "${#present[@]}" -gt 0 ]; then  # releases made before their commit had a ref
    while read -r commit type; do
      if [ "$type" = commit ]; then changes+=("create $deployed$commit $commit"); fi
    done < <(printf '%s\n' "${!present[@]}" | git --git-dir="$cache" cat-file --batch-check='%(objectname) %(objecttype)')
  fi
  if [ "${#changes[@]}" -gt 0 ]; then
    printf -v changed '%s\n' "${changes[@]}"
    git_in_cache "$cache" "${changed%$'\n'}" update-ref --stdin || git_failed
  fi
  # A failed repack (a full disk) leaves the packs as they were: the cleanup goes on.
  if [ "$before" -gt "$max_packs" ] && git_in_cache "$cache" "" -c gc.auto=0 repack -a -d -q; then
    count_packs
    after=$pack_count
  fi
fi
echo "removed $count $((${#doomed[@]} - count)) ${#unused[@]} packs $before $after${git_locks_removed:+; removed stale git locks: $git_locks_removed}"

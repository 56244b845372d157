# Makes sure the host's bare git cache has a commit, then (export) writes it into a
# release. Where a commit the cache lacks comes from:
#   repository: fetched from the repository (the cache cloned as a mirror the first
#               time), with the credentials the helper gives (app.fetch: hosts);
#   bundle:     fetched from a git bundle the controller sent into the host's store
#               (the cache created empty the first time; the bundle read again only
#               to say why, if that fails), and removed once used (app.fetch:
#               controller). No bundle sent: the controller found the commit in
#               the cache's refs.
# Either way the commit gets a ref under refs/fab/deployed/ (what the host's state
# reports to the controller as a base for its next bundle); cleanup.sh prunes them.
# Every fetch makes one pack and never starts git's auto-gc (a long pause in the
# middle of a deploy, on every host at once): cleanup.sh repacks, past a few packs.
#   $1 fetch: only that.   export: then writes the commit's files into the release
#      directory $7, and the commit into the file $8 (Paths.release_revision).
#   $2 the cache   $3 the commit   $4 repository | bundle
#   $5 the repository's URL without credentials, or the bundle file ("": none sent)
#   $6 the repository as errors name it (credentials masked)
#   $7 the release   $8 its revision file
#   $9... git's options that make it ask the credential helper for the credentials
#        (fab.operations.credentials), loaded into our environment beforehand.
# Every revision reaches git after --end-of-options, every URL and path after --.
# git never prompts. Prints "exported <commit, 12 digits> <from where>" (export).
# Every git command that writes to the cache goes through git_in_cache (included:
# git_cache_functions.sh), which removes the lock files a killed git left
# there; the line then ends "; removed stale git locks: <their paths in the cache>"
# (fetch: that is the only line).
set -e -o pipefail
#@include git_cache_functions.sh
mode=$1
cache=$2
commit=$3
source=$4
from=$5
shown_repo=$6
release=$7
revision_file=$8
shift 8
case $mode in fetch | export) ;; *) echo "checkout.sh: unknown mode ${mode@Q}" >&2; exit 2 ;; esac
case $source in repository | bundle) ;; *) echo "checkout.sh: unknown source ${source@Q}" >&2; exit 2 ;; esac
deployed=refs/fab/deployed
git_locks_removed=
# No auto-gc (not even the process that would decide on it: maintenance.auto), and
# a pack per fetch however small (no loose objects to pile up).
no_gc=(-c gc.auto=0 -c maintenance.auto=false -c fetch.unpackLimit=1)
# An older deployer's clone may keep a URL with credentials in its config (mode 0644):
# a user part with a password, or any user part in http(s) (a token).
userinfo_url='url = ([A-Za-z][A-Za-z0-9+.-]*://[^/@[:space:]]*:[^/[:space:]]*|[a-z+]*https?://[^/@[:space:]]+)@'
# Each process counts here: this runs on every host of a deploy at once, so what the
# shell can do itself (read a file, match, cut a list) it does without one.
config=
if [ -f "$cache/config" ]; then IFS= read -r -d '' config < "$cache/config" || true; fi
if [[ $config =~ $userinfo_url ]]; then
  if [ "$source" = repository ]; then
    git_in_cache "$cache" "" config remote.origin.url "$from" || git_failed
  else  # bundles need no remote
    git_in_cache "$cache" "" config --remove-section remote.origin || git_failed
  fi
fi
has_commit() {
  git --git-dir="$cache" cat-file -e --end-of-options "$commit^{commit}" 2>/dev/null
}
came_from="from cache"
if [ "$source" = bundle ] && [ -n "$from" ]; then
  # The controller sent a bundle because this cache lacked the commit: fetched
  # straight away (fetching a commit by its id fails unless the bundle holds it; the
  # ref is made here), and read again only to say why, if that fails.
  [[ $commit =~ ^[0-9a-f]{40}([0-9a-f]{24})?$ ]] || {
    echo "the bundle $from does not hold commit $commit (refused)" >&2; exit 1; }
  [ -d "$cache/objects" ] || git init --quiet --bare -- "$cache"
  if ! git_in_cache "$cache" "" "${no_gc[@]}" fetch --quiet --no-tags -- "$from" "$commit:$deployed/$commit"; then
    printf '%s\n' "$git_output" >&2
    # In English, whatever the host's locale, to be read here.
    verified=$(LC_ALL=C git --git-dir="$cache" bundle verify -- "$from" 2>&1) || {
      if [[ $verified == *"does not look like a v2 or v3 bundle"* ]]; then
        echo "the bundle $from is unreadable: ${verified##*$'\n'}" >&2
      else
        echo "the bundle $from does not apply to the git cache $cache: $(grep -m1 . <<<"$verified")" >&2
      fi
      exit 1; }
    heads=${verified#*The bundle contains}
    heads=${heads%%The bundle requires*}
    if [[ $heads$'\n' != *$'\n'"$commit "* ]]; then
      echo "the bundle $from does not hold commit $commit (refused)" >&2
    else
      echo "git could not fetch commit $commit from the bundle $from: $(grep -m1 . <<<"$git_output")" >&2
    fi
    exit 1
  fi
  came_from="from bundle"
elif ! has_commit; then
  if [ "$source" = repository ]; then
    if [ -d "$cache/objects" ]; then
      # From the environment's repository as it is configured now (it may have moved).
      GIT_TERMINAL_PROMPT=0 git_in_cache "$cache" "" "$@" "${no_gc[@]}" fetch --quiet --prune -- "$from" '+refs/*:refs/*'
    else
      rm -rf "$cache"
      git_output=$(GIT_TERMINAL_PROMPT=0 exec git "$@" "${no_gc[@]}" clone --quiet --mirror -- "$from" "$cache" 2>&1)
    fi || {
      echo "this host cannot fetch from $shown_repo (app.fetch: hosts): $(grep -m1 . <<<"$git_output")" >&2; exit 1; }
    has_commit || { echo "commit $commit is not in $shown_repo" >&2; exit 1; }
    came_from="from the repository"
  else
    echo "commit $commit is not in the git cache $cache, and no bundle was sent" >&2; exit 1
  fi
fi
if [ "$source" = bundle ] && [ -n "$from" ]; then  # used: out of the store
  store_entry=${from%/*}
  if [[ ${store_entry##*/} =~ ^[0-9a-f]{64}$ ]]; then
    rm -rf -- "$store_entry"  # <store>/<sha256>/<name>: the entry holds this file only
  else
    rm -f -- "$from"
  fi
fi
# A ref for the commit (the cache's objects for it stay).
if [ "$came_from" != "from bundle" ] && ! git --git-dir="$cache" show-ref --quiet --verify -- "$deployed/$commit"; then
  git_in_cache "$cache" "" update-ref --end-of-options "$deployed/$commit" "$commit" || git_failed
fi
removed=${git_locks_removed:+removed stale git locks: $git_locks_removed}
if [ "$mode" = fetch ]; then
  if [ -n "$removed" ]; then echo "$removed"; fi
  exit 0
fi
git --git-dir="$cache" archive --format=tar --end-of-options "$commit" | tar -x -C "$release"
printf '%s\n' "$commit" > "$revision_file"
echo "exported ${commit:0:12} $came_from${removed:+; $removed}"

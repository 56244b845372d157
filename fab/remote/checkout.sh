# Makes sure the host's bare mirror of the application's repository has a commit,
# fetching it (or cloning the mirror the first time) only when it is not there:
#   $1 fetch: only that.
#   $1 export: then writes the commit's files into the release directory $6, and
#      the commit into the file $7 (Paths.release_revision).
#   $2 the mirror   $3 the repository's URL, without credentials   $4 the commit
#   $5 the repository as errors name it (credentials masked)   $6 the release
#   $7 its revision file   $8... git's options that make it ask the credential helper for the credentials
#        (fab.operations.credentials), loaded into our environment beforehand.
# Every revision reaches git after --end-of-options, every URL and path after --.
# git never prompts. Prints "exported <commit, 12 digits>" (export).
set -e -o pipefail
mode=$1
cache=$2
repo=$3
commit=$4
shown_repo=$5
release=$6
revision_file=$7
shift 7
case $mode in fetch | export) ;; *) echo "checkout.sh: unknown mode ${mode@Q}" >&2; exit 2 ;; esac
# An older deployer's clone may keep a URL with credentials in its config (mode 0644):
# a user part with a password, or any user part in http(s) (a token).
userinfo_url='url = ([A-Za-z][A-Za-z0-9+.-]*://[^/@[:space:]]*:[^/[:space:]]*|[a-z+]*https?://[^/@[:space:]]+)@'
if [ -f "$cache/config" ] && grep -Eq -- "$userinfo_url" "$cache/config"; then
  git --git-dir="$cache" config remote.origin.url "$repo"
fi
if ! git --git-dir="$cache" cat-file -e --end-of-options "$commit^{commit}" 2>/dev/null; then
  if [ -d "$cache/objects" ]; then
    # From the environment's repository as it is configured now (it may have moved).
    GIT_TERMINAL_PROMPT=0 git "$@" --git-dir="$cache" fetch --quiet --prune -- "$repo" '+refs/*:refs/*'
  else
    rm -rf "$cache"
    GIT_TERMINAL_PROMPT=0 git "$@" clone --quiet --mirror -- "$repo" "$cache"
  fi
  git --git-dir="$cache" cat-file -e --end-of-options "$commit^{commit}" 2>/dev/null || {
    echo "commit $commit is not in $shown_repo" >&2; exit 1; }
fi
[ "$mode" = export ] || exit 0
git --git-dir="$cache" archive --format=tar --end-of-options "$commit" | tar -x -C "$release"
printf '%s\n' "$commit" > "$revision_file"
echo "exported ${commit:0:12}"

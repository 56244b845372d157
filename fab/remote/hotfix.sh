# A hotfix of the release in $2 from commit $5 to commit $6, taken from the git
# cache $4 (its objects already fetched); $3 is shared/, $7 the release's
# REVISION file (Paths.release, .shared, .git_cache, .release_revision).
#   $1 = check: refuse commit $6 if it has a file or a symlink where a link into
#        shared/ needs a directory (a hotfix would write through it). Changes nothing.
#   $1 = apply: delete the files $6 removed, then write $6's files.
# Either way the release's links into shared/ (and everything under them) are left
# out: a hotfix never writes, deletes or follows them, so they stay as they are.
set -e -o pipefail
mode=$1
release=$2
shared=$3
cache=$4
old=$5
new=$6
revision=$7
cd "$release"

links=()
while IFS= read -r -d '' path; do
  case $(readlink -- "$path") in
    "$shared"/*) links+=("${path#./}") ;;
  esac
done < <(find . -type l -print0)

if [ "$mode" = check ]; then
  for link in "${links[@]}"; do
    above=""
    rest=$link
    while [ "${rest#*/}" != "$rest" ]; do
      above=${above:+$above/}${rest%%/*}
      rest=${rest#*/}
      case $(git --git-dir="$cache" --literal-pathspecs ls-tree --end-of-options "$new" -- "$above") in
        '' | '040000 '*) ;;
        '120000 '*)
          echo "refused: ${new:0:12} has a symlink at $above, above $link (a link into shared/):" \
            "a hotfix through it would land outside the release" >&2
          exit 1 ;;
        *)
          echo "refused: ${new:0:12} has a file at $above, above $link (a link into shared/)," \
            "where the release has a directory" >&2
          exit 1 ;;
      esac
    done
  done
  exit 0
fi

outside_links=()
for link in "${links[@]}"; do
  outside_links+=(":(exclude,literal,top)$link")
done
git --git-dir="$cache" diff --no-renames --name-only --diff-filter=D -z --end-of-options "$old" "$new" \
  -- "${outside_links[@]}" | xargs -0 -r rm -f --
git --git-dir="$cache" archive --format=tar --end-of-options "$new" "${outside_links[@]}" | tar -x -C .
printf '%s\n' "$new" > "$revision"

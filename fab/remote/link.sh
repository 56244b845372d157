# Links each linked path of the release (the current directory) to its place in
# shared/: $1 is shared/ (Paths.shared), then one "dir:<path>" or "file:<path>" per linked path.
# Nothing here follows a symlink the repository commits. Every directory above a
# linked path must be a real directory of the release (or absent, then created):
# a symlink or a file there refuses the release before anything changes, since
# linking through it could create or delete files outside the release. What the
# release has at the linked path itself (a file, a directory, a symlink) is
# removed, never followed, and replaced by the link. Safe to rerun.
set -e
shared=$1
shift

refuse_unsafe_parents() {  # $1: dir or file, $2: the linked path
  local above="" rest=$2
  while [ "${rest#*/}" != "$rest" ]; do
    above=${above:+$above/}${rest%%/*}
    rest=${rest#*/}
    if [ -L "$above" ]; then
      echo "refused: $above is a symlink in the release (to $(readlink -- "$above")), above linked $1 $2:" \
        "a link through it would land outside the release" >&2
      exit 1
    elif [ -e "$above" ] && [ ! -d "$above" ]; then
      echo "refused: $above is a file in the release, above linked $1 $2, which needs it to be a directory" >&2
      exit 1
    fi
  done
}

for entry in "$@"; do
  refuse_unsafe_parents "${entry%%:*}" "${entry#*:}"
done
for entry in "$@"; do
  name=${entry#*:}
  if [ "${entry%%:*}" = dir ]; then
    mkdir -p -- "$shared/$name"
  fi
  rm -rf -- "$name"
  case $name in
    */*) mkdir -p -- "${name%/*}" ;;
  esac
  ln -s -- "$shared/$name" "$name"
done
echo "$# shared path(s) linked"

# Writes a release's metadata, $3 (JSON), to its file $2: to a temporary file
# first, renamed over it, so a reader never sees half of it.
#   $1 create: makes the directories $4... first (the release's own among them);
#      prints "created".
#   $1 mark: only where the release directory $4 still exists (cleanup may have
#      removed it); prints the release's new status, $5.
set -e
mode=$1
file=$2
meta=$3
case $mode in
  create) mkdir -p -- "${@:4}" ;;
  mark) if [ ! -d "$4" ]; then echo "$5"; exit 0; fi ;;
  *) echo "meta.sh: unknown mode ${mode@Q}" >&2; exit 2 ;;
esac
printf '%s' "$meta" > "$file.tmp.$$"
mv -f -- "$file.tmp.$$" "$file"
if [ "$mode" = create ]; then echo created; else echo "$5"; fi

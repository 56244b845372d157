# Sets or lifts the environment's freeze: a file beside the deploy lock on the lock
# host (Paths.freeze). It is written to a temporary name and renamed, so whoever
# reads it (lock.sh, state.sh) sees the whole old record or the whole new one.
#   $1 set or lift, $2 the freeze file, $3 (set) the freeze record (JSON)
# (fab.operations.freeze builds them.)
# The answer is "was <base64 of the record it replaced or lifted>", "was -" if none.
action=$1
file=$2
was=$(base64 -w0 < "$file" 2>/dev/null)
case $action in
  set)
    mkdir -p "${file%/*}" || exit 1
    temporary="$file.tmp.$$"
    printf '%s\n' "$3" > "$temporary" || exit 1
    mv -f "$temporary" "$file" || exit 1
    ;;
  lift)
    rm -f "$file" || exit 1
    ;;
  *)
    echo "freeze.sh: unknown action $action" >&2
    exit 2
    ;;
esac
printf 'was %s\n' "${was:--}"

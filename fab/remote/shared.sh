# Files the deployer puts on a host that others there must not read (secrets,
# credentials, linked files in shared/), and the linked files shared/ lacks:
#   $1 prepare, $2 a directory, $3 a temporary file in it: makes the file empty, of
#      mode 0600 (the directory first), for SFTP to fill (the content never travels
#      on a command line).
#   $1 commit, $2 the filled temporary file, $3 the file: renames it over the file.
#   $1 missing, $2...: prints each of the paths that does not exist, one a line.
set -e
mode=$1
shift
case $mode in
  prepare)
    mkdir -p -- "$1"
    umask 077
    rm -f -- "$2"
    : > "$2" ;;
  commit)
    chmod 600 -- "$1"
    mv -f -- "$1" "$2" ;;
  missing)
    for path in "$@"; do
      [ -e "$path" ] || printf '%s\n' "$path"
    done ;;
  *) echo "shared.sh: unknown mode ${mode@Q}" >&2; exit 2 ;;
esac

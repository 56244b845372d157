# A builder host's side of building wheels once (wheels.build: once, when the
# controller cannot make them for the hosts' platform), in a throwaway directory.
#   $1 start: $2 the builds directory (Paths.wheel_builds); makes a directory of
#             mode 0700 in it and prints its path.
#   $1 build: $2 that directory, holding source.tar (the app's tree at the commit)
#             and, if pip needs credentials, netrc; $3 the python, $4 the
#             virtualenv command, $5 how many requirements files follow; then the
#             files, then pip's arguments. Makes a throwaway venv, builds the
#             wheels into wheels/ and prints "wheel <sha256> <file>" for each.
#   $1 done:  $2 that directory, $3 the builds directory: removes it.
set -e -o pipefail
mode=$1
case $mode in
  start)
    mkdir -p -- "$2"
    mktemp -d -- "$2/build.XXXXXXXX"
    ;;
  build)
    dir=$2
    python=$3
    virtualenv=$4
    count=$5
    shift 5
    requirements=()
    for file in "${@:1:count}"; do requirements+=(-r "$file"); done
    cd -- "$dir"
    mkdir -p tree wheels
    tar -xf source.tar -C tree
    "$virtualenv" --quiet --python "$python" venv >&2
    if [ -f netrc ]; then export NETRC=$dir/netrc; fi
    (cd tree && ../venv/bin/pip wheel --quiet --no-input --disable-pip-version-check --wheel-dir ../wheels \
      "${requirements[@]}" "${@:count+1}") >&2
    for file in wheels/*.whl; do
      [ -f "$file" ] || continue
      digest=$(sha256sum -- "$file")
      printf 'wheel %s %s\n' "${digest%% *}" "${file##*/}"
    done
    ;;
  done)
    case $2 in "$3"/build.*) rm -rf -- "$2" ;; *) echo "wheels.sh: ${2@Q} is no build directory" >&2; exit 2 ;; esac
    ;;
  *) echo "wheels.sh: unknown mode ${mode@Q}" >&2; exit 2 ;;
esac

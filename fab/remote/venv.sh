# Links the release (the current directory) to the virtualenv its requirements
# need, python_env -> <venvs>/<key>, making that venv first unless a complete
# one is there. A venv is made at its final path and marked complete last; a
# complete venv is never changed, so releases with the same key share it.
#   $1 index: the host installs from the index in the pip arguments (wheels.build:
#             each_host) and works the key out itself;
#      store: it installs exactly the wheels of its store it is given, with no
#             index (wheels.build: once; the controller decided the key).
#   $2 the venvs directory      $3 the python to build with
#   $4 the virtualenv command   $5 the uv command ('' when the environment has none)
#   $6 the release's link to its venv (fab.paths.VENV_LINK)
#   $7 the file that marks a venv complete, inside it (fab.paths.VENV_COMPLETE)
# index: $8 the pip arguments' line the key hashes (credentials masked)
#        $9 how many requirements files follow; then the files, then the pip arguments.
#        Prints "reused <key>" or "built <key> uv|virtualenv".
# store: $8 the key   $9 the venv's manifest (fab.paths.VENV_WHEELS)
#        $10 the release's record of its wheels (fab.paths.RELEASE_WHEELS)
#        $11 the store (Paths.store); then pairs: a wheel's sha256, its file name.
#        Writes the manifest ("<sha256> <file>" lines, in the order given) into a
#        venv it makes, and copies it to the release's record.
#        Prints "reused <key>" or "installed <key> uv|virtualenv <wheels>".
#
# The index mode's key is fab.operations.virtualenv.venv_key (the tests check they
# agree): the first 16 hex digits of sha256 over the requirements files' bytes,
# the pip arguments' line and a newline, and what `python -S` prints as its sys.version.
set -e
mode=$1
venvs=$2
python=$3
virtualenv=$4
uv=$5
venv_link=$6
complete=$7
shift 7

# Makes "$venv" with uv or virtualenv and installs "$@" (pip install's arguments)
# into it; says which in $builder.
make_venv() {
  if [ -n "$uv" ] && command -v "$uv" >/dev/null 2>&1; then
    "$uv" venv --quiet --python "$python" "$venv" >&2
    if [ $# -gt 0 ]; then "$uv" pip install --quiet --python "$venv/bin/python" "$@" >&2; fi
    builder=uv
  else
    "$virtualenv" --quiet --python "$python" "$venv" >&2
    if [ $# -gt 0 ]; then "$venv/bin/pip" install --quiet --no-input --disable-pip-version-check "$@" >&2; fi
    builder=virtualenv
  fi
}

case $mode in
  index)
    pip_line=$1
    count=$2
    shift 2
    requirements=("${@:1:count}")
    install_args=()
    for file in "${requirements[@]}"; do
      [ -f "$file" ] || { echo "requirements file $file is not in the release" >&2; exit 1; }
      install_args+=(-r "$file")
    done
    install_args+=("${@:count+1}")
    digest=$( { cat -- "${requirements[@]}" /dev/null; printf '%s\n' "$pip_line"
                "$python" -S -c 'import sys; print(sys.version)'; } | sha256sum)
    key=${digest:0:16}
    venv=$venvs/$key
    if [ -f "$venv/$complete" ]; then
      result="reused $key"
    else
      rm -rf "$venv"
      if [ "$count" -gt 0 ]; then make_venv "${install_args[@]}"; else make_venv; fi
      result="built $key $builder"
      : > "$venv/$complete"
    fi
    ;;
  store)
    key=$1
    manifest=$2
    record=$3
    store=$4
    shift 4
    [[ $key =~ ^[0-9a-f]{16}$ ]] || { echo "venv.sh: ${key@Q} is not a venv key" >&2; exit 2; }
    venv=$venvs/$key
    if [ -f "$venv/$complete" ]; then
      result="reused $key"
    else
      files=()
      lines=
      while [ $# -gt 1 ]; do
        [[ $1 =~ ^[0-9a-f]{64}$ && $2 =~ ^[A-Za-z0-9][A-Za-z0-9._+-]*\.whl$ ]] || {
          echo "venv.sh: not a wheel: ${1@Q} ${2@Q}" >&2; exit 2; }
        [ -f "$store/$1/$2" ] || { echo "wheel $2 is not in the store" >&2; exit 1; }
        files+=("./$1/$2")  # from the store: pip reads a ';' in an absolute path (a code root) as a marker
        lines+="$1 $2"$'\n'
        shift 2
      done
      rm -rf "$venv"
      if [ "${#files[@]}" -gt 0 ]; then
        release_dir=$PWD
        cd -- "$store"
        make_venv --no-index --no-deps "${files[@]}"
        cd -- "$release_dir"
      else
        make_venv
      fi
      printf %s "$lines" > "$venv/$manifest"
      result="installed $key $builder ${#files[@]}"
      : > "$venv/$complete"
    fi
    if [ -f "$venv/$manifest" ]; then  # copied by builtins: every host does it on every deploy
      listed=
      IFS= read -r -d '' listed < "$venv/$manifest" || true
      printf '%s' "$listed" > "$record"
    fi
    ;;
  *) echo "venv.sh: unknown mode ${mode@Q}" >&2; exit 2 ;;
esac
ln -sfn "$venv" "$venv_link"
echo "$result"

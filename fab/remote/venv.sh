# Links the release (the current directory) to the virtualenv its requirements
# need, python_env -> <venvs>/<key>, building that venv first unless a complete
# one is there. A venv is built at its final path and marked complete last; a
# complete venv is never changed, so releases with the same key share it.
#   $1 the venvs directory      $2 the python to build with
#   $3 the virtualenv command   $4 the uv command ('' when the environment has none)
#   $5 the pip arguments' line the key hashes (credentials masked)
#   $6 the release's link to its venv (fab.paths.VENV_LINK)
#   $7 the file that marks a venv complete, inside it (fab.paths.VENV_COMPLETE)
#   $8 how many requirements files follow; then the files, then the pip arguments
# Prints "reused <key>" or "built <key> uv|virtualenv".
#
# The key is fab.operations.virtualenv.venv_key (the tests check they agree): the
# first 16 hex digits of sha256 over the requirements files' bytes, the pip
# arguments' line and a newline, and what `python -S` prints as its sys.version.
set -e
venvs=$1
python=$2
virtualenv=$3
uv=$4
pip_line=$5
venv_link=$6
complete=$7
count=$8
shift 8
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
  if [ -n "$uv" ] && command -v "$uv" >/dev/null 2>&1; then
    "$uv" venv --quiet --python "$python" "$venv" >&2
    if [ "$count" -gt 0 ]; then "$uv" pip install --quiet --python "$venv/bin/python" "${install_args[@]}" >&2; fi
    result="built $key uv"
  else
    "$virtualenv" --quiet --python "$python" "$venv" >&2
    if [ "$count" -gt 0 ]; then
      "$venv/bin/pip" install --quiet --no-input --disable-pip-version-check "${install_args[@]}" >&2
    fi
    result="built $key virtualenv"
  fi
  : > "$venv/$complete"
fi
ln -sfn "$venv" "$venv_link"
echo "$result"

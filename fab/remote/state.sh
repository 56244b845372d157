# Prints what a host has under the code root $1, one fact per line:
#   home, cpus, current, release, meta (meta.json on one line), conf (a digest
#   of each service's config, supervisor program or port service), venv (the key
#   of the virtualenv a release links to), venvdir (a virtualenv in venvs/) and
#   step lines. Read-only.
# Every host of a fleet runs this at once, so it starts a fixed handful of
# processes however many releases there are: names, files and markers are read
# with builtins, and links and digests in one call each.
root=$1
printf 'home %s\n' "$HOME"
printf 'cpus %s\n' "$(nproc 2>/dev/null || echo 1)"
if [ -L "$root/current" ]; then printf 'current %s\n' "$(readlink "$root/current")"; fi
for dir in "$root"/venvs/*/; do
  name=${dir%/}
  name=${name##*/}
  # Only the deployer's own venvs (named by their key): cleanup never touches others.
  if [[ -d $dir && $name =~ ^[0-9a-f]+$ ]]; then printf 'venvdir %s\n' "$name"; fi
done
[ -d "$root/releases" ] || exit 0
confs=()
for dir in "$root"/releases/*/; do
  [ -d "$dir" ] || continue
  name=${dir%/}
  name=${name##*/}
  printf 'release %s\n' "$name"
  if [ -f "$dir.release/meta.json" ]; then
    meta=
    IFS= read -r -d '' meta < "$dir.release/meta.json"
    meta=${meta//[$'\n\r']/ }  # JSON's own newlines are whitespace: one line
    printf 'meta %s %s\n' "$name" "$meta"
  fi
  for conf in "$dir"services/*/*.conf; do
    [ -f "$conf" ] && confs+=("$conf")
  done
  for step in "$dir".release/steps/*; do
    [ -e "$step" ] && printf 'step %s %s\n' "$name" "${step##*/}"
  done
done
if [ "${#confs[@]}" -gt 0 ]; then
  # "<digest>  <root>/releases/<name>/services/<control>/<file>", in the order given
  sha256sum -- "${confs[@]}" | while read -r digest path; do
    release=${path%/services/*}
    printf 'conf %s %s %s\n' "${release##*/}" "${digest:0:16}" "${path##*/}"
  done
fi
# "<release>/python_env <link target>" for every release's venv link, in one process
find "$root/releases" -mindepth 2 -maxdepth 2 -name python_env -type l -printf '%P %l\n' 2>/dev/null |
  while read -r link target; do
    printf 'venv %s %s\n' "${link%/python_env}" "${target##*/}"
  done
true

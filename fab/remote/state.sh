# Prints what a host has, one fact per line:
#   home, cpus, current, freeze (the environment's freeze record in base64, on the
#   lock host when frozen), release, meta (meta.json on one line), conf (a digest
#   of each service's config, supervisor program or port service), venv (the key
#   of the virtualenv a release links to), venvdir (a virtualenv in the venvs dir)
#   and step lines. Read-only.
#   $1 the `current` link, $2 the releases dir (Paths.current, .releases); inside
#   each release: $3 its meta file, $4 its steps dir, $5 its service configs dir
#   (one directory per control under it), $6 its link to its venv
#   (fab.paths.RELEASE_META, RELEASE_STEPS, SERVICES, VENV_LINK); $7 the venvs dir
#   (Paths.venvs); $8 the freeze file (Paths.freeze). fab.operations.state.arguments
#   builds them.
# Every host of a fleet runs this at once, so it starts a fixed handful of
# processes however many releases there are: names, files and markers are read
# with builtins, and links and digests in one call each.
current=$1
releases=$2
meta_file=$3
steps_dir=$4
configs_dir=$5
venv_link=$6
venvs=$7
freeze=$8
printf 'home %s\n' "$HOME"
printf 'cpus %s\n' "$(nproc 2>/dev/null || echo 1)"
if [ -L "$current" ]; then printf 'current %s\n' "$(readlink "$current")"; fi
if [ -f "$freeze" ]; then printf 'freeze %s\n' "$(base64 -w0 < "$freeze")"; fi
for dir in "$venvs"/*/; do
  name=${dir%/}
  name=${name##*/}
  # Only the deployer's own venvs (named by their key): cleanup never touches others.
  if [[ -d $dir && $name =~ ^[0-9a-f]+$ ]]; then printf 'venvdir %s\n' "$name"; fi
done
[ -d "$releases" ] || exit 0
confs=()
for dir in "$releases"/*/; do
  [ -d "$dir" ] || continue
  name=${dir%/}
  name=${name##*/}
  printf 'release %s\n' "$name"
  if [ -f "$dir$meta_file" ]; then
    meta=
    IFS= read -r -d '' meta < "$dir$meta_file"
    meta=${meta//[$'\n\r']/ }  # JSON's own newlines are whitespace: one line
    printf 'meta %s %s\n' "$name" "$meta"
  fi
  for conf in "$dir$configs_dir"/*/*.conf; do
    [ -f "$conf" ] && confs+=("$conf")
  done
  for step in "$dir$steps_dir"/*; do
    [ -e "$step" ] && printf 'step %s %s\n' "$name" "${step##*/}"
  done
done
if [ "${#confs[@]}" -gt 0 ]; then
  # "<digest>  <releases>/<name>/<configs dir>/<control>/<file>", in the order given
  sha256sum -- "${confs[@]}" | while read -r digest path; do
    release=${path%/"$configs_dir"/*}
    printf 'conf %s %s %s\n' "${release##*/}" "${digest:0:16}" "${path##*/}"
  done
fi
# "<release>/<venv link> <link target>" for every release's venv link, in one process
find "$releases" -mindepth 2 -maxdepth 2 -name "$venv_link" -type l -printf '%P %l\n' 2>/dev/null |
  while read -r link target; do
    printf 'venv %s %s\n' "${link%/"$venv_link"}" "${target##*/}"
  done
true

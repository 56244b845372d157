# Prints what a host has, one fact per line:
#   home, cpus, current, tip, freeze (the environment's freeze record in base64, on the
#   lock host when frozen), release, meta (meta.json on one line), conf (a digest
#   of each service's config, supervisor program or port service), venv (the key
#   of the virtualenv a release links to), venvdir (a virtualenv in the venvs dir)
#   and step lines. Read-only, but for the cache of the python's identity.
# Arguments are named, `--name value` (fab.operations.state.arguments builds them;
# each value its own word, so a leading ~/ stays the remote shell's to expand); a
# name left out is empty, an unknown one an error (exit 2).
#   current, releases: the `current` link and the releases dir (Paths.current,
#   .releases); inside each release: meta_file, steps_dir, configs_dir (its service
#   configs, one directory per control under it) and venv_link, its link to its
#   venv (fab.paths.RELEASE_META, RELEASE_STEPS, SERVICES, VENV_LINK); venvs, the
#   venvs dir (Paths.venvs).
# The wheel store (wheels.build: once): complete, the file marking a venv complete
#   (fab.paths.VENV_COMPLETE), release_wheels, a release's record of its wheels
#   (RELEASE_WHEELS), store (Paths.store), python, the python to identify (none: no identity lines), identity_code, what it
#   runs (fab.wheels.IDENTITY_CODE). Lines: pyversion, pyid (or pyfailed), venvok
#   (a complete venv), stored <sha256> <file> (a wheel in the store), wheelset
#   <release> <digest> <count>.
# identity_cache, the file keeping the python's identity (Paths.python_identity): a
#   python start costs a host about 10 ms, so its lines are kept with what they were
#   read from, and read again only when that changed: the interpreter file (its
#   inode and change time, which an upgrade or a reinstall changes), the C library's
#   cache (ldconfig rewrites it when the C library changes) and the code that reads them.
#   An interpreter that is a script (a pyenv or asdf shim) is read every time.
# git_cache (Paths.git_cache): its refs under refs/fab/deployed/ are printed as tip
#   lines (the commits a bundle for this host can be made against).
# Maintenance: proxy, the proxies' files (Paths.proxy): a `maintenance` line names
#   each proxy program in maintenance (maintenance_suffix: fab.paths.MAINTENANCE_SUFFIX).
# freeze, the freeze file (Paths.freeze).
# Every host of a fleet runs this at once, so it starts a fixed handful of
# processes however many releases there are: names, files and markers are read
# with builtins, and links and digests in one call each. lock.sh runs it in a
# subshell of its own: every variable is set here, none is inherited.
current='' releases='' meta_file='' steps_dir='' configs_dir='' venv_link='' venvs=''
complete='' release_wheels='' store='' python='' identity_code='' identity_cache=''
git_cache='' proxy='' maintenance_suffix='' freeze=''
while [ "$#" -gt 0 ]; do
  case $1 in
    --current | --releases | --meta_file | --steps_dir | --configs_dir | --venv_link | --venvs | --complete | \
      --release_wheels | --store | --python | --identity_code | --identity_cache | --git_cache | \
      --proxy | --maintenance_suffix | --freeze)
      if [ "$#" -lt 2 ]; then echo "state.sh: $1 needs a value" >&2; exit 2; fi
      printf -v "${1#--}" '%s' "$2"
      shift 2 ;;
    *) echo "state.sh: unknown argument ${1@Q}" >&2; exit 2 ;;
  esac
done
printf 'home %s\n' "$HOME"
# The CPUs this process may run on, as nproc counts them, read without starting it
# (nproc itself where OMP_* variables would change its count, or /proc is not Linux's).
cpus=0
if [ -z "${OMP_NUM_THREADS+x}${OMP_THREAD_LIMIT+x}" ] && [ -r /proc/self/status ]; then
  while read -r key value; do
    [ "$key" = Cpus_allowed_list: ] || continue
    for range in ${value//,/ }; do
      if [[ $range =~ ^([0-9]+)-([0-9]+)$ ]]; then
        cpus=$((cpus + BASH_REMATCH[2] - BASH_REMATCH[1] + 1))
      elif [[ $range =~ ^[0-9]+$ ]]; then
        cpus=$((cpus + 1))
      fi
    done
  done < /proc/self/status
fi
[ "$cpus" -gt 0 ] || cpus=$(nproc 2>/dev/null || echo 1)
printf 'cpus %s\n' "$cpus"
if [ -f "$freeze" ]; then printf 'freeze %s\n' "$(base64 -w0 < "$freeze")"; fi
for dir in "$venvs"/*/; do
  name=${dir%/}
  name=${name##*/}
  # Only the deployer's own venvs (named by their key): cleanup never touches others.
  if [[ -d $dir && $name =~ ^[0-9a-f]+$ ]]; then
    printf 'venvdir %s\n' "$name"
    if [[ -n $complete && -f $dir$complete ]]; then printf 'venvok %s\n' "$name"; fi
  fi
done
if [ -n "$store" ]; then
  for file in "$store"/*/*.whl; do
    [ -f "$file" ] || continue
    digest=${file%/*}
    printf 'stored %s %s\n' "${digest##*/}" "${file##*/}"
  done
fi
if [ -n "$python" ]; then
  identity=
  read_from=
  interpreter=$(type -P -- "$python") || interpreter=
  # A script (a pyenv or asdf shim) picks its python from elsewhere: never kept.
  magic=
  if [ -n "$interpreter" ]; then { IFS= read -r -n 2 magic || true; } < "$interpreter" 2>/dev/null; fi
  if [ -n "$identity_cache" ] && [ -n "$interpreter" ] && [ "$magic" != '#!' ]; then
    read_from=$(find -L "$interpreter" /etc/ld.so.cache -maxdepth 0 -printf '%p %i %C@\n' 2>/dev/null)
    if [[ $read_from == "$interpreter "* ]]; then
      read_from+=$'\n'$identity_code$'\n@@identity\n'
      kept=
      if [ -f "$identity_cache" ]; then IFS= read -r -d '' kept < "$identity_cache" || true; fi
      if [[ $kept == "$read_from"?* ]]; then identity=${kept#"$read_from"}; fi
      identity=${identity%$'\n'}
    else
      read_from=
    fi
  fi
  if [ -n "$identity" ]; then
    printf '%s\n' "$identity"
  elif identity=$("$python" -S -c "$identity_code" 2>/dev/null) && [ -n "$identity" ]; then
    printf '%s\n' "$identity"
    if [ -n "$read_from" ] && [ -d "${identity_cache%/*}" ]; then
      if printf '%s%s\n' "$read_from" "$identity" > "$identity_cache.tmp.$$"; then
        mv -f "$identity_cache.tmp.$$" "$identity_cache" || true
      fi
    fi
  else
    echo pyfailed
  fi
fi
#@include deployed_refs.sh
if [ -n "$git_cache" ] && [ -d "$git_cache/objects" ]; then
  declare -A deployed=()
  if deployed_refs "$git_cache" deployed; then
    for id in "${deployed[@]}"; do printf 'tip %s\n' "$id"; done
  else
    git --git-dir="$git_cache" for-each-ref --format='tip %(objectname)' refs/fab/deployed/ 2>/dev/null || true
  fi
fi
for switch in ${proxy:+"$proxy"/*"$maintenance_suffix"}; do
  if [ -f "$switch" ]; then
    name=${switch##*/}
    printf 'maintenance %s\n' "${name%"$maintenance_suffix"}"
  fi
done
# The `current` link and every release's venv link ("<depth> <path> <target>"), in one process.
links=()
[ -L "$current" ] && links+=("$current")
[ -d "$releases" ] && links+=("$releases")
if [ "${#links[@]}" -gt 0 ]; then
  find "${links[@]}" -maxdepth 2 -type l \( -name "${current##*/}" -o -name "$venv_link" \) \
    -printf '%d %p\t%l\n' 2>/dev/null |
    while IFS=$'\t' read -r where target; do
      case $where in
        "0 $current") printf 'current %s\n' "$target" ;;
        "2 $releases"/*/"$venv_link")
          link=${where#"2 $releases"/}
          printf 'venv %s %s\n' "${link%/"$venv_link"}" "${target##*/}" ;;
      esac
    done
fi
[ -d "$releases" ] || exit 0
confs=()
wheelsets=()
counts=()
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
  if [[ -n $release_wheels && -f $dir$release_wheels ]]; then
    mapfile -t listed < "$dir$release_wheels"
    wheelsets+=("$dir$release_wheels")
    counts+=("${#listed[@]}")
  fi
  for step in "$dir$steps_dir"/*; do
    [ -e "$step" ] && printf 'step %s %s\n' "$name" "${step##*/}"
  done
done
if [ $((${#confs[@]} + ${#wheelsets[@]})) -gt 0 ]; then
  # One sha256sum for both: "<digest>  <path>" lines in the order given, the configs'
  # (<releases>/<name>/<configs dir>/<control>/<file>) first.
  index=0
  sha256sum -- "${confs[@]}" "${wheelsets[@]}" | while read -r digest path; do
    if [ "$index" -lt "${#confs[@]}" ]; then
      release=${path%/"$configs_dir"/*}
      printf 'conf %s %s %s\n' "${release##*/}" "${digest:0:16}" "${path##*/}"
    else
      release=${path%/"$release_wheels"}
      printf 'wheelset %s %s %s\n' "${release##*/}" "${digest:0:16}" "${counts[index - ${#confs[@]}]}"
    fi
    index=$((index + 1))
  done
fi
true

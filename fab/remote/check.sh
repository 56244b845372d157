# The preflight's facts about one host (`fab <env> check`, and `deploy:plan=yes`),
# one per line. Read-only: it writes nothing and starts nothing but --version runs.
#   $1 the code root          $2 python ("": skip)      $3 virtualenv ("": skip)
#   $4 uv ("": none)
#   $5 the supervisorctl command ("": no supervisor program here; trusted shell text)
#   $6 supervisord's config file: the first that exists of these, ':'-separated
#   $7 the include a code root needs (Paths.current_service_config("supervisor", "*"))
#   $8 the proxy's config directory ("": no proxy here)
#   $9 the current release (through the link)   $10 its link to its virtualenv
#   $11 the venvs directory
#   $12... "PORT ADDRESS": a port a service of this host listens on, and where
# (fab.operations.preflight.arguments builds them.)
# Lines (fab.operations.preflight.parse reads them):
#   clock <seconds since the epoch>
#   python <version> | python-failed <reason>
#   venv-tool uv|virtualenv | venv-tool-failed <reason>
#   git <version> | git-missing
#   supervisord running | supervisord-down <what supervisorctl said>
#   supervisor-config <file> | supervisor-config-missing
#   include yes|no
#   disk <free KiB> <the last release's KiB (0: no release)>
#   writable yes|no <the directory tested>
#   proxy-dir yes|no <the directory tested>
#   port <port> free | port <port> ours <pid> | port <port> other <pid|-> <command>
code_root=$1
python=$2
virtualenv=$3
uv=$4
ctl=$5
supervisor_configs=$6
wanted_include=$7
proxy_dir=$8
last_release=$9
venv_link=${10}
venvs=${11}
shift 11

printf 'clock %s\n' "$(date +%s.%N)"

# The nearest directory of `$1` that exists (what a mkdir -p would write in).
existing_parent() {
  local dir=$1
  while [ ! -d "$dir" ] && [ "$dir" != / ]; do dir=$(dirname "$dir"); done
  printf '%s\n' "$dir"
}

one_line() { tr '\n' ' ' | sed 's/ *$//' | cut -c1-200; }

if [ -n "$python" ]; then
  if version=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>&1); then
    printf 'python %s\n' "$version"
  else
    printf 'python-failed %s\n' "$(printf '%s' "$version" | tail -n1 | one_line)"
  fi
fi

if [ -n "$uv" ] && command -v "$uv" >/dev/null 2>&1; then
  echo 'venv-tool uv'
elif [ -n "$virtualenv" ]; then
  # The setting may be a command with arguments (`python3 -m virtualenv`).
  if said=$(eval "$virtualenv --version" 2>&1); then
    echo 'venv-tool virtualenv'
  else
    printf 'venv-tool-failed %s\n' "$(printf '%s' "$said" | tail -n1 | one_line)"
  fi
fi

# Every host exports its releases from its git cache (whoever fills it).
if command -v git >/dev/null 2>&1; then
  printf 'git %s\n' "$(git --version | one_line)"
else
  echo 'git-missing'
fi

if [ -n "$ctl" ]; then
  if said=$(eval "$ctl pid" 2>&1) && [[ $said =~ ^[0-9]+$ ]]; then
    echo 'supervisord running'
  else
    printf 'supervisord-down %s\n' "$(printf '%s' "$said" | one_line)"
  fi
  supervisor_conf=
  IFS=: read -r -a candidates <<< "$supervisor_configs"
  for candidate in "${candidates[@]}"; do
    if [ -f "$candidate" ]; then supervisor_conf=$candidate; break; fi
  done
  if [ -n "$supervisor_conf" ]; then
    printf 'supervisor-config %s\n' "$supervisor_conf"
    here=$(dirname "$supervisor_conf")
    # [include] files = globs (space separated, continued on indented lines),
    # relative to the config file's directory; %(here)s and %(ENV_HOME)s expanded.
    globs=$(awk '
      /^\[/ { inside = ($0 ~ /^\[include\]/); next }
      inside && /^[ \t]*files[ \t]*[=:]/ { sub(/^[ \t]*files[ \t]*[=:][ \t]*/, ""); print; taking = 1; next }
      inside && taking && /^[ \t]+[^ \t]/ { print; next }
      { taking = 0 }' "$supervisor_conf" | tr '\n' ' ')
    globs=${globs//%(here)s/$here}
    globs=${globs//%(ENV_HOME)s/$HOME}
    wanted=${wanted_include/#\~/$HOME}
    found=no
    IFS=' ' read -r -a patterns <<< "$globs"
    for pattern in "${patterns[@]}"; do
      case $pattern in /*) ;; *) pattern=$here/$pattern ;; esac
      # Matched part by part, as a glob does: `*` never crosses a `/`.
      IFS=/ read -r -a want_parts <<< "$wanted"
      IFS=/ read -r -a glob_parts <<< "$pattern"
      [ "${#want_parts[@]}" -eq "${#glob_parts[@]}" ] || continue
      matches=yes
      for index in "${!want_parts[@]}"; do
        # shellcheck disable=SC2053  # the right side is a pattern, on purpose
        [[ ${want_parts[index]} == ${glob_parts[index]} ]] || { matches=no; break; }
      done
      if [ "$matches" = yes ]; then found=yes; break; fi
    done
    printf 'include %s\n' "$found"
  else
    echo 'supervisor-config-missing'
  fi
fi

root=$(existing_parent "$code_root")
free=$(df -Pk "$root" 2>/dev/null | awk 'NR == 2 { print $4 }')
size=0
if [ -n "$last_release" ] && [ -d "$last_release" ]; then
  size=$(du -sk "$last_release/" 2>/dev/null | cut -f1)
  # Its virtualenv lives under venvs/ and a new one may be built beside it.
  link=$(readlink "$venv_link" 2>/dev/null || true)
  case $link in
    "$venvs"/*) venv_size=$(du -sk "$link" 2>/dev/null | cut -f1); size=$(( size + ${venv_size:-0} )) ;;
  esac
fi
printf 'disk %s %s\n' "${free:-0}" "${size:-0}"

if [ -w "$root" ]; then printf 'writable yes %s\n' "$root"; else printf 'writable no %s\n' "$root"; fi

if [ -n "$proxy_dir" ]; then
  dir=$(existing_parent "$proxy_dir")
  if [ -w "$dir" ]; then printf 'proxy-dir yes %s\n' "$dir"; else printf 'proxy-dir no %s\n' "$dir"; fi
fi

real_root=$(cd "$code_root" 2>/dev/null && pwd -P || printf '%s' "$code_root")
# Whether process $1 is this environment's: it runs in the code root, or names it.
ours() {
  local cwd
  cwd=$(readlink "/proc/$1/cwd" 2>/dev/null || true)
  case $cwd/ in "$real_root"/*|"$code_root"/*) return 0 ;; esac
  tr '\0' '\n' < "/proc/$1/cmdline" 2>/dev/null | grep -qF -e "$real_root/" -e "$code_root/"
}

for pair in "$@"; do
  port=${pair%% *}
  address=${pair#* }
  holders=$(ss -Hltnp "sport = :$port" 2>/dev/null | awk -v a="$address" '
    { local_address = $4; sub(/:[0-9]+$/, "", local_address); gsub(/[][]/, "", local_address)
      if (local_address == a || local_address == "0.0.0.0" || local_address == "*" || local_address == "::" \
          || local_address == "::ffff:" a || a == "") print }')
  if [ -z "$holders" ]; then
    printf 'port %s free\n' "$port"
    continue
  fi
  pid=$(printf '%s\n' "$holders" | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)
  if [ -z "$pid" ]; then
    printf 'port %s other - (a process of another user)\n' "$port"
  elif ours "$pid"; then
    printf 'port %s ours %s\n' "$port" "$pid"
  else
    printf 'port %s other %s %s\n' "$port" "$pid" "$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | cut -c1-120)"
  fi
done
true

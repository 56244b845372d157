# Supervisor programs: applying config changes, restarting or reloading programs,
# waiting until they run. Sent after service_functions.sh, whose functions it calls.
# $2 (CTL) is the environment's supervisorctl command (trusted shell text, e.g.
# "supervisorctl -c ~/supervisor.conf"); what supervisorctl says goes to stderr.
#
#   restart CTL DIR TIMEOUT ITEM...
#     in DIR: the before hooks; `reread` and `update` (which restarts the programs
#     whose config changed and removes those gone); then each program `update`
#     left alone is restarted (restart), sent SIGHUP (hup) or left (keep); waits
#     (at most TIMEOUT s) until every program is RUNNING; the after hooks.
#     Prints "running PROGRAM...".
#   reload CTL DIR ITEM...
#     in DIR: the before hooks; SIGHUP to each program (reload), straight to the
#     master listening on its port when it has one (no supervisorctl on the way),
#     else through supervisord, which starts it if it is not running; the after
#     hooks. Prints "reloaded PROGRAM...".
#   ITEM: before SERVICE COMMAND | after SERVICE COMMAND (hooks, in that order)
#       | restart PROGRAM | hup PROGRAM | keep PROGRAM | reload PROGRAM PORT ("": none)
#
#   start CTL TIMEOUT STEADY PROGRAM...
#     starts the programs and waits until they are RUNNING and still are STEADY s
#     later. Prints "running PROGRAM...".
#   stop CTL PROGRAM...
#     stops the programs (supervisorctl waits for each) and prints their status lines.
set -e
task=$1
ctl_command=$2
shift 2

# ctl ARG...: the environment's supervisorctl command with ARGs (its status is
# returned, not raised inside the eval: see service_functions.sh).
ctl() { eval "$ctl_command \"\$@\"" || return; }

# wait_running TIMEOUT STEADY PROGRAM...: until every program is RUNNING (and still
# is STEADY s later); fails at once when one of them is FATAL, or after TIMEOUT s.
wait_running() {
  local timeout=$1 steady=$2 deadline steadied=0 out missing fatal program state _
  local -A expected=() running=()
  shift 2
  for program in "$@"; do expected[$program]=1; done
  deadline=$(( $(date +%s) + timeout ))
  while :; do
    out=$(ctl status 2>&1 || true)
    running=()
    fatal=
    while read -r program state _; do
      [ -n "$program" ] || continue
      if [ "$state" = RUNNING ]; then
        running[$program]=1
      elif [ "$state" = FATAL ] && [ -n "${expected[$program]}" ]; then
        fatal="$fatal $program"
      fi
    done <<< "$out"
    missing=
    for program in "$@"; do
      [ -n "${running[$program]}" ] || missing="$missing $program"
    done
    if [ -z "$missing" ]; then
      if [ "$steadied" = 1 ] || [ "$steady" -eq 0 ]; then return 0; fi
      sleep "$steady"
      steadied=1
      continue
    fi
    if [ -n "$fatal" ]; then
      printf '%s\n' "$out" >&2
      echo "gave up starting (FATAL):$fatal" >&2
      exit 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      printf '%s\n' "$out" >&2
      echo "not RUNNING after ${timeout}s:$missing" >&2
      exit 1
    fi
    steadied=0
    sleep 0.1
  done
}

case $task in
  start)
    timeout=$1
    steady=$2
    shift 2
    ctl start "$@" >/dev/null || true
    wait_running "$timeout" "$steady" "$@"
    echo "running $*"
    exit 0 ;;
  stop)
    ctl stop "$@" >/dev/null || true
    ctl status "$@" || true
    exit 0 ;;
  restart)
    dir=$1
    timeout=$2
    shift 2 ;;
  reload)
    dir=$1
    shift ;;
  *)
    echo "supervisor.sh: unknown task $task" >&2
    exit 2 ;;
esac

hooks_before=()
hooks_after=()
actions=()
programs=()
ports=()
while [ "$#" -gt 0 ]; do
  case $1 in
    before) hooks_before+=("$2" "$3"); shift 3 ;;
    after) hooks_after+=("$2" "$3"); shift 3 ;;
    reload) actions+=("$1"); programs+=("$2"); ports+=("$3"); shift 3 ;;
    restart | hup | keep) actions+=("$1"); programs+=("$2"); ports+=(""); shift 2 ;;
    *) echo "supervisor.sh: unknown item $1" >&2; exit 2 ;;
  esac
done

cd "$dir"
for ((i = 0; i < ${#hooks_before[@]}; i += 2)); do
  run_hook before "${hooks_before[i]}" "${hooks_before[i + 1]}"
done
if [ "$task" = reload ]; then
  for ((i = 0; i < ${#programs[@]}; i++)); do
    program=${programs[i]}
    pid=
    if [ -n "${ports[i]}" ]; then pid=$(pid_on_port "${ports[i]}"); fi
    if [ -n "$pid" ]; then
      kill -HUP "$pid"
    else
      ctl signal HUP "$program" >&2 || ctl start "$program" >&2
    fi
  done
  did=reloaded
else
  # The programs added or changed: `update` restarts those, and only those.
  changed=" "
  reread=$(ctl reread || true)
  while read -r line; do
    name=${line%: *}
    case ${line##*: } in changed | available) ;; *) continue ;; esac
    case $name in "" | *[:\ ]*) continue ;; esac
    changed="$changed$name "
  done <<< "$reread"
  ctl update >&2
  for ((i = 0; i < ${#programs[@]}; i++)); do
    program=${programs[i]}
    case $changed in *" $program "*) continue ;; esac
    case ${actions[i]} in
      restart) ctl restart "$program" >&2 ;;
      hup) ctl signal HUP "$program" >&2 ;;
    esac
  done
  wait_running "$timeout" 0 "${programs[@]}"
  did=running
fi
for ((i = 0; i < ${#hooks_after[@]}; i += 2)); do
  run_hook after "${hooks_after[i]}" "${hooks_after[i + 1]}"
done
echo "$did ${programs[*]}"

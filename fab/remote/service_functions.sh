# Functions the service scripts share (supervisor.sh, portservice.sh, upstream.sh):
# Python sends this file's text before theirs, as one script.
#
# Commands of the environment file (a service's start, reload and hooks, the
# supervisorctl command) are trusted shell text whose {placeholders} the deployer
# filled, each a quoted word ({pid} is "$pid"). They run as if written in the
# script: under `set -e`, in its directory, with no arguments of ours in sight (a
# script keeps its own in variables). Their output goes to stderr, shown if the
# step fails: stdout carries only the script's result line. Inside a function
# they are eval'ed only where errexit is off (a hook, as `( cmd ) || ...` always
# was; supervisorctl, whose status the function returns): errexit firing in `eval`
# in a function makes bash 5.2 print a stray "pop_var_context" line, which would
# stand where the failure's own last line should.

# run_hook before|after SERVICE COMMAND: a service's hook (nothing if empty), in a
# subshell; its failure stops the script, naming the hook.
run_hook() {
  local command=$3
  [ -n "$command" ] || return 0
  ( set --; eval "$command" ) >&2 || { echo "$1 hook of $2 failed" >&2; exit 1; }
}

# pid_on_port PORT: prints the pid of the process listening on PORT whose parent
# does not listen there (the master), or an empty line if nothing listens.
pid_on_port() {
  local pids candidate parent pid=""
  pids=$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -un | tr '\n' ' ')
  for candidate in $pids; do
    parent=$(ps -o ppid= -p "$candidate" 2>/dev/null | tr -d ' ')
    case " $pids " in *" $parent "*) ;; *) pid=$candidate ;; esac
  done
  printf '%s\n' "$pid"
}

# wait_for_listener PORT TIMEOUT: prints the master's pid once something listens on
# PORT; fails after TIMEOUT seconds.
wait_for_listener() {
  local deadline pid
  deadline=$(( $(date +%s) + $2 ))
  while :; do
    pid=$(pid_on_port "$1")
    if [ -n "$pid" ]; then
      printf '%s\n' "$pid"
      return 0
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "nothing listens on port $1 after $2s" >&2
      return 1
    fi
    sleep 0.1
  done
}

# workers_of PID: the pids of PID's children (a master's workers), one a line.
workers_of() {
  ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' '
}

# wait_for_new_worker PID BEFORE: after a reload, wait (at most 0.3 s) until the
# master PID has started a worker not in BEFORE (workers_of before the reload),
# i.e. it has read its new config (nginx tells its old workers to stop accepting
# at the same moment).
wait_for_new_worker() {
  for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
    sleep 0.02
    if workers_of "$1" | grep -qvxF "${2:-none}"; then return 0; fi
  done
  return 0
}

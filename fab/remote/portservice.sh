# Starts a port-controlled service if nothing listens on its port, else reloads it
# (its pid is the master's on that port: no pidfile). Sent after
# service_functions.sh, whose functions it calls.
#   $1 the service's name   $2 its directory (current)   $3 the log file a start
#   that does not daemonize writes to   $4 its port   $5 seconds a start may take
#   to listen   $6 its start command   $7 "daemonizes" if that command forks and
#   returns, else ""   $8 its reload command ("": none)   $9 $10 its before and
#   after hooks ("": none)
# Prints "started PID", "reloaded PID" or "running PID" (no reload command).
set -e
name=$1
dir=$2
log=$3
port=$4
timeout=$5
start=$6
daemonizes=$7
reload=$8
before=$9
after=${10}
set --
cd "$dir"
mkdir -p "${log%/*}"
run_hook before "$name" "$before"
pid=$(pid_on_port "$port")
if [ -n "$pid" ] && [ -n "$reload" ]; then
  eval "$reload" >&2
  did=reloaded
elif [ -n "$pid" ]; then
  did=running
else
  if [ "$daemonizes" = daemonizes ]; then
    eval "$start" >&2
  else
    setsid nohup sh -c "$start" >> "$log" 2>&1 < /dev/null &
  fi
  pid=$(wait_for_listener "$port" "$timeout")
  did=started
fi
run_hook after "$name" "$after"
printf '%s %s\n' "$did" "$pid"

# Writes a proxy's upstream list (a temporary file renamed over it) and, given a
# reload command and if the proxy runs, reloads the proxy. Sent after
# service_functions.sh, whose functions it calls.
#   $1 the upstream file   $2 its text   $3 the proxy's port
#   $4 the proxy's reload command ("": write only)
# Prints "reloaded PID" or "written" (nothing reloaded).
set -e
file=$1
text=$2
port=$3
reload=$4
set --
mkdir -p "${file%/*}"
printf '%s' "$text" > "$file.tmp.$$"
mv -f "$file.tmp.$$" "$file"
pid=
if [ -n "$reload" ]; then pid=$(pid_on_port "$port"); fi
if [ -z "$pid" ]; then
  echo written
  exit 0
fi
# The reload is asynchronous: wait until the master has read the new list.
before=$(workers_of "$pid")
eval "$reload" >&2
wait_for_new_worker "$pid" "$before"
printf 'reloaded %s\n' "$pid"

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
# The reload is asynchronous: wait (at most 0.3 s) until the master has started a
# worker it did not have before, i.e. it has read the new list (nginx tells its
# old workers to stop accepting at the same moment).
workers() { ps -o pid= --ppid "$pid" 2>/dev/null | tr -d ' '; }
before=$(workers)
eval "$reload" >&2
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
  sleep 0.02
  if workers | grep -qvxF "${before:-none}"; then break; fi
done
printf 'reloaded %s\n' "$pid"

# Breaks the deploy lock under $1 for the odd holder that hangs: stops the
# process holding it and appends "$2 <holder record>" to log/lock-breaks.log.
# $3 is fence.sh: the lock's generation goes up, so the holder's swaps are
# refused from now on, should it wake up (see swap.sh).
# Prints "free" if nothing held it, else "broken <base64 of the holder record>
# <generation>".
#
# The record names the holder's pid, but the deploy user (the app) can write
# the record: only a process of ours that holds this very lock file open is
# stopped. Anything else is refused, and nothing is signalled.
root=$1
audit=$2
fence=$3
lockfile="$root/.deploy.lock"
if [ ! -e "$lockfile" ] || flock -n "$lockfile" true; then
  echo free
  exit 0
fi
owner=$(head -c 4096 "$root/.deploy.lock.owner" 2>/dev/null || echo '{}')
pid=$(printf '%s' "$owner" | sed -n 's/.*"lock_pid": \([0-9]\{1,9\}\)[,}].*/\1/p' | head -n 1)

holds_the_lock() {  # whether process $1 is ours and has the lock file open
  local fd
  [ -n "$1" ] && [ -O "/proc/$1" ] || return 1
  for fd in "/proc/$1"/fd/*; do
    [ "$fd" -ef "$lockfile" ] && return 0
  done
  return 1
}
if ! holds_the_lock "$pid"; then
  echo "the lock owner record names pid ${pid:-none}, which does not hold the lock: nothing was stopped" >&2
  exit 1
fi
# The holder learns who stopped it (lock.sh says so before it goes).
printf '%s\n' "$audit" > "$root/.deploy.lock.broken"
# lock.sh leads its own process group (step.sh runs it under setsid): stop all
# of it, or only the pid if it does not lead one.
read -r -a stat < "/proc/$pid/stat"
if [ "${stat[4]}" = "$pid" ]; then
  kill -TERM -- "-$pid" 2>/dev/null
else
  kill -TERM "$pid" 2>/dev/null
fi
tries=0
until flock -n "$lockfile" true; do
  tries=$((tries + 1))
  if [ "$tries" -gt 100 ]; then
    echo "the lock is still held after stopping pid $pid" >&2
    exit 1
  fi
  sleep 0.05
done
generation=$(bash -c "$fence" fence "$root" next) || exit 1
mkdir -p "$root/log"
printf '%s %s\n' "$audit" "$owner" >> "$root/log/lock-breaks.log"
printf 'broken %s %s\n' "$(printf '%s' "$owner" | base64 -w0)" "$generation"

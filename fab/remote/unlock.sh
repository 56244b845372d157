# Breaks the deploy lock (the file $1) for the odd holder that hangs: stops the
# process holding it and appends "$5 <holder record>" to the log $4.
#   $1 the lock file, $2 $3 its owner record and broken files (Paths.lock,
#      .lock_owner, .lock_broken; see lock.sh), $4 Paths.lock_breaks_log
#   $5 the audit line
#   $6 fence.sh, $7 $8 its files: the lock's generation goes up, so the holder's
#      swaps are refused from now on, should it wake up (see swap.sh)
# (fab.operations.lock.unlock_arguments builds them.)
# Prints "free" if nothing held it, else "broken <base64 of the holder record>
# <generation>".
#
# The record names the holder's pid, but the deploy user (the app) can write
# the record: only a process of ours that holds this very lock file open is
# stopped. Anything else is refused, and nothing is signalled.
lockfile=$1
owner_file=$2
broken=$3
breaks_log=$4
audit=$5
fence=$6
fence_files=("$7" "$8")
if [ ! -e "$lockfile" ] || flock -n "$lockfile" true; then
  echo free
  exit 0
fi
owner=$(head -c 4096 "$owner_file" 2>/dev/null || echo '{}')
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
printf '%s\n' "$audit" > "$broken"
# lock.sh leads its own process group (step.sh runs it as a job): stop all
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
generation=$(bash -c "$fence" fence "${fence_files[@]}" next) || exit 1
mkdir -p "${breaks_log%/*}"
printf '%s %s\n' "$audit" "$owner" >> "$breaks_log"
printf 'broken %s %s\n' "$(printf '%s' "$owner" | base64 -w0)" "$generation"

# Breaks the deploy lock under $1 for the odd holder that hangs: stops the
# process holding it and appends "$2 <holder record>" to log/lock-breaks.log.
# Prints "free" if nothing held it, else "broken <base64 of the holder record>".
root=$1
audit=$2
lockfile="$root/.deploy.lock"
if [ ! -e "$lockfile" ] || flock -n "$lockfile" true; then
  echo free
  exit 0
fi
owner=$(cat "$root/.deploy.lock.owner" 2>/dev/null || echo '{}')
pid=$(printf '%s' "$owner" | sed -n 's/.*"lock_pid": \([0-9][0-9]*\).*/\1/p')
[ -n "$pid" ] && kill -TERM -- "-$pid" 2>/dev/null
tries=0
until flock -n "$lockfile" true; do
  tries=$((tries + 1))
  if [ "$tries" -gt 100 ]; then
    echo "the lock is still held after stopping pid ${pid:-?}" >&2
    exit 1
  fi
  sleep 0.05
done
mkdir -p "$root/log"
printf '%s %s\n' "$audit" "$owner" >> "$root/log/lock-breaks.log"
printf 'broken %s\n' "$(printf '%s' "$owner" | base64 -w0)"

# Points $1/current at releases/$2 with a temporary link renamed over it (never
# rm + ln); with $2 empty, removes `current` (undoing a first deploy).
# $3 $4 fence the swap: the task's id and a counter that only grows within it.
# A swap an interrupt cut short can still land on the host after the swap that
# puts the host back; it then finds a later counter of its own task recorded
# and refuses instead of undoing the put-back. Prints previous=<old target>.
root=$1
release=$2
task=$3
counter=$4
cd "$root" || exit 1
exec 8>>.swap.lock
flock 8
read -r last_task last_counter < .swap.fence 2>/dev/null || true
if [ "$last_task" = "$task" ] && [ "$counter" -lt "${last_counter:-0}" ]; then
  echo "a later swap of this task already ran here: this one is stale" >&2
  exit 1
fi
previous=$(readlink current 2>/dev/null || true)
if [ -n "$release" ]; then
  [ -d "releases/$release" ] || { echo "release $release does not exist" >&2; exit 1; }
  ln -sfn "releases/$release" ".current.tmp.$$"
  mv -Tf ".current.tmp.$$" current
else
  rm -f current
fi
printf '%s %s\n' "$task" "$counter" > .swap.fence
echo "previous=$previous"

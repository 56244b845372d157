# Points $1/current at releases/$2 with a temporary link renamed over it (never
# rm + ln); with $2 empty, removes `current` (undoing a first deploy).
# Prints previous=<old target>.
#
# Two fences keep a swap that should not happen from landing:
# - $3 $4: the task's id and a counter that only grows within it. A swap an
#   interrupt cut short can still land on the host after the swap that puts the
#   host back; it then finds a later counter of its own task recorded and refuses
#   instead of undoing the put-back.
# - $5: the deploy lock generation its task holds ($6 is fence.sh). Once the lock
#   was broken (`unlock`) or taken by a later holder, the host has seen a later
#   generation and refuses: a deployer that lost its lock changes nothing more.
#   Only a put-back ($7 = putback) goes through, and only where the last swap was
#   its own task's (nobody swapped since), or where nothing would change.
root=$1
release=$2
task=$3
counter=$4
generation=${5:-0}
fence=$6
mode=$7
cd "$root" || exit 1
exec 8>>.swap.lock
flock 8
read -r last_task last_counter < .swap.fence 2>/dev/null || true
if [ "$last_task" = "$task" ] && [ "$counter" -lt "${last_counter:-0}" ]; then
  echo "a later swap of this task already ran here: this one is stale" >&2
  exit 1
fi
previous=$(readlink current 2>/dev/null || true)
wanted=${release:+releases/$release}
if [ -n "$fence" ]; then
  seen=$(bash -c "$fence" fence . check "$generation")
  case $? in
    0) ;;
    2)
      if [ "$previous" = "$wanted" ]; then
        echo "previous=$previous"  # nothing to change
        exit 0
      fi
      if [ "$mode" != putback ] || [ "$last_task" != "$task" ]; then
        echo "refused: the deploy lock of this task was broken or taken over (lock generation $generation, this host has seen $seen)" >&2
        exit 1
      fi ;;
    *) exit 1 ;;
  esac
fi
if [ -n "$release" ]; then
  [ -d "releases/$release" ] || { echo "release $release does not exist" >&2; exit 1; }
  ln -sfn "releases/$release" ".current.tmp.$$"
  mv -Tf ".current.tmp.$$" current
else
  rm -f current
fi
printf '%s %s\n' "$task" "$counter" > .swap.fence
echo "previous=$previous"

# The deploy lock's generation on this host: a number that grows with every
# holder of the lock and every `unlock`. A swap carries its holder's generation
# and a host refuses it once it has seen a later one: a deployer whose lock was
# broken cannot swap, however late it wakes up.
#   $1 the file it is kept in, $2 the file flock'ed while it changes
#      (Paths.lock_generation, .fence_lock; fab.operations.lock.fence_files)
#   $3 the action, $4 G:
#   next     raise it past its value and now (microseconds: a new lock host's
#            count still goes past the old one's); print it   (lock.sh, unlock.sh)
#   raise G  raise it to G if lower                            (unlock, other hosts)
#   check G  exit 0 if G is not behind it (raising it to G), 2 if it is (swap.sh)
# It runs in a subshell of lock.sh and swap.sh, and in a bash of its own from
# unlock.sh: it assigns every variable it reads.
file=$1
fence_lock=$2
action=$3
given=$4
valid() { [[ $1 =~ ^[0-9]{1,18}$ ]]; }
[ "$action" = next ] || valid "$given" || { echo "invalid lock generation: $given" >&2; exit 1; }
read_seen() {
  seen=
  read -r seen < "$file" 2>/dev/null
  valid "$seen" || seen=0  # missing or not ours to trust: counted from zero
  seen=$((10#$seen))
}
if [ "$action" = check ]; then
  # A check that changes nothing (the usual one: a swap of the holder whose generation
  # the host has) takes no flock, a process less: the file is only ever renamed over
  # whole, and only grows, so a value read now is as conclusive as one read under it.
  read_seen
  if [ "$((10#$given))" -eq "$seen" ]; then exit 0; fi
  if [ "$((10#$given))" -lt "$seen" ]; then echo "$seen"; exit 2; fi
fi
exec 7>>"$fence_lock"
flock 7
read_seen
case $action in
  next)
    now=${EPOCHREALTIME/[.,]/}
    given=$((seen + 1 > 10#$now ? seen + 1 : 10#$now)) ;;
  raise) given=$((10#$given)) ;;
  check)
    given=$((10#$given))
    if [ "$given" -lt "$seen" ]; then
      echo "$seen"
      exit 2
    fi ;;
  *) echo "unknown fence action: $action" >&2; exit 1 ;;
esac
if [ "$given" -gt "$seen" ]; then
  printf '%s\n' "$given" > "$file.tmp.$$" && mv -f "$file.tmp.$$" "$file" || exit 1
fi
[ "$action" = next ] && echo "$given"
exit 0

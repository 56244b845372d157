# Holds the environment's deploy lock, an flock on the file $1 (Paths.lock), for
# as long as this step runs. The step ends when the deployer's connection closes
# (see step.sh), and the kernel frees an flock with the process that holds it: the
# lock cannot outlive its deploy, however and wherever the deployer stopped.
#   $1 the lock file, $2 $3 $4 its owner record, released and broken files
#      (Paths.lock_owner, .lock_released, .lock_broken)
#   $5 the holder's record (JSON), shown to whoever is refused
#   $6 fence.sh, $7 $8 its files (Paths.lock_generation, .fence_lock)
#   $9 the environment's freeze file (Paths.freeze)
#   $10..., if given: the state script (state.sh) and its arguments: this host's
#      state is read under the lock, in this same round trip, and followed by a
#      line "@@state-end"
# (fab.operations.lock.lock_arguments builds them.)
#
# The answer is "acquired <released> <now> <generation> <previous holder> <freeze>":
# <released> (this host's clock) is when the last holder let go, "-" if it never
# did cleanly (killed outright, host rebooted), "fresh" if nobody ever held the
# lock. The deployer reads the other hosts while it takes the lock, and reads
# them again if that may have predated the last holder's final changes.
# <generation> grows with every holder and every `unlock` (fence.sh): the
# holder's swaps carry it, and a host refuses a swap from a holder whose lock
# was broken since (swap.sh). <previous holder> is the base64 of the last
# holder's record ("-" if none): whether the holder of a claim in the history
# store held this lock, and so is gone now that we have it (fab/history/claims.py).
# <freeze> is the base64 of the freeze record ("-" if not frozen), read under the
# lock: a task a freeze stops lets go at once (fab/freezes.py).
#
# When `unlock` stops us, we say so before we go: "broken <base64 of its audit line>".
lockfile=$1
owner=$2
released_file=$3
broken=$4
record=$5
fence=$6
fence_files=("$7" "$8")
freeze_file=$9
shift 9
# Every host takes or reads this lock on every deploy: no process that is not needed.
[ -d "${lockfile%/*}" ] || mkdir -p "${lockfile%/*}" || exit 1
exec 9>>"$lockfile"
if ! flock -n 9; then
  printf 'held %s\n' "$(base64 -w0 < "$owner" 2>/dev/null)"
  exit 3
fi
released=-
if [ -f "$released_file" ]; then
  read -r released < "$released_file" || released=-
  # Ours to write when we let go: emptied (read as "-" if we never do), not removed (no process).
  : 2>/dev/null > "$released_file"
elif [ ! -e "$owner" ]; then
  released=fresh
fi
previous=$(base64 -w0 < "$owner" 2>/dev/null)
if [ -e "$broken" ]; then rm -f "$broken"; fi  # an earlier holder's news
# fence.sh and state.sh run in subshells of this one, not in a bash of their own.
generation=$(set -- "${fence_files[@]}" next; eval "$fence") || exit 1
# Letting go (our connection closed, or `unlock`: TERM either way) is recorded
# before the kernel frees the lock; the sleeper goes too, whoever was signalled.
sleeper=
let_go() {
  kill "$sleeper" 2>/dev/null
  if [ -f "$broken" ]; then
    printf 'broken %s\n' "$(base64 -w0 < "$broken")"
  fi
  printf "%s\n" "${EPOCHREALTIME/,/.}" > "$released_file"
  exit 0
}
trap let_go TERM
# Our pid leads this step's process group: `unlock` may stop it (only it: it
# checks that the pid holds this lock file open).
printf '%s\n' "${record%\}}, \"lock_pid\": $BASHPID}" > "$owner"
freeze=
if [ -f "$freeze_file" ]; then freeze=$(base64 -w0 < "$freeze_file"); fi
echo "acquired ${released:--} ${EPOCHREALTIME/,/.} $generation ${previous:--} ${freeze:--}"
if [ "$#" -gt 0 ]; then
  (
    exec 9>&-
    state_script=$1
    shift
    eval "$state_script"
  )
  echo "@@state-end"
fi
while :; do
  sleep 3600 9>&- &
  sleeper=$!
  wait "$sleeper"
done

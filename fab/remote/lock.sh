# Holds the environment's deploy lock, an flock on $1/.deploy.lock, for as long
# as this step runs. The step ends when the deployer's connection closes (see
# step.sh), and the kernel frees an flock with the process that holds it: the
# lock cannot outlive its deploy, however and wherever the deployer stopped.
# $2 is the holder's record (JSON) shown to whoever is refused. $3, if given, is
# the state script (state.sh): this host's state is read under the lock, in this
# same round trip, and followed by a line "@@state-end". $4 is fence.sh.
#
# The answer is "acquired <released> <now> <generation> <previous holder>":
# <released> (this host's clock) is when the last holder let go, "-" if it never
# did cleanly (killed outright, host rebooted), "fresh" if nobody ever held the
# lock. The deployer reads the other hosts while it takes the lock, and reads
# them again if that may have predated the last holder's final changes.
# <generation> grows with every holder and every `unlock` (fence.sh): the
# holder's swaps carry it, and a host refuses a swap from a holder whose lock
# was broken since (swap.sh). <previous holder> is the base64 of the last
# holder's record ("-" if none): whether the holder of a claim in the history
# store held this lock, and so is gone now that we have it (fab/history/claims.py).
#
# When `unlock` stops us, we say so before we go: "broken <base64 of its audit line>".
root=$1
record=$2
state=$3
fence=$4
mkdir -p "$root" || exit 1
exec 9>>"$root/.deploy.lock"
if ! flock -n 9; then
  printf 'held %s\n' "$(base64 -w0 < "$root/.deploy.lock.owner" 2>/dev/null)"
  exit 3
fi
released=-
if [ -f "$root/.deploy.lock.released" ]; then
  read -r released < "$root/.deploy.lock.released" || released=-
  rm -f "$root/.deploy.lock.released"  # ours to write when we let go
elif [ ! -e "$root/.deploy.lock.owner" ]; then
  released=fresh
fi
previous=$(base64 -w0 < "$root/.deploy.lock.owner" 2>/dev/null)
rm -f "$root/.deploy.lock.broken"  # an earlier holder's news
generation=$(bash -c "$fence" fence "$root" next) || exit 1
# Letting go (our connection closed, or `unlock`: TERM either way) is recorded
# before the kernel frees the lock; the sleeper goes too, whoever was signalled.
sleeper=
let_go() {
  kill "$sleeper" 2>/dev/null
  if [ -f "$root/.deploy.lock.broken" ]; then
    printf 'broken %s\n' "$(base64 -w0 < "$root/.deploy.lock.broken")"
  fi
  printf "%s\n" "${EPOCHREALTIME/,/.}" > "$root/.deploy.lock.released"
  exit 0
}
trap let_go TERM
# Our pid leads this step's process group: `unlock` may stop it (only it: it
# checks that the pid holds this lock file open).
printf '%s\n' "${record%\}}, \"lock_pid\": $$}" > "$root/.deploy.lock.owner"
echo "acquired ${released:--} ${EPOCHREALTIME/,/.} $generation ${previous:--}"
if [ -n "$state" ]; then
  bash -c "$state" state "$root" 9>&-
  echo "@@state-end"
fi
while :; do
  sleep 3600 9>&- &
  sleeper=$!
  wait "$sleeper"
done

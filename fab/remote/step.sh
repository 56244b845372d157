# Runs one step's script ($1, with the rest as its arguments) so that it dies
# with its SSH connection. Without a terminal, sshd does not signal a command
# when the connection closes: a step the controller gave up on (Ctrl-C, a
# timeout, a killed deployer) would go on changing the host. So the step runs
# as a job of its own (job control gives it its own process group, which it
# leads: unlock.sh relies on that too), and a watcher that reads our stdin
# (which the controller never closes) kills that whole group when stdin reaches
# its end.
script=$1
shift
exec 3<&0
set -m
bash -c "$script" fab-step "$@" </dev/null &
step=$!
set +m
( while IFS= read -r _; do :; done; kill -TERM -- "-$step" 2>/dev/null ) <&3 &
watcher=$!
exec 3<&-
wait "$step"
status=$?
kill "$watcher" 2>/dev/null
exit "$status"

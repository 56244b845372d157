# Runs one step's script ($1, with the rest as its arguments) so that it dies
# with its SSH connection. Without a terminal, sshd does not signal a command
# when the connection closes: a step the controller gave up on (Ctrl-C, a
# timeout, a killed deployer) would go on changing the host. So the step runs
# in its own session, and a watcher that reads our stdin (which the controller
# never closes) kills that whole session when stdin reaches its end.
script=$1
shift
exec 3<&0
setsid bash -c "$script" fab-step "$@" </dev/null &
step=$!
( while IFS= read -r _; do :; done; kill -TERM -- "-$step" 2>/dev/null ) <&3 &
watcher=$!
exec 3<&-
wait "$step"
status=$?
kill "$watcher" 2>/dev/null
exit "$status"

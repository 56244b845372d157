# Runs one step's script ($1, with the rest as its arguments) so that it dies
# with its SSH connection. Without a terminal, sshd does not signal a command
# when the connection closes: a step the controller gave up on (Ctrl-C, a
# timeout, a killed deployer) would go on changing the host. So the step runs
# as a job of its own (job control gives it its own process group, which it
# leads: unlock.sh relies on that too), and a watcher that reads our stdin
# (which the controller never closes) kills that whole group when stdin reaches
# its end. The job is a subshell that evals the script, not a bash of its own
# (about 1.5 ms of a host's CPU per step): our variables are named fab_step_*,
# and a script that needs its own pid reads $BASHPID ($$ is ours).
fab_step_script=$1
shift
exec 3<&0
set -m
( exec 3<&- </dev/null; eval "$fab_step_script" ) &
fab_step_job=$!
set +m
( while IFS= read -r _; do :; done; kill -TERM -- "-$fab_step_job" 2>/dev/null ) <&3 &
fab_step_watcher=$!
exec 3<&-
wait "$fab_step_job"
fab_step_status=$?
kill "$fab_step_watcher" 2>/dev/null
exit "$fab_step_status"

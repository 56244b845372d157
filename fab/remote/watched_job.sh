# The function step.sh and serve.sh include (a line `#@include watched_job.sh`):
# how a command runs on a host so that it dies with its SSH connection. Without a
# terminal, sshd does not signal a command when the connection closes: a command
# the controller gave up on (Ctrl-C, a timeout, a killed deployer) would go on
# changing the host.
#   fab_job_run <script> [<argument>...]: runs shell text <script>, with the
#   arguments as $1..., as a job of its own (job control gives it its own process
#   group, which it leads: unlock.sh relies on that) with stdin /dev/null and fd 3
#   closed, and a watcher that reads fd 3 (the caller's stdin, which the controller
#   leaves open while a command runs) kills that whole group when fd 3 reaches its
#   end. The job is a subshell that evals the script, not a bash of its own (about
#   1.5 ms of a host's CPU each): its caller's variables are named fab_*, and a
#   script that needs its own pid reads $BASHPID. Once the job ended, the watcher is
#   stopped and waited for (what comes next on fd 3 is the caller's), and the
#   function returns the job's exit status.
fab_job_run() {
  local fab_job_script=$1 fab_job_pid fab_job_watcher fab_job_status
  shift
  set -m
  ( exec 3<&- </dev/null; eval "$fab_job_script" ) &
  fab_job_pid=$!
  set +m
  ( while IFS= read -r -u 3 _; do :; done; kill -TERM -- "-$fab_job_pid" 2>/dev/null ) &
  fab_job_watcher=$!
  wait "$fab_job_pid"
  fab_job_status=$?
  kill "$fab_job_watcher" 2>/dev/null
  wait "$fab_job_watcher" 2>/dev/null
  return "$fab_job_status"
}

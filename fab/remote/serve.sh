# Runs the commands the controller writes on our stdin one after another, each as
# a step that dies with its SSH connection (as step.sh runs one): one session per
# host for a whole task, not one per command (fab.session.Shell).
# A command comes as a line "<token> <bytes>", then that many bytes of shell (the
# script after `set -- <its arguments>`: fab.shell.with_arguments). It runs as a
# job of its own (fab_job_run: its own process group, in a subshell, stdin
# /dev/null), and a watcher reads our stdin while it runs: when stdin ends (the
# controller closed the session: it is gone, interrupted, or the command ran out of
# time) it stops the job's whole group. The controller writes nothing while a
# command runs. When the job ends, the watcher goes first (the next command is ours
# to read), then "@@fab-done <token> <status>" and a newline, right after the job's
# output on stdout and on stderr: the controller reads each stream up to it, and has
# the command's output whole.
# Our variables are named fab_serve_* (and fab_job_*); the token is not the job's to see.
# fab_serve_scratch names a directory the commands may make (batch.sh does) and
# keep their scratch files in for the session: it goes when we end.
#@include watched_job.sh
exec 3<&0 </dev/null
fab_serve_scratch=${TMPDIR:-/tmp}/fab-steps.$$.$RANDOM$RANDOM
trap '[ ! -d "$fab_serve_scratch" ] || rm -rf -- "$fab_serve_scratch"' EXIT
while IFS=' ' read -r -u 3 fab_serve_token fab_serve_size; do
  [[ $fab_serve_size =~ ^[0-9]+$ ]] || { echo "serve.sh: not a command: ${fab_serve_token@Q}" >&2; exit 2; }
  LC_ALL=C read -r -u 3 -N "$fab_serve_size" fab_serve_command || exit 2
  fab_job_run "unset fab_serve_token"$'\n'"$fab_serve_command"
  fab_serve_status=$?
  printf '@@fab-done %s %s\n' "$fab_serve_token" "$fab_serve_status"
  printf '@@fab-done %s %s\n' "$fab_serve_token" "$fab_serve_status" >&2
done

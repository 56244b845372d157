# Runs one step's script ($1, with the rest as its arguments) so that it dies
# with its SSH connection (fab_job_run: a job of its own, which a watcher of our
# stdin stops when the controller is gone), exiting with its status. Our variables
# are named fab_step_* (and fab_job_*).
#@include watched_job.sh
fab_step_script=$1
shift
exec 3<&0 </dev/null
fab_job_run "$fab_step_script" "$@"

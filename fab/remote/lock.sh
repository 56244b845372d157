# Holds the environment's deploy lock, an flock on $1/.deploy.lock, for as long
# as this step runs. The step ends when the deployer's connection closes (see
# step.sh), and the kernel frees an flock with the process that holds it: the
# lock cannot outlive its deploy, however and wherever the deployer stopped.
# $2 is the holder's record (JSON) shown to whoever is refused.
root=$1
record=$2
mkdir -p "$root" || exit 1
exec 9>>"$root/.deploy.lock"
if ! flock -n 9; then
  printf 'held %s\n' "$(base64 -w0 < "$root/.deploy.lock.owner" 2>/dev/null)"
  exit 3
fi
# Our pid leads this step's process group: `unlock` may stop it.
printf '%s\n' "${record%\}}, \"lock_pid\": $$}" > "$root/.deploy.lock.owner"
echo acquired
while :; do sleep 3600 9>&-; done

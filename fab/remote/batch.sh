# Runs a host's steps in order in one round trip, stopping at the first failure
# (fab.steps.compose builds the arguments). Four arguments per step:
#   its name, its directory ('' for home), its marker ('' for none: a step with a
#   marker runs once per release, skipped if the marker exists, which is created
#   when it succeeds), and its body (shell, run in a subshell under set -e).
# Each step reports on a line of its own that it started, then how it ended
# (@@fab-step <started|ok|skipped|failed> <name> <start> <end> <note>): its note
# is its last output line, carriage returns dropped. On a failure, the step's
# own output goes to stderr and the batch exits with the step's status. Per
# step the batch starts one process (the step's subshell): on a 50-host fleet
# every fork costs, so times, notes and markers use builtins.
fab_dir=$(mktemp -d "${TMPDIR:-/tmp}/fab-steps.XXXXXX") || exit 1
trap 'rm -rf "$fab_dir"' EXIT
report() { printf '@@fab-step %s %s %s %s %s\n' "$1" "$2" "$3" "$4" "${5//$'\r'/}"; }
while [ "$#" -ge 4 ]; do
  name=$1 dir=$2 marker=$3 body=$4
  shift 4
  # A leading ~ is the home directory (paths may be given so), expanded without a process.
  case $dir in '' | \~) dir=$HOME ;; \~/*) dir=$HOME/${dir:2} ;; esac
  case $marker in \~/*) marker=$HOME/${marker:2} ;; esac
  if [ -n "$marker" ] && [ -e "$marker" ]; then report skipped "$name" 0 0 ''; continue; fi
  started=${EPOCHREALTIME:-$(date +%s.%N)}
  report started "$name" "$started" "$started" ''
  # The body sees no arguments of ours: `set --` before it.
  ( set -e; set --; cd "$dir"; eval "$body" ) >"$fab_dir/out" 2>"$fab_dir/err" </dev/null
  status=$?
  ended=${EPOCHREALTIME:-$(date +%s.%N)}
  if [ "$status" -ne 0 ]; then
    report failed "$name" "$started" "$ended" ''
    cat "$fab_dir/out" "$fab_dir/err" >&2
    exit "$status"
  fi
  if [ -n "$marker" ]; then : > "$marker"; fi
  note=
  mapfile -t lines < "$fab_dir/out"
  if [ "${#lines[@]}" -gt 0 ]; then note=${lines[-1]}; fi
  report ok "$name" "$started" "$ended" "$note"
done

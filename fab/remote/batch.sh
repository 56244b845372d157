# Runs a host's steps in order in one round trip, stopping at the first failure
# (fab.steps.arguments builds the arguments). Four arguments per step:
#   its name, its directory ('' for home), its marker ('' for none: a step with a
#   marker runs once per release, skipped if the marker exists, which is created
#   when it succeeds), and its body (shell, run in a subshell under set -e).
# Each step reports on a line of its own that it started, then how it ended
# (@@fab-step <started|ok|skipped|failed> <name> <start> <end> <note>): its note
# is its last output line, carriage returns dropped. On a failure, the step's
# own output goes to stderr and the batch exits with the step's status. Per
# step the batch starts one process (the step's subshell): on a 50-host fleet
# every fork costs, so times, notes and markers use builtins, and a step's
# script runs in that subshell (fab.shell.step_script). So this script's own
# variables are all named fab_*, a name no remote script uses: a step sees none
# it did not set. Under serve.sh, the steps' output files are kept in its scratch
# directory (made once per session, removed when it ends: two processes fewer per
# batch), if it is ours; otherwise in a directory of the batch's own.
fab_tmp=${fab_serve_scratch:-}
if [ -z "$fab_tmp" ] || ! { [ -d "$fab_tmp" ] || mkdir -m 700 -- "$fab_tmp" 2>/dev/null; } ||
  [ -L "$fab_tmp" ] || [ ! -O "$fab_tmp" ]; then
  fab_tmp=$(mktemp -d "${TMPDIR:-/tmp}/fab-steps.XXXXXX") || exit 1
  trap 'rm -rf "$fab_tmp"' EXIT
fi
fab_report() { printf '@@fab-step %s %s %s %s %s\n' "$1" "$2" "$3" "$4" "${5//$'\r'/}"; }
while [ "$#" -ge 4 ]; do
  fab_name=$1 fab_dir=$2 fab_marker=$3 fab_body=$4
  shift 4
  # A leading ~ is the home directory (paths may be given so), expanded without a process.
  case $fab_dir in '' | \~) fab_dir=$HOME ;; \~/*) fab_dir=$HOME/${fab_dir:2} ;; esac
  case $fab_marker in \~/*) fab_marker=$HOME/${fab_marker:2} ;; esac
  if [ -n "$fab_marker" ] && [ -e "$fab_marker" ]; then fab_report skipped "$fab_name" 0 0 ''; continue; fi
  fab_started=${EPOCHREALTIME:-$(date +%s.%N)}
  fab_report started "$fab_name" "$fab_started" "$fab_started" ''
  # The body sees no arguments of ours: `set --` before it.
  ( set -e; set --; cd "$fab_dir"; eval "$fab_body" ) >"$fab_tmp/out" 2>"$fab_tmp/err" </dev/null
  fab_status=$?
  fab_ended=${EPOCHREALTIME:-$(date +%s.%N)}
  if [ "$fab_status" -ne 0 ]; then
    fab_report failed "$fab_name" "$fab_started" "$fab_ended" ''
    cat "$fab_tmp/out" "$fab_tmp/err" >&2
    exit "$fab_status"
  fi
  if [ -n "$fab_marker" ]; then : > "$fab_marker"; fi
  fab_note=
  mapfile -t fab_lines < "$fab_tmp/out"
  if [ "${#fab_lines[@]}" -gt 0 ]; then fab_note=${fab_lines[-1]}; fi
  fab_report ok "$fab_name" "$fab_started" "$fab_ended" "$fab_note"
done

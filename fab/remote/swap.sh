# Points the link $1 (Paths.current) at $2 (Paths.current_target: releases/<name>,
# the release directory $3) with a temporary link ($4.<pid>, Paths.current_temp)
# renamed over it (never rm + ln); with $2 empty, removes the link (undoing a
# first deploy). Prints previous=<old target>.
#
# Two fences keep a swap that should not happen from landing:
# - $7 $8: the task's id and a counter that only grows within it. A swap an
#   interrupt cut short can still land on the host after the swap that puts the
#   host back; it then finds a later counter of its own task recorded (in the
#   file $6, Paths.swap_fence; swaps take turns on an flock on $5, Paths.swap_lock)
#   and refuses instead of undoing the put-back.
# - ${11}: the deploy lock generation its task holds (${12} is fence.sh, ${13}
#   ${14} its files). Once the lock was broken (`unlock`) or taken by a later
#   holder, the host has seen a later generation and refuses: a deployer that
#   lost its lock changes nothing more. Only a put-back (${15} = putback) goes
#   through, and only where the last swap was its own task's (nobody swapped
#   since), or where nothing would change.
# $9 $10: the link's target as the deployer read it, and that release's directory
# ("" "": none): where the link still leads there, it is not read again (a process).
# (fab.operations.current.swap_arguments builds them.)
current=$1
target=$2
release_dir=$3
temp=$4.$$
swap_lock=$5
swap_fence=$6
task=$7
counter=$8
read_target=$9
read_dir=${10}
generation=${11:-0}
fence=${12}
fence_files=("${13}" "${14}")
mode=${15}
exec 8>>"$swap_lock" || exit 1
flock 8
last_task='' last_counter=''
read -r last_task last_counter < "$swap_fence" 2>/dev/null || true
if [ "$last_task" = "$task" ] && [ "$counter" -lt "${last_counter:-0}" ]; then
  echo "a later swap of this task already ran here: this one is stale" >&2
  exit 1
fi
if [ -n "$read_dir" ] && [ -L "$current" ] && [ "$current" -ef "$read_dir" ]; then
  previous=$read_target
else
  previous=$(readlink "$current" 2>/dev/null || true)
fi
if [ -n "$fence" ]; then
  seen=$(set -- "${fence_files[@]}" check "$generation"; eval "$fence")  # in a subshell, not a bash of its own
  case $? in
    0) ;;
    2)
      if [ "$previous" = "$target" ]; then
        echo "previous=$previous"  # nothing to change
        exit 0
      fi
      if [ "$mode" != putback ] || [ "$last_task" != "$task" ]; then
        echo "refused: the deploy lock of this task was broken or taken over (lock generation $generation, this host has seen $seen)" >&2
        exit 1
      fi ;;
    *) exit 1 ;;
  esac
fi
if [ -n "$target" ]; then
  [ -d "$release_dir" ] || { echo "release ${release_dir##*/} does not exist" >&2; exit 1; }
  ln -sfn "$target" "$temp"
  mv -Tf "$temp" "$current"
else
  rm -f "$current"
fi
printf '%s %s\n' "$task" "$counter" > "$swap_fence"
echo "previous=$previous"

# Functions of the scripts that write to a host's git cache (checkout.sh, cleanup.sh):
# they include it (a line `#@include git_cache_functions.sh`: fab.shell.remote_script).
#
# Every git command that writes to the cache runs under the environment's deploy lock
# (fab/remote/lock.sh), so no other git process of ours can be at work in it: a lock
# file git finds there (refs/.../<ref>.lock, packed-refs.lock, config.lock) was left by
# a git that was killed (a deployer stopped mid-fetch), and would stop every later
# deploy to the host until someone removed it by hand.
#
# git_in_cache CACHE INPUT GIT-ARGS...: `git --git-dir=CACHE GIT-ARGS...` (INPUT on its
# stdin unless ""), in English; its output, both streams, is left in git_output. When
# it fails on lock files that exist, it removes them (those git names, inside CACHE
# only) and runs again, as long as each failure names a lock file not removed yet;
# what it removed is added to git_locks_removed (paths in the cache, space-separated).
# One process, git's own, unless a lock is in the way (`exec` in the substitution:
# bash forks once for it, not twice).
#
# stale_git_locks CACHE OUTPUT: the lock files inside CACHE that git's OUTPUT says exist
# (one a line, relative to CACHE); fails if it names none, or one that is not a *.lock
# file inside CACHE reached through no symlink (nothing outside the cache is touched).
#
# git_failed: what the failed git_in_cache said, on stderr; the script stops there.
#
# (Described here: the opening comments are not sent to the hosts.)
git_in_cache() {
  local cache=$1 input=$2 status named lock
  shift 2
  while :; do
    if [ -n "$input" ]; then
      git_output=$(LC_ALL=C exec git --git-dir="$cache" "$@" 2>&1 <<<"$input") && return 0
    else
      git_output=$(LC_ALL=C exec git --git-dir="$cache" "$@" 2>&1) && return 0
    fi
    status=$?
    named=$(stale_git_locks "$cache" "$git_output") || return "$status"
    while IFS= read -r lock; do
      case " $git_locks_removed " in *" $lock "*) return "$status" ;; esac  # it came back: not stale
      rm -f -- "$cache/$lock" || return "$status"
      git_locks_removed+="${git_locks_removed:+ }$lock"
    done <<<"$named"
  done
}

stale_git_locks() {
  local cache=$1 output=$2 path relative dir part found='' newline=$'\n'
  local in_use="Unable to create '([^'$newline]+\.lock)': File exists"
  local config="could not lock config file ([^$newline]+): File exists"
  while [[ $output =~ $in_use|$config ]]; do
    output=${output#*"${BASH_REMATCH[0]}"}
    path=${BASH_REMATCH[1]:-${BASH_REMATCH[2]}.lock}
    case $path in
      "$cache"/*) relative=${path#"$cache"/} ;;
      "$PWD/$cache"/*) relative=${path#"$PWD/$cache"/} ;;  # git made a relative cache absolute
      *) return 1 ;;
    esac
    case /$relative/ in */../* | */./* | *//*) return 1 ;; esac
    dir=$cache
    part=$relative
    while [[ $part == */* ]]; do
      dir+=/${part%%/*}
      part=${part#*/}
      if [ -L "$dir" ] || [ ! -d "$dir" ]; then return 1; fi
    done
    if [ -L "$cache/$relative" ] || [ ! -f "$cache/$relative" ]; then return 1; fi
    found+="${found:+$'\n'}$relative"
  done
  [ -n "$found" ] && printf '%s\n' "$found"
}

git_failed() {
  printf '%s\n' "$git_output" >&2
  exit 1
}

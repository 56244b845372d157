# Prints what a host has under the code root $1, one fact per line:
#   home, cpus, current, lock (base64 of its owner record), release, meta
#   (base64 of meta.json) and step lines. Read-only.
root=$1
printf 'home %s\n' "$HOME"
printf 'cpus %s\n' "$(nproc 2>/dev/null || echo 1)"
if [ -L "$root/current" ]; then printf 'current %s\n' "$(readlink "$root/current")"; fi
if [ -d "$root/releases" ]; then
  for dir in "$root"/releases/*/; do
    [ -d "$dir" ] || continue
    name=$(basename "$dir")
    printf 'release %s\n' "$name"
    if [ -f "$dir.release/meta.json" ]; then
      printf 'meta %s %s\n' "$name" "$(base64 -w0 < "$dir.release/meta.json")"
    fi
    for step in "$dir".release/steps/*; do
      [ -e "$step" ] && printf 'step %s %s\n' "$name" "$(basename "$step")"
    done
  done
fi
true

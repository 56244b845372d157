# Prints what a host has under the code root $1, one fact per line:
#   home, cpus, current, release, meta (base64 of meta.json), conf (a digest
#   of each supervisor program's config), venv (the key of the virtualenv a
#   release links to) and step lines. Read-only.
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
    for conf in "$dir"services/supervisor/*.conf; do
      [ -f "$conf" ] && printf 'conf %s %s %s\n' "$name" "$(sha256sum < "$conf" | cut -c1-16)" "${conf##*/}"
    done
    if [ -L "$dir/python_env" ]; then
      printf 'venv %s %s\n' "$name" "$(basename "$(readlink "$dir/python_env")")"
    fi
    for step in "$dir".release/steps/*; do
      [ -e "$step" ] && printf 'step %s %s\n' "$name" "$(basename "$step")"
    done
  done
fi
true

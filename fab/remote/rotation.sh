# Prints the upstream lists a proxy host has (what its proxies send traffic to),
# for `releases`. Read-only.
#   $1... the upstream files (Paths.proxy_upstream), one per proxy service here
# Lines: `upstream <index of the file, from 1> <base64 of its text>`, or
#        `upstream <index> missing` when the file is not there.
index=0
for file in "$@"; do
  index=$((index + 1))
  if [ -f "$file" ]; then
    printf 'upstream %s %s\n' "$index" "$(base64 -w0 < "$file")"
  else
    printf 'upstream %s missing\n' "$index"
  fi
done

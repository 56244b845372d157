# Switches a proxy's maintenance page on or off: writes (each to a temporary name,
# then renamed) or removes the snippet its config includes, with the page beside
# it, after checking that its live config includes that snippet; then, if the
# proxy runs, reloads it and waits until it has read its config. Sent after
# service_functions.sh, whose functions it calls.
#   $1 the snippet file   $2 its text ("": off, snippet and page removed)
#   $3 the page file      $4 its text
#   $5 the proxy's live config   $6 the pattern its server block includes
#   $7 the proxy's port   $8 its reload command
# Prints "on, reloaded pid PID" (or off), or "on (the proxy does not run: ...)".
set -e
snippet=$1
text=$2
page=$3
page_text=$4
config=$5
pattern=$6
port=$7
reload=$8
set --
if [ -f "$config" ] && ! grep -qF -- "$pattern" "$config"; then
  echo "$config does not include $pattern: its template's server block needs" \
       "include {{ maintenance.include | nginx_quote }};" >&2
  exit 1
fi
if [ -n "$text" ]; then
  mkdir -p -- "${snippet%/*}"
  printf '%s' "$page_text" > "$page.tmp.$$"
  mv -f -- "$page.tmp.$$" "$page"
  printf '%s' "$text" > "$snippet.tmp.$$"
  mv -f -- "$snippet.tmp.$$" "$snippet"
  switched=on
else
  rm -f -- "$snippet"
  switched=off
fi
pid=
if [ -n "$reload" ]; then pid=$(pid_on_port "$port"); fi
if [ -n "$pid" ]; then
  before=$(workers_of "$pid")
  eval "$reload" >&2
  wait_for_new_worker "$pid" "$before"
fi
# Off: the page goes once the workers that may still answer with it are told to stop.
if [ "$switched" = off ]; then rm -f -- "$page"; fi
if [ -n "$pid" ]; then
  printf '%s, reloaded pid %s\n' "$switched" "$pid"
else
  printf '%s (the proxy does not run: it starts so)\n' "$switched"
fi

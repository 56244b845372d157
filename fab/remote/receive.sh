# The host's side of receiving artifacts into its store (fab.transfer): each is
# kept as <store>/<sha256>/<name>, arriving as <name>.part, checked, then renamed.
#   $1 check:  for each artifact, prints "have <sha256>", or "part <sha256> <bytes>"
#              (a transfer cut short: it goes on from there), or "none <sha256>";
#              makes the directories of those missing; then "free <blocks> <block
#              size>": what the store's file system has left for them.
#   $1 verify: checks each .part against its digest and renames it; a file whose
#              digest does not match is deleted and named, and the host fails.
#              Prints "received <sha256> <bytes>" for each.
#   $1 keep:   as verify, but a part whose digest does not match (a peer sent it) is
#              deleted and reported as "refused <sha256> <why>", the others still kept:
#              the controller sends it again.
#   $1 inline: $3 one artifact's bytes in base64 (a small one, carried in the command:
#              fab.operations.inline_transfer), then its pair: written as its .part
#              (unless kept already), then as verify.
#   $2 the store (Paths.store); then pairs: a sha256, a file name.
set -e -o pipefail
mode=$1
store=$2
shift 2
case $mode in
  check | verify | keep) ;;
  inline) data=$1; shift; [ $# -eq 2 ] || { echo "receive.sh: inline takes one artifact" >&2; exit 2; } ;;
  *) echo "receive.sh: unknown mode ${mode@Q}" >&2; exit 2 ;;
esac
[ $(($# % 2)) -eq 0 ] || { echo "receive.sh: a digest without a file name" >&2; exit 2; }
while [ $# -gt 0 ]; do
  digest=$1
  name=$2
  shift 2
  [[ $digest =~ ^[0-9a-f]{64}$ && $name =~ ^[A-Za-z0-9][A-Za-z0-9._+-]*$ ]] || {
    echo "receive.sh: not an artifact: ${digest@Q} ${name@Q}" >&2; exit 2; }
  file=$store/$digest/$name
  if [ "$mode" = check ]; then
    if [ -f "$file" ]; then
      echo "have $digest"
    elif [ -f "$file.part" ]; then
      echo "part $digest $(stat -c %s -- "$file.part")"
    else
      mkdir -p -- "$store/$digest"
      echo "none $digest"
    fi
  elif [ ! -f "$file" ]; then
    if [ "$mode" = inline ]; then
      mkdir -p -- "$store/$digest"
      if ! why=$(base64 -d <<<"$data" 2>&1 >"$file.part"); then
        rm -f -- "$file.part"
        echo "$name: not kept: ${why:-base64 -d failed}" >&2; exit 1
      fi
    fi
    got=$(sha256sum -- "$file.part")
    if [ "${got%% *}" != "$digest" ]; then
      rm -f -- "$file.part"
      why="$name: sha256 ${got%% *} is not the $digest it was sent as (refused)"
      [ "$mode" = keep ] || { echo "$why" >&2; exit 1; }
      echo "refused $digest $why"
      continue
    fi
    mv -f -- "$file.part" "$file"
    if [ "$mode" = inline ]; then
      # Its size from its base64 (4 characters for 3 bytes, less the padding): no stat.
      size=$((${#data} * 3 / 4))
      case $data in *==) size=$((size - 2)) ;; *=) size=$((size - 1)) ;; esac
    else
      size=$(stat -c %s -- "$file")
    fi
    echo "received $digest $size"
  fi
done
if [ "$mode" = check ]; then stat -f -c 'free %a %S' -- "$store"; fi

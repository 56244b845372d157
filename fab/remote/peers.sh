# A host's part in a delivery (fab.transfer), one round trip per round it takes part in.
#   $1 receive: fetches what peers send (fab/remote/peer.py fetch), keeps what arrived
#              whole once its digest matches (fab/remote/receive.sh keep: a mismatch is
#              refused and deleted, for the controller to send again), then, if asked,
#              starts serving its store to the hosts after it (peer.py serve).
#              $2 python, $3 peer.py's text, $4 receive.sh's text, $5 the store (Paths.store),
#              $6 the fetch job (JSON; "" when nothing comes from a peer),
#              $7-$11 the server's address ("" for no server), ports, idle seconds, token,
#              rate; then quadruples: a sha256, a file name, its size, and `peer` or
#              `controller`: where it comes from in this round (what the controller sent
#              is checked with receive.sh verify: a mismatch fails the host, naming it).
#              Prints peer.py's lines, "lack <sha256> <bytes>" for what did not arrive
#              whole (a part the controller goes on from), receive.sh's lines ("refused
#              <sha256> <why>" for a part whose digest does not match), and
#              "serving <port> <pid>" or "not-serving <why>".
#   $1 stop:   $2 the server's pid, $3 its token: stops it, if that process is still it.
set -e -o pipefail
mode=$1
case $mode in
  stop)
    pid=$2
    token=$3
    [[ $pid =~ ^[0-9]+$ ]] || { echo "peers.sh: not a pid: ${pid@Q}" >&2; exit 2; }
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- " $token "; then
      kill "$pid" && echo "stopped $pid"
    else
      echo "gone $pid"
    fi
    exit 0 ;;
  receive) ;;
  *) echo "peers.sh: unknown mode ${mode@Q}" >&2; exit 2 ;;
esac
python=$2
peer=$3
receive=$4
store=$5
job=$6
address=$7
ports=$8
idle=$9
token=${10}
rate=${11}
shift 11
[ $(($# % 4)) -eq 0 ] || { echo "peers.sh: an artifact without its name, size or origin" >&2; exit 2; }
if [ -n "$job" ]; then
  "$python" -c "$peer" fetch "$store" "$job"
fi
from_peers=()
from_controller=()
while [ $# -gt 0 ]; do
  digest=$1
  name=$2
  size=$3
  origin=$4
  shift 4
  [[ $digest =~ ^[0-9a-f]{64}$ && $name =~ ^[A-Za-z0-9][A-Za-z0-9._+-]*$ && $size =~ ^[0-9]+$ &&
     $origin =~ ^(peer|controller)$ ]] || {
    echo "peers.sh: not an artifact: ${digest@Q} ${name@Q} ${size@Q} ${origin@Q}" >&2; exit 2; }
  part=$store/$digest/$name.part
  if [ -f "$store/$digest/$name" ]; then
    continue
  elif [ -f "$part" ] && [ "$(stat -c %s -- "$part")" = "$size" ]; then
    if [ "$origin" = peer ]; then from_peers+=("$digest" "$name"); else from_controller+=("$digest" "$name"); fi
  else
    echo "lack $digest $(stat -c %s -- "$part" 2>/dev/null || echo 0)"
  fi
done
if [ ${#from_controller[@]} -gt 0 ]; then
  bash -c "$receive" receive.sh verify "$store" "${from_controller[@]}"
fi
if [ ${#from_peers[@]} -gt 0 ]; then
  bash -c "$receive" receive.sh keep "$store" "${from_peers[@]}"
fi
if [ -n "$address" ]; then
  "$python" -c "$peer" serve "$store" "$address" "$ports" "$idle" "$token" "$rate" ||
    echo "not-serving the server did not start"
fi

"""Port-based service control, as pbdeploy does it: no pidfiles, no daemon.

Runs on: the hosts of the roles of services with `control: port`. A service is
running when something listens on its port; its pid is the pid on that port
(the process whose parent is not itself listening there, i.e. the master).
Start it if nothing listens, otherwise run its reload command (e.g. SIGHUP).
Safe to rerun.
"""
from fab import shell
from fab.commands import expand, hook, service_variables

ROLES = "roles with port-controlled services"


def pid_on_port_script(port):
    """Shell that sets $pid to the master process listening on `port` ("" if none)."""
    return f"""
pids=$(ss -Hltnp "sport = :{int(port)}" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -un | tr '\\n' ' ')
pid=""
for candidate in $pids; do
  parent=$(ps -o ppid= -p "$candidate" 2>/dev/null | tr -d ' ')
  case " $pids " in *" $parent "*) ;; *) pid=$candidate ;; esac
done
"""


def wait_for_listener_script(port, timeout):
    """Shell that waits until something listens on `port` and sets $pid to it."""
    return f"""
deadline=$(( $(date +%s) + {int(timeout)} ))
while :; do
  {pid_on_port_script(port)}
  [ -n "$pid" ] && break
  if [ "$(date +%s)" -ge "$deadline" ]; then echo "nothing listens on port {int(port)} after {int(timeout)}s" >&2; exit 1; fi
  sleep 0.1
done
"""


def start_or_reload(host, service_name, service, timeout=30):
    """Shell that starts the service if nothing listens on its port, else reloads it;
    it appends what it did to $notes."""
    variables = service_variables(host, service_name, service)
    log = shell.quote(f"{variables['log']}/{variables['program']}.out")
    start = expand(service.start, variables)
    if not service.daemonizes:
        start = f"setsid nohup sh -c {shell.quote(start)} >> {log} 2>&1 < /dev/null &"
    reload = expand(service.reload, variables) if service.reload else ""
    name = shell.quote(service_name)
    return f"""
cd {shell.quote(variables['current'])}
mkdir -p {shell.quote(variables['log'])}
{hook(host, service_name, service, "before")}
{pid_on_port_script(service.port)}
if [ -n "$pid" ]; then
  {f'{reload}; did="reloaded pid $pid"' if reload else 'did="running as pid $pid (no reload command)"'}
else
  {start}
  {wait_for_listener_script(service.port, timeout)}
  did="started pid $pid"
fi
{hook(host, service_name, service, "after")}
notes="${{notes:+$notes; }}"{name}": $did"
"""

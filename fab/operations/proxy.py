"""Draining hosts from the proxies that balance a service, and putting them back.

Runs on: the hosts of proxy services (`balances: <service>`). The upstream list
lives in shared/ (it is about hosts, not releases); rewriting it and reloading
the proxy gracefully takes a host out of (or back into) rotation. Safe to rerun.
"""
from fab import shell
from fab.commands import expand, service_variables
from fab.operations.portservice import pid_on_port_script

ROLES = "roles of proxy services"


def upstream_name(env_name, service_name):
    return f"{env_name}_{service_name}".replace("-", "_").replace(".", "_")


def upstream_config(name, backends, drained=()):
    """The nginx upstream block for `backends` [(address, port)], `drained` marked down."""
    lines = [f"upstream {name} {{"]
    for address, port in backends:
        state = " down" if address in drained else ""
        lines.append(f"    server {address}:{port} max_fails=0{state};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def upstream_script(host, proxy_name, proxy_service, backends, drained=(), reload=True):
    """Shell that writes the proxy's upstream list; if the proxy runs and `reload`,
    reloads it."""
    env = host.env
    variables = service_variables(host, proxy_name, proxy_service)
    path = host.paths.proxy_upstream(variables["program"])
    text = upstream_config(upstream_name(env.name, proxy_service.balances), backends, drained)
    reload_command = expand(proxy_service.reload, variables) if (reload and proxy_service.reload) else ""
    return f"""
mkdir -p {shell.quote(path.rsplit("/", 1)[0])}
{shell.write_file(path, text)}
{pid_on_port_script(proxy_service.port) if reload_command else ""}
{f'if [ -n "$pid" ]; then {NOTE_WORKERS}; {reload_command}; {WAIT_FOR_NEW_WORKERS}; fi' if reload_command else ""}
"""


# The reload is asynchronous: wait (at most 0.3 s) until the proxy's master has
# started a worker it did not have before, i.e. it has read the new upstream list
# (nginx tells its old workers to stop accepting at the same moment).
NOTE_WORKERS = """workers() { ps -o pid= --ppid "$pid" 2>/dev/null | tr -d ' '; }; before=$(workers)"""
WAIT_FOR_NEW_WORKERS = """for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
  sleep 0.02; [ -n "$(workers | grep -vxF "${before:-none}")" ] && break
done; :"""


def write_upstream(host, proxy_name, proxy_service, backends, drained=()):
    """Write the proxy's upstream list and reload the proxy if it runs."""
    host.run("set -e\n" + upstream_script(host, proxy_name, proxy_service, backends, drained))
    down = ", ".join(sorted(drained)) or "none"
    return f"{proxy_name}: drained {down}"

"""Draining hosts from the proxies that balance a service, and putting them back.

Runs on: the hosts of proxy services (`balances: <service>`). The upstream list
lives in shared/ (it is about hosts, not releases); rewriting it and reloading
the proxy gracefully takes a host out of (or back into) rotation. Safe to rerun.
"""
from fab.commands import expand, service_variables
from fab.operations import portservice
from fab.steps import Reporting

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
    """The command (a Reporting, which says nothing in a note) that writes the proxy's
    upstream list and, if the proxy runs and `reload`, reloads it."""
    args = _upstream_args(host, proxy_name, proxy_service, backends, drained, reload)
    return Reporting(portservice.script_command("upstream", *args), describe=lambda line: "")


def write_upstream(host, proxy_name, proxy_service, backends, drained=()):
    """Write the proxy's upstream list and reload the proxy if it runs."""
    host.run(portservice.script("upstream"), _upstream_args(host, proxy_name, proxy_service, backends, drained))
    down = ", ".join(sorted(drained)) or "none"
    return f"{proxy_name}: drained {down}"


def _upstream_args(host, proxy_name, proxy_service, backends, drained=(), reload=True):
    """fab/remote/upstream.sh's arguments: the file, its text, the proxy's port and
    its reload command ("" unless `reload`)."""
    variables = service_variables(host, proxy_name, proxy_service)
    text = upstream_config(upstream_name(host.env.name, proxy_service.balances), backends, drained)
    reload_command = expand(proxy_service.reload, variables) if (reload and proxy_service.reload) else ""
    return [host.paths.proxy_upstream(variables["program"]), text, proxy_service.port or "", reload_command]

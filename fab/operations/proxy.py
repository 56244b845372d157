"""Draining hosts from the proxies that balance a service, and putting them back.

Runs on: the hosts of proxy services (`balances: <service>`). The upstream list
lives in shared/ (it is about hosts, not releases); rewriting it and reloading
the proxy gracefully takes a host out of (or back into) rotation. Safe to rerun.
"""
import base64
import binascii
import re

from fab import shell
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


def proxies_on(host):
    """{name: Service} of the proxies (services that balance another) on `host`."""
    return {name: service for name, service in host.env.topology.services_on(host.name).items() if service.balances}


def read_upstreams(host):
    """{proxy service: its upstream list's text, or None where it has none yet} on
    `host`, in one read-only round trip (fab/remote/rotation.sh). Safe to rerun."""
    proxies = list(proxies_on(host))
    files = [host.paths.proxy_upstream(host.env.topology.program_name(name)) for name in proxies]
    return parse_upstreams(host.run(shell.remote_script("rotation"), files), proxies)


def parse_upstreams(output, proxies):
    """fab/remote/rotation.sh's lines -> {proxy: text or None} for the `proxies` it was
    given, in order; a line that is not what the script prints is ignored."""
    found = dict.fromkeys(proxies)
    for line in output.splitlines():
        kind, _, rest = line.partition(" ")
        index, _, encoded = rest.partition(" ")
        if kind != "upstream" or not index.isdigit() or not 1 <= int(index) <= len(proxies) or encoded == "missing":
            continue
        try:
            found[proxies[int(index) - 1]] = base64.b64decode(encoded, validate=True).decode(errors="replace")
        except (binascii.Error, ValueError):
            continue
    return found


_SERVER = re.compile(r"^\s*server\s+(\S+):(\d+)\b([^;]*);", re.M)


def parse_upstream(text):
    """An upstream list (`upstream_config`'s text) -> ([address of each backend], {addresses
    marked down}): what the proxy sends traffic to, and whom it leaves out."""
    servers = _SERVER.findall(text)
    return [address for address, _, _ in servers], {address for address, _, rest in servers if "down" in rest.split()}

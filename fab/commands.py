"""Service commands from environment files (start, reload, stop, before, after).

They are shell text the user wrote; `{name}` placeholders are filled from the
service and host, each as one quoted shell word (a path holding `$(...)` stays a
path). `{pid}` becomes the shell variable the remote script sets.
"""
import re

from fab import shell

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def service_variables(host, service_name, service):
    env = host.env
    paths = host.paths
    program = env.topology.program_name(service_name)
    return {
        "port": str(service.port or ""),
        "program": program,
        "service": service_name,
        "conf": paths.current_service_config(service.control, program),
        "current": paths.current,
        "shared": paths.shared,
        "log": paths.log,
        "address": host.address,
    }


def expand(command, variables):
    """Fill known `{name}` placeholders with quoted values; leave other braces (awk,
    shell) alone."""

    def fill(match):
        name = match.group(1)
        if name == "pid":
            return '"$pid"'
        return shell.quote(variables[name]) if name in variables else match.group(0)

    return _PLACEHOLDER.sub(fill, command)


def hook(host, service_name, service, which):
    """The before/after hook of a service as a shell line (empty if none)."""
    command = getattr(service, which)
    if not command:
        return ""
    expanded = expand(command, service_variables(host, service_name, service))
    return f"( {expanded} ) || {{ echo '{which} hook of {service_name} failed' >&2; exit 1; }}"

"""What a user names on the command line, checked before any host is touched: the
hosts a `hosts=` limit names, the hosts `manage` runs on, a command's words, days, a switch."""
import shlex

from fab import cli, precedence
from fab.errors import UsageError


def limited_hosts(env, hosts):
    """The hosts a `hosts="web3;webworkers"` limit names (hosts or roles); None: all."""
    if not hosts:
        return None
    chosen = []
    for word in filter(None, (part.strip() for part in hosts.replace(",", ";").split(";"))):
        if word in env.roles:
            chosen.extend(env.topology.hosts_of(word))
        elif word in env.hosts:
            chosen.append(word)
        else:
            raise UsageError(f"unknown host or role {word!r} (hosts: {', '.join(env.hosts)}; "
                             f"roles: {', '.join(env.roles)})")
    return [h for h in env.hosts if h in chosen]


def manage_hosts(env, host, role, all_hosts):
    """The hosts `manage` runs on: a host; or a role's (default manage.role) first or all."""
    if host and (role or all_hosts):
        raise UsageError("manage: give a host, or a role (with all_hosts), not both")
    if host:
        if host not in env.hosts:
            raise UsageError(f"manage: unknown host {host!r} (hosts: {', '.join(env.hosts)})")
        return [host]
    candidates = env.topology.hosts_of(precedence.manage_role(role, env))
    return candidates if all_hosts else candidates[:1]


def split_command(command):
    """The words of `command`, split as a shell would; UsageError if it has none or
    cannot be split."""
    try:
        words = shlex.split(command)
    except ValueError as error:
        raise UsageError(f"cannot parse command {command!r}: {error}") from None
    if not words:
        raise UsageError("empty command")
    return words


def optional_days(task, value):
    """A days= argument as given: "" (not given), else a whole number (0 included)."""
    given = str(value).strip()
    if not given:
        return ""
    if not cli.whole_number(given):
        raise UsageError(f"{task}: days must be a whole number from 0 to {cli.MAX_WHOLE_NUMBER}, got {value!r}")
    return int(given)


def on_or_off(task, value):
    """A switch's `on` or `off` (maintenance:on) as True or False."""
    if value not in ("on", "off"):
        raise UsageError(f"{task}: say on or off ({task}:on or {task}:off), got {value!r}")
    return value == "on"

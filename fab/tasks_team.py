"""The tasks that tell the team and the users something is going on: `freeze` and
`unfreeze` (deploys refused while a team fixes an incident) and `maintenance` (the
proxies answer a maintenance page).

fab.tasks gives them to a fabfile with the others (`from fab.tasks import *`).
"""
from fabric import task

from fab import stages
from fab.errors import ConfigError, UsageError
from fab.events import stream
from fab.opening import open_fleet
from fab.operations import maintenance as maintenance_ops
from fab.runner import reported, selected_environment
from fab.task_input import on_or_off, one_line


@task
@reported
def freeze(c, reason=""):
    """Freeze the environment: deploys, hotfixes and restarts refuse (exit 3) until
    `unfreeze`, unless given --force; rollback still runs. Every controller sees it:
    it is kept beside the lock on the first host."""
    env = selected_environment(c)
    why = one_line(reason, "freeze reason")
    if not why:
        raise UsageError(f'freeze: say why, e.g. `fab {env.name} freeze:"payments incident"`')
    with open_fleet(env, hosts=[env.hosts[0]]) as fleet:
        stages.freeze(fleet, fleet[env.hosts[0]], why)


@task
@reported
def unfreeze(c):
    """Lift the environment's freeze (says whose it was)."""
    env = selected_environment(c)
    with open_fleet(env, hosts=[env.hosts[0]]) as fleet:
        stages.unfreeze(fleet, fleet[env.hosts[0]])


@task(help={"switch": "on: every proxy answers the maintenance page; off: traffic again",
            "message": "the stock page's message (on)"})
@reported
def maintenance(c, switch="", message=""):
    """Put the proxies' maintenance page on or off.

    `maintenance:on[,message=...]`: every proxy answers 503, Retry-After and
    the environment's `maintenance_template` (or a stock page with the
    message), except on its health and version paths; it stays on across
    deploys. `maintenance:off` ends it. Proxies reload, never restart.
    """
    env = selected_environment(c)
    on = on_or_off("maintenance", switch)
    hosts = [name for name in env.hosts if maintenance_ops.proxies_on(env, name)]
    if not hosts:
        raise ConfigError(f"{env.name}: no proxy (a port service that `balances` one) to show a maintenance page")
    page = maintenance_ops.page(env, message) if on else ""
    with open_fleet(env, hosts=hosts, lock="maintenance") as fleet:
        fleet.each_steps(lambda host: [maintenance_ops.switch_step(host, on, page)])
    stream.stage(f"maintenance {'on: the proxies answer 503 with the page' if on else 'off'} "
                 f"({', '.join(hosts)})")


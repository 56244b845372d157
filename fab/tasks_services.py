"""The tasks on the live release's services: restart them without dropping requests
(`restart_services`), with the secrets uploaded again (`push_secrets`), with their
configs rendered anew (`set_supervisor_config`); start or stop the pillows; run
supervisorctl or a management command.

fab.tasks gives them to a fabfile with the others (`from fab.tasks import *`).
"""
from fabric import task
from invoke import Exit

from fab import hooks, stages
from fab.errors import ConfigError, DeployError
from fab.events import stream
from fab.opening import open_fleet
from fab.operations import shared, supervisor
from fab.operations import manage as manage_ops
from fab.runner import reported, selected_environment
from fab.secrets import safe_to_show
from fab.snapshot import FleetSnapshot, Target
from fab.task_input import limited_hosts, manage_hosts, split_command, wait_seconds


@task
@reported
def restart_services(c, hosts="", wait=0, force=False):
    """Restart services without dropping requests (refused while frozen, unless --force)."""
    env = selected_environment(c)
    with open_fleet(env, limited_hosts(env, hosts), lock="restart_services", drains=True,
                    wait=wait_seconds("restart_services", wait), force=force) as fleet:
        live, meta = restart_live_release(fleet, "restart_services", "graceful")
    stream.stage(f"services restarted: every host runs release {live} ({meta.commit[:12]})")


def restart_live_release(fleet, task, mode, first=None):
    """The live release's programs restarted on every host (`mode`: graceful, or all
    of them), wave by wave, drained and health-checked, between the before_restart
    and after_restart hooks; `first()` runs after the before hooks. Its (name, meta)."""
    snapshot = FleetSnapshot.of_fleet(fleet)
    live, meta = snapshot.live()
    context = stages.hook_context(fleet, snapshot, task, meta)
    hooks.run(fleet.env, "before_restart", context)
    if first:
        first()
    stages.restart_everywhere(fleet, mode, Target.of(meta))
    hooks.run_after(fleet.env, "after_restart", context)
    return live, meta


@task
@reported
def push_secrets(c, hosts="", wait=0, force=False):
    """Upload the secrets again; restart every program with them.

    For a rotated secret, without a deploy: after the before_restart hooks, every
    host gets shared/secrets.env anew, then its programs restart (none merely
    reloads: a process reads its secrets when it starts) wave by wave, drained
    from the proxies and health-checked, as restart_services does.
    """
    env = selected_environment(c)
    if env.secrets is None:
        raise ConfigError(f"{env.name}: no `secrets` setting in its environment file: no secret to push")
    with open_fleet(env, limited_hosts(env, hosts), lock="push_secrets", drains=True,
                    wait=wait_seconds("push_secrets", wait), force=force) as fleet:
        live, _ = restart_live_release(fleet, "push_secrets", "all",
                                       first=lambda: fleet.each("secrets", shared.upload_secrets))
    stream.stage(f"secrets pushed and services restarted on {', '.join(fleet.names)} (release {live})")


@task
@reported
def set_supervisor_config(c, wait=0, force=False):
    """Render service configs and apply the changes (none: says so, restarts nothing).
    Refused while the environment is frozen, unless --force."""
    env = selected_environment(c)
    with open_fleet(env, lock="set_supervisor_config", wait=wait_seconds("set_supervisor_config", wait),
                    force=force) as fleet:
        snapshot = FleetSnapshot.of_fleet(fleet)
        live, meta = snapshot.live()
        ports = env.topology.service_ports()  # what the configs are rendered with
        if supervisor.renders_as_current(fleet.hosts.values(), meta.ports, ports):
            stream.stage(f"nothing changed: every host has these service configs in release {live}; "
                         "nothing restarted")
            return
        context = stages.hook_context(fleet, snapshot, "set_supervisor_config", meta)
        hooks.run(env, "before_restart", context)
        fleet.each("render", supervisor.rerender_current)
        stages.restart_everywhere(fleet, "changed", Target.of(meta, ports))
        stages.mark(fleet, meta.with_ports(ports))
        hooks.run_after(env, "after_restart", context)


@task
@reported
def start_pillows(c):
    """Start the pillows (background workers)."""
    on_pillows(selected_environment(c), supervisor.start_programs)


@task
@reported
def stop_pillows(c):
    """Stop the pillows and wait until they exit."""
    on_pillows(selected_environment(c), supervisor.stop_programs)


@task
@reported
def supervisorctl(c, command="status"):
    """Run supervisorctl on every host with services."""
    env = selected_environment(c)
    words = split_command(command)
    hosts = [name for name in env.hosts if env.topology.supervised_on(name)]
    with open_fleet(env, hosts=hosts) as fleet:
        outcomes = fleet.each("supervisorctl", lambda host: supervisor.run_ctl(host, words), quiet=True)
    for name in hosts:
        code_, output = outcomes[name]
        print(f"--- {name} (exit {code_})")
        print(safe_to_show(output))
    failed = sorted(name for name, (code_, _) in outcomes.items() if code_ != 0)
    if failed:
        raise DeployError(f"supervisorctl {command} exited non-zero on {', '.join(failed)}")


@task
@reported
def manage(c, command, host="", role="", all_hosts=False):
    """Run a management command in the current release.

    On the first host of `manage.role`, or of --role; on --host; or with
    --all-hosts on every host of the role, one after another (the first
    non-zero exit stops there and is passed through).
    """
    env = selected_environment(c)
    if env.manage is None:
        raise ConfigError(f"{env.name}: no `manage` setting (role and command) in its environment file")
    words = split_command(command)
    chosen = manage_hosts(env, host, role, all_hosts)
    with open_fleet(env, hosts=chosen) as fleet:
        for name in chosen:
            if len(chosen) > 1:
                print(f"--- {name}", flush=True)
            exit_code = manage_ops.run(fleet[name], words)
            if exit_code:
                raise Exit(code=exit_code)


def on_pillows(env, operation):
    """Run `operation(host, programs)` on every host of the pillow role."""
    hosts = [name for name in env.hosts if env.topology.pillows_on(name)]
    if not hosts:
        raise ConfigError(f"{env.name}: no supervisor services on role {env.pillow_role}")
    with open_fleet(env, hosts=hosts) as fleet:
        fleet.each("pillows", lambda host: operation(host, env.topology.pillows_on(host.name)))

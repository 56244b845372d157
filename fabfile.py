"""Tasks. Each is a readable composition of operations from fab/operations/.

    fab <env> deploy                     fab <env> setup_release:keep_days=N
    fab <env> deploy:resume=yes          fab <env> clean_releases
    fab <env> rollback[:<release>]       fab <env> hotfix_deploy[:<commit>]
    fab <env> restart_services           fab <env> set_supervisor_config
    fab <env> start_pillows              fab <env> stop_pillows
    fab <env> supervisorctl:"status"     fab <env> manage:"<command>"
    fab <env> releases                   fab <env> unlock
    fab <env> history[:limit=N,json=yes] fab <env> deploy_log[:<id>|follow=yes]
    fab <env> history_prune[:days=N]     fab <env> history_upgrade
    fab -l

`fab <env>` selects an environment (environments/<env>.yml) for the tasks after it.
Arguments may be given Fabric-1 style (`task:name=value,...`) or natively
(`task --name value`).
"""
import concurrent.futures
import shlex

from fabric import task
from invoke import Exit, Task

from fab import cli, events, releases as rel
from fab import history as history_store
from fab.config import available_environments
from fab.errors import ConfigError, DeployError, PreflightError, StepFailed, UsageError
from fab.operations import (
    build, cleanup, code, current, health, lock, portservice, release, state, supervisor, virtualenv,
)
from fab.operations import manage as manage_ops
from fab.operations import proxy as proxy_ops
from fab.events import stream
from fab.session import (
    locked, open_fleet, reported, select_environment, selected_environment, user_errors, who_am_i,
)


# --- deploy -------------------------------------------------------------------


@task
@reported
def deploy(c, resume=False, rev=""):
    """Build, swap and restart a new release everywhere.

    Stages: lock; resolve the branch (or --rev: a full commit, tag or branch) to
    one commit; build the release on every host; swap `current` on all of them;
    restart without dropping requests and check health; mark the release good;
    clean old releases; unlock. A failure before the swap changes no host's
    `current`; after it, every host goes back. With --resume, continue the
    newest unfinished release instead.
    """
    env = selected_environment(c)
    if resume and rev:
        raise UsageError("deploy: resume continues the failed release's own commit; do not give rev")
    ref = rev or env.app.branch
    commit = None if resume else code.resolve_commit(env.app.repo, ref)
    with open_fleet(env) as fleet, locked(fleet, "deploy"):
        states = fleet.each("state", state.read, quiet=True)
        if resume:
            meta = release_to_resume(states)
            stream.stage(f"resuming release {meta.name} at {meta.commit[:12]}")
        else:
            meta = new_release(states, commit, ref)
            stream.stage(f"deploying {ref} at {commit[:12]} as release {meta.name}")
        stream.publish(events.ReleaseChosen(meta.name, meta.commit, meta.branch,
                                            previous=agreed_or_none(states)))

        build_release(fleet, meta)
        try:
            go_live(fleet, meta, states)
        except DeployError:
            mark(fleet, meta.with_status(rel.FAILED), quietly=True)
            raise
        mark(fleet, meta.with_status(rel.GOOD))
        clean_old_releases(fleet)
    stream.stage(f"deploy finished: release {meta.name} ({meta.commit[:12]}) is live on "
                   f"{', '.join(env.hosts)}")


@task
@reported
def rollback(c, release=""):
    """Go back to the previous (or a named) release."""
    env = selected_environment(c)
    wanted = rel.validate_release_name(release) if release else None
    with open_fleet(env) as fleet, locked(fleet, "rollback"):
        states = fleet.each("state", state.read, quiet=True)
        currents = {name: s.current for name, s in states.items()}
        target = rel.rollback_target(
            {name: list(s.releases.values()) for name, s in states.items()}, currents, wanted)
        leaving = rel.agreed_current(currents)
        any_state = states[env.hosts[0]]
        target_meta = any_state.release(target).meta
        stream.publish(events.ReleaseChosen(target, target_meta.commit, target_meta.branch, previous=leaving))
        stream.stage(f"rolling back from {leaving} to {target} ({target_meta.commit[:12]})")

        go_live(fleet, target_meta, states)
        leaving_meta = any_state.release(leaving).meta if any_state.release(leaving) else None
        if leaving_meta:
            mark(fleet, leaving_meta.with_status(rel.ROLLED_BACK))
        mark(fleet, target_meta.with_status(rel.GOOD))
    stream.stage(f"rollback finished: {target} is live on {', '.join(env.hosts)}; "
                   f"{leaving} is kept, marked rolled_back")


@task
@reported
def clean_releases(c):
    """Delete old and failed releases (safe ones kept)."""
    env = selected_environment(c)
    with open_fleet(env) as fleet, locked(fleet, "clean_releases"):
        clean_old_releases(fleet)


@task
@reported
def hotfix_deploy(c, commit=""):
    """Put new code into the current release; restart."""
    env = selected_environment(c)
    new_commit = code.resolve_commit(env.app.repo, commit or env.app.branch)
    with open_fleet(env) as fleet, locked(fleet, "hotfix_deploy"):
        live, meta = live_release(fleet)
        stream.publish(events.ReleaseChosen(live, new_commit, commit or env.app.branch, previous=live))
        stream.stage(f"hotfix of release {live}: {meta.commit[:12]} -> {new_commit[:12]}")

        try:
            fleet.each("hotfix", lambda host: code.hotfix(host, live, meta.commit, new_commit))
            restart_in_order(fleet, "graceful", {name: (live, new_commit) for name in fleet.names})
        except DeployError as error:
            stream.stage(f"hotfix failed: putting {meta.commit[:12]} back into {live}")
            fleet.each("unhotfix", lambda host: code.hotfix(host, live, new_commit, meta.commit))
            restart_in_order(fleet, "graceful", {name: (live, meta.commit) for name in fleet.names})
            raise DeployError(f"{error}; release {live} runs {meta.commit[:12]} again") from None
        mark(fleet, meta.hotfixed(new_commit, who_am_i(), rel.utcnow()))
    stream.stage(f"hotfix finished: release {live} now runs {new_commit[:12]}")


@task
@reported
def setup_release(c, keep_days=0):
    """Build a private release; print its path."""
    env = selected_environment(c)
    days = rel.parse_keep_days(keep_days)
    commit = code.resolve_commit(env.app.repo, env.app.branch)
    with open_fleet(env) as fleet, locked(fleet, "setup_release"):
        states = fleet.each("state", state.read, quiet=True)
        meta = new_release(states, commit, env.app.branch, private=True, keep_days=days)
        stream.publish(events.ReleaseChosen(meta.name, commit, env.app.branch, previous=agreed_or_none(states)))
        stream.stage(f"building private release {meta.name} at {commit[:12]}")
        build_release(fleet, meta)
    kept = f"kept until {meta.keep_until}" if meta.keep_until else "not protected from cleanup"
    for name, host_state in states.items():
        print(f"{name}: {host_state.paths.release(meta.name)}")
    stream.stage(f"private release {meta.name} ready ({kept})")


@task
@reported
def releases(c):
    """Show each host's releases, statuses and drift."""
    env = selected_environment(c)
    with open_fleet(env) as fleet:
        states = fleet.each("state", state.read, quiet=True)
    for name in env.hosts:
        host_state = states[name]
        print(f"{name}:")
        for release_name in sorted(host_state.releases):
            meta = host_state.releases[release_name].meta
            marker = "*" if release_name == host_state.current else " "
            if meta:
                keep = f" keep-until {meta.keep_until}" if meta.keep_until else ""
                print(f"  {marker} {release_name}  {meta.commit[:12]}  {meta.status}{keep}")
            else:
                print(f"  {marker} {release_name}  (no metadata)")
    drift = rel.disagreement({name: s.current for name, s in states.items()})
    if drift:
        print(f"DRIFT: hosts disagree on current: {drift}")


@task
@reported
def unlock(c):
    """Remove a dead deploy's lock and claim (says whose)."""
    env = selected_environment(c)
    claim = history_store.clear_claim(env, who_am_i())
    if claim:
        print(f"removed the claim of {claim} from the history store (kept in its claim audit)")
    with open_fleet(env, hosts=[env.hosts[0]]) as fleet:
        removed = fleet.each("unlock", lambda host: lock.force_release(host, who_am_i()),
                             quiet=True)[env.hosts[0]]
    if removed is None:
        print(f"{env.name} was not locked" if claim is None else f"no lock on {env.hosts[0]}")
    else:
        print(f"removed the lock of {lock.describe(removed)}; recorded in log/lock-breaks.log "
              f"on {env.hosts[0]}")


# --- services -----------------------------------------------------------------


@task
@reported
def restart_services(c):
    """Restart services without dropping requests."""
    env = selected_environment(c)
    with open_fleet(env) as fleet, locked(fleet, "restart_services"):
        live, meta = live_release(fleet)
        restart_in_order(fleet, "graceful", {name: (live, meta.commit) for name in fleet.names})
    stream.stage(f"services restarted: every host runs release {live} ({meta.commit[:12]})")


@task
@reported
def set_supervisor_config(c):
    """Render service configs and apply the changes."""
    env = selected_environment(c)
    with open_fleet(env) as fleet, locked(fleet, "set_supervisor_config"):
        live, meta = live_release(fleet)
        fleet.each("render", supervisor.rerender_current)
        restart_in_order(fleet, "changed", {name: (live, meta.commit) for name in fleet.names})


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
    hosts = [name for name in env.hosts if env.supervised_on(name)]
    with open_fleet(env, hosts=hosts) as fleet:
        outcomes = fleet.each("supervisorctl", lambda host: supervisor.run_ctl(host, words), quiet=True)
    for name in hosts:
        code_, output = outcomes[name]
        print(f"--- {name} (exit {code_})")
        print(output)
    failed = sorted(name for name, (code_, _) in outcomes.items() if code_ != 0)
    if failed:
        raise DeployError(f"supervisorctl {command} exited non-zero on {', '.join(failed)}")


@task
@reported
def manage(c, command, host=""):
    """Run a management command in the current release."""
    env = selected_environment(c)
    if env.manage is None:
        raise ConfigError(f"{env.name}: no `manage` setting (role and command) in its environment file")
    candidates = env.hosts_of(env.manage.role)
    target = host or candidates[0]
    if target not in candidates:
        raise UsageError(f"manage: host {target!r} is not in role {env.manage.role} ({', '.join(candidates)})")
    with open_fleet(env, hosts=[target]) as fleet:
        fleet.each("state", state.read, quiet=True)
        exit_code = manage_ops.run(fleet[target], split_command(command))
    if exit_code:
        raise Exit(code=exit_code)


def on_pillows(env, operation):
    """Run `operation(host, programs)` on every host of the pillow role."""
    hosts = [name for name in env.hosts if env.pillows_on(name)]
    if not hosts:
        raise ConfigError(f"{env.name}: no supervisor services on role {env.pillow_role}")
    with open_fleet(env, hosts=hosts) as fleet:
        fleet.each("state", state.read, quiet=True)
        fleet.each("pillows", lambda host: operation(host, env.pillows_on(host.name)))


def split_command(command):
    try:
        words = shlex.split(command)
    except ValueError as error:
        raise UsageError(f"cannot parse command {command!r}: {error}") from None
    if not words:
        raise UsageError("empty command")
    return words


# --- the stages tasks share ---------------------------------------------------


def new_release(states, commit, branch, private=False, keep_days=0):
    """Metadata for a new release, named so it collides with nothing on any host."""
    now = rel.utcnow()
    existing = {name for s in states.values() for name in s.releases}
    return rel.ReleaseMeta(
        name=rel.new_release_name(now, existing),
        commit=commit,
        branch=branch,
        deployed_by=who_am_i(),
        created_at=now.isoformat(),
        status=rel.PRIVATE if private else rel.BUILDING,
        keep_until=rel.keep_until(now, keep_days),
        private=private,
    )


def agreed_or_none(states):
    """The release every host has as current, or None (first deploy, or drift)."""
    currents = {s.current for s in states.values()}
    return currents.pop() if len(currents) == 1 else None


def live_release(fleet):
    """Read every host's state: the release current on all of them, and its metadata."""
    states = fleet.each("state", state.read, quiet=True)
    live = rel.agreed_current({name: s.current for name, s in states.items()})
    missing = sorted(name for name, s in states.items() if not (s.release(live) and s.release(live).meta))
    if missing:
        raise PreflightError(f"current release {live} has no metadata on {', '.join(missing)}")
    return live, states[fleet.names[0]].release(live).meta


def release_to_resume(states):
    """The newest unfinished release newer than every host's current one."""
    candidates = {}
    for host_state in states.values():
        for name, found in host_state.releases.items():
            newer = host_state.current is None or name > host_state.current
            resumable = found.meta and not found.meta.private
            if resumable and found.status in (rel.BUILDING, rel.FAILED) and newer:
                candidates[name] = found.meta
    if not candidates:
        raise PreflightError("nothing to resume: no unfinished release newer than current")
    return candidates[max(candidates)].with_status(rel.BUILDING)


def build_release(fleet, meta):
    """Every host gets the release ready to go live; any failure marks it failed."""
    env = fleet.env
    try:
        fleet.each("release", lambda host: release.create(host, meta))
        fleet.each("code", lambda host: code.checkout(host, meta.name, meta.commit))
        fleet.each("virtualenv", lambda host: virtualenv.ensure(host, meta.name))
        fleet.each("build", lambda host: build.run_build_commands(host, meta.name))
        fleet.each("services", lambda host: supervisor.install_service_configs(host, meta.name))
        fleet.each("check", lambda host: build.preswap_check(
            host, meta.name, [env.program_name(s) for s in env.supervised_on(host.name)]))
    except DeployError:
        mark(fleet, meta.with_status(rel.FAILED), quietly=True)
        resume = "" if meta.private else f"; `fab {env.name} deploy:resume=yes` continues this release"
        stream.stage(f"no host was changed: current is untouched{resume}")
        raise


def go_live(fleet, meta, states):
    """Swap current on every host, restart, health-check; on failure put every host back."""
    try:
        fleet.each("swap", lambda host: current.swap(host, meta.name))
        restart_in_order(fleet, "all", {name: (meta.name, meta.commit) for name in fleet.names})
    except DeployError as error:
        stream.stage("going live failed: putting every host back on its previous release")
        restored = restore_previous(fleet, states)
        outcome = ("every host is back on its previous release" if restored
                   else "NOT every host could be restored: check `fab <env> releases`")
        raise DeployError(f"{error}; {outcome}") from None


def restore_previous(fleet, states):
    """Point every host back at the release it had before; True if all of them made it."""
    previous = {name: s.current for name, s in states.items()}

    def point_back(host):
        if previous[host.name]:
            return current.swap(host, previous[host.name])
        current.remove(host)
        supervisor.restart(host, expect_programs=False)
        return "current removed (it was the first deploy)"

    try:
        fleet.each("revert", point_back)
        expected = {name: (p, states[name].release(p).meta.commit) for name, p in previous.items() if p}
        restart_in_order(fleet, "all", expected, hosts=[fleet[name] for name in expected])
    except StepFailed as error:
        stream.warning(f"could not restore every host: {error}")
        return False
    return True


def restart_in_order(fleet, mode, expected, hosts=None):
    """Restart the environment's services without dropping requests, then health-check.

    Hosts without web services in parallel (in the background); each web host alone,
    drained from the proxies balancing it unless it reloads in place, and put
    back only once its health check passes; then the proxies (port services).
    `expected` maps host -> (release, commit) the health checks must see.
    """
    env = fleet.env
    hosts = list(hosts if hosts is not None else fleet.hosts.values())
    web_hosts = [h for h in hosts if any(s.port for s in env.supervised_on(h.name).values())]
    other_hosts = [h for h in hosts if h not in web_hosts and env.supervised_on(h.name)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as background:
        # Hosts without web services do not wait for the one-at-a-time web restarts.
        others = background.submit(fleet.each, "restart", lambda host: supervisor.restart(host, mode),
                                   hosts=other_hosts)
        for host in web_hosts:
            in_place = supervisor.reloads_in_place(host, mode)
            if not in_place:
                set_drained(fleet, host)
            try:
                fleet.each("restart", lambda h: supervisor.restart(h, mode), hosts=[host])
                fleet.each("health", lambda h: health.check(h, *expected[h.name]), hosts=[host])
            except DeployError:
                if not in_place:
                    put_back_if_healthy(fleet, host)
                raise
            if not in_place:
                set_drained(fleet, None)
        others.result()
    fleet.each("proxy", lambda host: start_port_services(fleet, host),
               hosts=[h for h in hosts if env.port_services_on(h.name)])
    fleet.each("health", lambda host: health.check(host, *expected[host.name]),
               hosts=[h for h in hosts if h not in web_hosts])


def backends_of(fleet, service_name):
    """[(host, (address, port))] of the hosts running `service_name`."""
    service = fleet.env.services[service_name]
    return [(host, (host.address, service.port)) for host in fleet.of_role(service.role)]


def set_drained(fleet, drained_host):
    """Point every proxy at all backends except `drained_host` (None: put all back)."""
    for proxy_name, proxy in fleet.env.services.items():
        if not proxy.balances:
            continue
        backends = backends_of(fleet, proxy.balances)
        if drained_host is not None and drained_host not in [h for h, _ in backends]:
            continue
        drained = {drained_host.address} if drained_host else set()
        fleet.each("drain" if drained_host else "undrain",
                   lambda host: proxy_ops.write_upstream(
                       host, proxy_name, proxy, [b for _, b in backends], drained),
                   hosts=fleet.of_role(proxy.role))


def put_back_if_healthy(fleet, host):
    """After a failed restart: back into rotation if whatever runs there is healthy."""
    try:
        fleet.each("recheck", health.check, hosts=[host])
    except StepFailed:
        stream.warning("left out of rotation: not healthy", host=host.name)
        return
    set_drained(fleet, None)


def start_port_services(fleet, host):
    """Start or reload every port-controlled service on the host (proxies included)."""
    notes = []
    for name, service in fleet.env.port_services_on(host.name).items():
        if service.balances:
            backends = [b for _, b in backends_of(fleet, service.balances)]
            proxy_ops.write_upstream(host, name, service, backends, reload=False)
        notes.append(portservice.start_or_reload(host, name, service))
    return "; ".join(notes)


def mark(fleet, meta, quietly=False):
    try:
        fleet.each("mark", lambda host: release.write_meta(host, meta), quiet=quietly)
    except StepFailed as error:
        if not quietly:
            raise
        stream.warning(f"could not mark release {meta.name} {meta.status}: {error}")


def clean_old_releases(fleet):
    """Decide per host from fresh state (before deleting anything), then delete."""
    env = fleet.env
    now = rel.utcnow()
    states = fleet.each("state", state.read, quiet=True)
    doomed = {}
    for name, host_state in states.items():
        listed = list(host_state.releases.values())
        doomed[name] = rel.releases_to_delete(
            listed, host_state.current, env.keep_releases, now,
            rollback_target=rel.previous_good_release(listed, host_state.current),
        )
    fleet.each("cleanup", lambda host: cleanup.delete_releases(host, doomed[host.name]))


# --- history ------------------------------------------------------------------


@task
@user_errors
def history(c, limit=20, json=False):
    """Show the last operations and their outcomes."""
    env = selected_environment(c)
    print("\n".join(history_store.history_lines(env, limit, as_json=json)))


@task
@user_errors
def deploy_log(c, operation=0, follow=False):
    """Show an operation's log; follow a running one."""
    env = selected_environment(c)
    if follow:
        history_store.follow_log(env, operation, write=lambda line: print(line, flush=True))
    else:
        print("\n".join(history_store.log_lines(env, operation)))


@task
@user_errors
def history_prune(c, days=0):
    """Remove log text older than the retention days."""
    print(history_store.prune(selected_environment(c), days))


@task
@user_errors
def history_upgrade(c):
    """Upgrade the history store to this version's schema."""
    print(history_store.upgrade(selected_environment(c)))


# --- environments and Fabric-1 arguments --------------------------------------


def _environment_task(name):
    def select(c):
        select_environment(c, name)

    select.__doc__ = f"Select environments/{name}.yml."
    return Task(user_errors(select), name=name)


for _name in available_environments():
    globals()[f"env_{_name}"] = _environment_task(_name)


def _translate_fabric1_arguments():
    """Rewrite `task:a=b` into invoke's `task --a=b` before invoke parses the tasks."""
    import fabric.main

    program = fabric.main.program
    core = getattr(program, "core", None)
    if core is None:  # imported outside `fab` (tests, tools): nothing to translate
        return
    tasks = {
        obj.name: [(p.name, p.default) for p in obj.argspec(obj.body).parameters.values()]
        for obj in globals().values() if isinstance(obj, Task)
    }
    try:
        core.unparsed[:] = cli.translate(core.unparsed, tasks, available_environments())
    except DeployError as error:
        import sys

        print(f"error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)


_translate_fabric1_arguments()

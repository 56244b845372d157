"""Tasks. Each is a readable composition of operations from fab/operations/.

    fab <env> deploy                     fab <env> setup_release:keep_days=N
    fab <env> deploy:resume=yes          fab <env> clean_releases
    fab <env> rollback[:<release>]       fab <env> hotfix_deploy[:<commit>]
    fab <env> releases                   fab <env> unlock
    fab -l

`fab <env>` selects an environment (environments/<env>.yml) for the tasks after it.
Arguments may be given Fabric-1 style (`task:name=value,...`) or natively
(`task --name value`).
"""
import getpass
import socket

from fabric import task
from invoke import Task

from fab import cli, releases as rel
from fab.config import available_environments
from fab.errors import DeployError, PreflightError, StepFailed
from fab.operations import build, cleanup, code, current, health, lock, release, state, supervisor, virtualenv
from fab.report import reporter
from fab.session import locked, open_fleet, select_environment, selected_environment, user_errors


# --- deploy -------------------------------------------------------------------


@task
@user_errors
def deploy(c, resume=False):
    """Build, swap and restart a new release on every host."""
    env = selected_environment(c)
    commit = None if resume else code.resolve_commit(env.app.repo, env.app.branch)
    with open_fleet(env) as fleet, locked(fleet, "deploy"):
        states = fleet.each("state", state.read, quiet=True)
        if resume:
            meta = release_to_resume(states)
            reporter.stage(f"resuming release {meta.name} at {meta.commit[:12]}")
        else:
            meta = new_release(states, commit, env.app.branch)
            reporter.stage(f"deploying {env.app.branch} at {commit[:12]} as release {meta.name}")

        build_release(fleet, meta)
        try:
            go_live(fleet, meta, states)
        except DeployError:
            mark(fleet, meta.with_status(rel.FAILED), quietly=True)
            raise
        mark(fleet, meta.with_status(rel.GOOD))
        clean_old_releases(fleet)
    reporter.stage(f"deploy finished: release {meta.name} ({meta.commit[:12]}) is live on "
                   f"{', '.join(env.hosts)}")


@task
@user_errors
def rollback(c, release=""):
    """Swap every host back to the previous (or named) release."""
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
        reporter.stage(f"rolling back from {leaving} to {target} ({target_meta.commit[:12]})")

        go_live(fleet, target_meta, states)
        mark(fleet, any_state.release(leaving).meta.with_status(rel.ROLLED_BACK))
        mark(fleet, target_meta.with_status(rel.GOOD))
    reporter.stage(f"rollback finished: {target} is live on {', '.join(env.hosts)}; "
                   f"{leaving} is kept, marked rolled_back")


@task
@user_errors
def clean_releases(c):
    """Delete old and failed releases, keeping protected ones."""
    env = selected_environment(c)
    with open_fleet(env) as fleet, locked(fleet, "clean_releases"):
        clean_old_releases(fleet)


@task
@user_errors
def hotfix_deploy(c, commit=""):
    """Update only the current release's code, then restart."""
    env = selected_environment(c)
    new_commit = code.resolve_commit(env.app.repo, commit or env.app.branch)
    with open_fleet(env) as fleet, locked(fleet, "hotfix_deploy"):
        states = fleet.each("state", state.read, quiet=True)
        live = rel.agreed_current({name: s.current for name, s in states.items()})
        meta = states[env.hosts[0]].release(live).meta
        reporter.stage(f"hotfix of release {live}: {meta.commit[:12]} -> {new_commit[:12]}")

        fleet.each("hotfix", lambda host: code.hotfix(host, live, meta.commit, new_commit))
        fleet.each("restart", supervisor.restart)
        fleet.each("health", lambda host: health.check(host, live, new_commit))
        mark(fleet, meta.hotfixed(new_commit, who_am_i(), rel.utcnow()))
    reporter.stage(f"hotfix finished: release {live} now runs {new_commit[:12]}")


@task
@user_errors
def setup_release(c, keep_days=0):
    """Build a private release (no swap) and print its path."""
    env = selected_environment(c)
    days = rel.parse_keep_days(keep_days)
    commit = code.resolve_commit(env.app.repo, env.app.branch)
    with open_fleet(env) as fleet, locked(fleet, "setup_release"):
        states = fleet.each("state", state.read, quiet=True)
        meta = new_release(states, commit, env.app.branch, status=rel.PRIVATE, keep_days=days)
        reporter.stage(f"building private release {meta.name} at {commit[:12]}")
        build_release(fleet, meta)
    kept = f"kept until {meta.keep_until}" if meta.keep_until else "not protected from cleanup"
    for name, host_state in states.items():
        print(f"{name}: {host_state.paths.release(meta.name)}")
    reporter.stage(f"private release {meta.name} ready ({kept})")


@task
@user_errors
def releases(c):
    """Show every host's releases, their status, and drift."""
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
@user_errors
def unlock(c):
    """Remove a dead deploy's lock, saying whose it was."""
    env = selected_environment(c)
    with open_fleet(env, hosts=[env.hosts[0]]) as fleet:
        removed = fleet.each("unlock", lock.force_release, quiet=True)[env.hosts[0]]
    if removed is None:
        print(f"{env.name} was not locked")
    else:
        print(f"removed the lock of {lock.describe(removed)}, broken by {who_am_i()}")


# --- the stages tasks share ---------------------------------------------------


def new_release(states, commit, branch, status=rel.BUILDING, keep_days=0):
    """Metadata for a new release, named so it collides with nothing on any host."""
    now = rel.utcnow()
    existing = {name for s in states.values() for name in s.releases}
    return rel.ReleaseMeta(
        name=rel.new_release_name(now, existing),
        commit=commit,
        branch=branch,
        deployed_by=who_am_i(),
        created_at=now.isoformat(),
        status=status,
        keep_until=rel.keep_until(now, keep_days),
    )


def who_am_i():
    return f"{getpass.getuser()}@{socket.gethostname()}"


def release_to_resume(states):
    """The newest unfinished release newer than every host's current one."""
    candidates = {}
    for host_state in states.values():
        for name, found in host_state.releases.items():
            newer = host_state.current is None or name > host_state.current
            if found.meta and found.status in (rel.BUILDING, rel.FAILED) and newer:
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
        fleet.each("services", lambda host: supervisor.install_programs(host, meta.name))
        fleet.each("check", lambda host: build.preswap_check(
            host, meta.name, [env.program_name(s) for s in env.services_on(host.name)]))
    except DeployError:
        mark(fleet, meta.with_status(rel.FAILED), quietly=True)
        reporter.stage(f"no host was changed: current is untouched; `fab {env.name} "
                       "deploy:resume=yes` continues this release")
        raise


def go_live(fleet, meta, states):
    """Swap current on every host, restart, health-check; on failure put every host back."""
    try:
        fleet.each("swap", lambda host: current.swap(host, meta.name) and None
                   or f"current -> {meta.name}")
        fleet.each("restart", supervisor.apply)
        fleet.each("health", lambda host: health.check(host, meta.name, meta.commit))
    except DeployError as error:
        reporter.stage("going live failed: putting every host back on its previous release")
        restored = restore_previous(fleet, states)
        outcome = ("every host is back on its previous release" if restored
                   else "NOT every host could be restored: check `fab <env> releases`")
        raise DeployError(f"{error}; {outcome}") from None


def restore_previous(fleet, states):
    """Point every host back at the release it had before; True if all of them made it."""
    def restore(host):
        previous = states[host.name].current
        if previous:
            current.swap(host, previous)
        else:
            current.remove(host)
        supervisor.apply(host, expect_programs=previous is not None)
        return f"current -> {previous or '(none: first deploy)'}"

    try:
        fleet.each("revert", restore)
    except StepFailed as error:
        reporter.stage(f"WARNING: could not restore every host: {error}")
        return False
    return True


def mark(fleet, meta, quietly=False):
    try:
        fleet.each("mark", lambda host: release.write_meta(host, meta), quiet=quietly)
    except StepFailed as error:
        if not quietly:
            raise
        reporter.stage(f"WARNING: could not mark release {meta.name} {meta.status}: {error}")


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


# --- environments and Fabric-1 arguments --------------------------------------


def _environment_task(name):
    def select(c):
        select_environment(c, name)

    select.__doc__ = f"Select environment {name} (environments/{name}.yml)."
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

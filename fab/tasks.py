"""The deployer's tasks. Each is a readable composition of operations from fab/operations/.

    fab <env> deploy                     fab <env> setup_release:keep_days=N
    fab <env> deploy:resume=yes          fab <env> clean_releases
    fab <env> rollback[:<release>]       fab <env> hotfix_deploy[:<commit>]
    fab <env> restart_services           fab <env> set_supervisor_config
    fab <env> start_pillows              fab <env> stop_pillows
    fab <env> supervisorctl:"status"     fab <env> manage:"<command>"
    fab <env> releases                   fab <env> unlock
    fab <env> preindex_views             fab <env> prepare_release (the same)
    fab <env> history[:limit=N,json=yes] fab <env> deploy_log[:<id>|follow=yes]
    fab <env> history_prune[:days=N]     fab <env> history_upgrade
    fab <env> deploy:plan=yes            (also rollback, clean_releases: changes nothing)
    fab -l

`fab <env>` selects an environment (environments/<env>.yml) for the tasks after it.
Arguments may be given Fabric-1 style (`task:name=value,...`) or natively
(`task --name value`).

A fabfile exposes them with `from fab.tasks import *`: the deployer's own
fabfile.py does, and so does the one in an application's repository.
"""
import contextlib
import shlex

from fabric import task
from invoke import Exit, Task

from fab import entry, events, hooks, precedence, releases as rel
from fab import history as history_store
from fab import rollout, waves
from fab.errors import (
    ConfigError, DeployError, FleetInconsistent, Interrupted, PreflightError, StepFailed, UsageError,
)
from fab.operations import build, cleanup, code, credentials, lock, release, shared, supervisor, virtualenv
from fab.operations import manage as manage_ops
from fab.events import stream
from fab.secrets import safe_to_show
from fab.identity import who_am_i
from fab.opening import fence_the_broken_holder, open_fleet
from fab.paths import Paths
from fab.runner import reported, selected_environment, user_errors

# --- deploy -------------------------------------------------------------------


@task
@reported
def deploy(c, resume=False, rev="", hosts="", plan=False):
    """Build, swap and restart a new release everywhere.

    Stages: resolve the branch (or --rev: a full commit, tag or branch) to one
    commit; connect to every host (keys verified); lock; build the release on
    every host (or go on with the one preindex_views prepared for this commit);
    migrate; go live wave by wave (canary first: swap, restart without
    dropping requests, health checks); mark the release good; clean old
    releases; unlock. Hooks run before and after the build and the swap. A
    failure or an interrupt before the swap changes no host's `current`; after
    it, every host goes back. --resume continues the newest unfinished
    release; --hosts "web3;web4" (hosts or roles) limits the deploy to some
    hosts, for emergencies. --plan shows what it would do (commits,
    virtualenvs, service configs, waves, cleanup) and changes nothing.
    """
    env = selected_environment(c)
    if resume and rev:
        raise UsageError("deploy: resume continues the failed release's own commit; do not give rev")
    targets = limited_hosts(env, hosts)
    ref = precedence.git_ref(rev, env)
    commit = None if resume else code.resolve_commit(env.app.repo, ref)
    with open_fleet(env, targets, lock=None if plan else "deploy", drains=True) as fleet:
        if resume:
            meta = release_to_resume(fleet.states)
            stream.stage(f"resuming release {meta.name} at {meta.commit[:12]}")
        else:
            meta = prepared_or_new_release(fleet, commit, ref, "planning" if plan else "deploying")
        if plan:
            return show_plan(plans().for_deploy(fleet, meta, rel.agreed_or_none(fleet.states)))
        previous = previous_releases(fleet)
        stream.publish(events.ReleaseChosen(meta.name, meta.commit, meta.branch,
                                            previous=rel.agreed_or_none(fleet.states)))
        context = hook_context(fleet, "deploy", meta)

        with unchanged_on_failure(fleet, meta):
            hooks.run(env, "before_build", context)
            build_release(fleet, meta)
            hooks.run(env, "after_build", context)
            migrate(fleet, meta)
            hooks.run(env, "before_swap", context)
        finish = rollout.Finishing(good_and_clean(fleet, meta, rel.utcnow()))
        failed = go_live(fleet, meta, previous, finish=finish)
        rollout.finish_the_others(fleet, finish)  # mark good and clean where not done yet
        hooks.run_after(env, "after_swap", context)
    if failed:
        raise FleetInconsistent(f"release {meta.name} is live, but {rollout.describe_failures(failed)} "
                                "failed within the failure limit and run their previous release")
    stream.stage(f"deploy finished: release {meta.name} ({meta.commit[:12]}) is live on "
                 f"{', '.join(fleet.names)}")


@task
@reported
def rollback(c, release="", plan=False):
    """Go back to the previous (or a named) release.

    --plan shows the target, each host's move and the waves, and changes nothing.
    """
    env = selected_environment(c)
    wanted = rel.validate_release_name(release) if release else None
    with open_fleet(env, lock=None if plan else "rollback") as fleet:
        states = fleet.states
        currents = {name: s.current for name, s in states.items()}
        target = rel.rollback_target(rel.releases_by_host(states), currents, wanted)
        leaving = rel.agreed_or_none(states)  # None: the hosts disagree, and release= was named
        target_meta = states[env.hosts[0]].release(target).meta
        if plan:
            return show_plan(plans().for_rollback(fleet, target_meta, leaving))
        stream.publish(events.ReleaseChosen(target, target_meta.commit, target_meta.branch, previous=leaving))
        stream.stage(f"rolling back from {leaving or 'releases that differ per host'} to {target} "
                     f"({target_meta.commit[:12]})")

        context = hook_context(fleet, "rollback", target_meta)
        hooks.run(env, "before_swap", context)
        left = newer_than(states, target)
        finish = rollout.Finishing(rolled_back_from(left, target_meta))
        go_live(fleet, target_meta, previous_releases(fleet), on_failure=None, finish=finish)
        rollout.finish_the_others(fleet, finish)
        hooks.run_after(env, "after_swap", context)
    rolled_back = sorted({found.name for found in left.values()})
    kept = f"; {', '.join(rolled_back)} kept, marked rolled_back" if rolled_back else ""
    stream.stage(f"rollback finished: {target} is live on {', '.join(env.hosts)}{kept}")


@task
@reported
def clean_releases(c, plan=False):
    """Delete old and failed releases (safe ones kept).

    --plan lists what each host would lose, and changes nothing.
    """
    env = selected_environment(c)
    with open_fleet(env, lock=None if plan else "clean_releases") as fleet:
        if plan:
            return show_plan(plans().for_cleanup(fleet))
        clean_old_releases(fleet)


@task
@reported
def hotfix_deploy(c, commit=""):
    """Put new code into the current release; restart."""
    env = selected_environment(c)
    ref = precedence.git_ref(commit, env)
    new_commit = code.resolve_commit(env.app.repo, ref)
    with open_fleet(env, lock="hotfix_deploy") as fleet:
        live, meta = live_release(fleet)
        stream.publish(events.ReleaseChosen(live, new_commit, ref, previous=live))
        stream.stage(f"hotfix of release {live}: {meta.commit[:12]} -> {new_commit[:12]}")

        fleet.each("fetch", lambda host: code.fetch_for_hotfix(host, live, new_commit))  # refusals change nothing
        context = hook_context(fleet, "hotfix_deploy", meta.hotfixed(new_commit, who_am_i(), rel.utcnow()))
        hooks.run(env, "before_restart", context)
        try:
            notes = fleet.each("hotfix", lambda host: code.hotfix(host, live, meta.commit, new_commit))
            if any(code.REQUIREMENTS_CHANGED in note for note in notes.values()):
                stream.warning(f"{new_commit[:12]} changes the requirements; a hotfix does not install them: "
                               f"`fab {env.name} deploy` does")
            restart_everywhere(fleet, "graceful", rollout.Target(live, new_commit, meta.ports))
        except DeployError as error:
            stream.stage(f"hotfix failed: putting {meta.commit[:12]} back into {live}")
            fleet.each("unhotfix", lambda host: code.hotfix(host, live, new_commit, meta.commit))
            restart_everywhere(fleet, "graceful", rollout.Target.of(meta))
            raise DeployError(f"{error}; release {live} runs {meta.commit[:12]} again") from None
        mark(fleet, meta.hotfixed(new_commit, who_am_i(), rel.utcnow()))
        hooks.run_after(env, "after_restart", context)
    stream.stage(f"hotfix finished: release {live} now runs {new_commit[:12]}")


@task
@reported
def setup_release(c, keep_days=0):
    """Build a private release; print its path."""
    env = selected_environment(c)
    days = rel.parse_keep_days(keep_days)
    commit = code.resolve_commit(env.app.repo, env.app.branch)
    with open_fleet(env, lock="setup_release") as fleet:
        meta = new_release(fleet, commit, env.app.branch, private=True, keep_days=days)
        stream.publish(events.ReleaseChosen(meta.name, commit, env.app.branch,
                                            previous=rel.agreed_or_none(fleet.states)))
        stream.stage(f"building private release {meta.name} at {commit[:12]}")
        context = hook_context(fleet, "setup_release", meta)
        with unchanged_on_failure(fleet, meta):
            hooks.run(env, "before_build", context)
            build_release(fleet, meta)
            hooks.run(env, "after_build", context)
    kept = f"kept until {meta.keep_until}" if meta.keep_until else "not protected from cleanup"
    for name, host in fleet.hosts.items():
        print(f"{name}: {host.paths.release(meta.name)}")
    stream.stage(f"private release {meta.name} ready ({kept})")


@task
@reported
def preindex_views(c):
    """Build a release and its predeploy work now; no swap.

    The release waits, marked `prepared`; the next `deploy` of the same commit
    goes on with it and skips what is done (code, virtualenv, build, predeploy),
    so it is quick. Nothing live changes: no swap, no migration, no restart.
    """
    env = selected_environment(c)
    commit = code.resolve_commit(env.app.repo, env.app.branch)
    with open_fleet(env, lock="preindex_views") as fleet:
        meta = prepared_or_new_release(fleet, commit, env.app.branch, task="preparing")
        stream.publish(events.ReleaseChosen(meta.name, commit, env.app.branch,
                                            previous=rel.agreed_or_none(fleet.states)))
        context = hook_context(fleet, "preindex_views", meta)
        with unchanged_on_failure(fleet, meta):
            hooks.run(env, "before_build", context)
            build_release(fleet, meta)
            hooks.run(env, "after_build", context)
        mark(fleet, meta.with_status(rel.PREPARED))
    stream.stage(f"release {meta.name} prepared at {commit[:12]}: the next "
                 f"`fab {env.name} deploy` of this commit goes live with it")


#: preindex_views by a name that says what it does for any app.
prepare_release = Task(preindex_views.body, name="prepare_release")


@task
@reported
def releases(c):
    """Show each host's releases, statuses and drift (the hosts it can read)."""
    env = selected_environment(c)
    with open_fleet(env, partial=True) as fleet:
        states = fleet.states
        fleet_target = fleet_rollback_target(fleet, rel.agreed_or_none(states))
    stream.publish(events.ReleasesListed(
        {name: rel.host_listing(list(states[name].releases.values()), states[name].current, fleet_target)
         for name in env.hosts if name in states},
        drift=rel.disagreement({name: s.current for name, s in states.items()}),
        unreachable=fleet.unreachable))
    if fleet.unreachable:
        raise DeployError(f"could not read {rollout.describe_failures(fleet.unreachable)}")


@task
@reported
def unlock(c):
    """Stop a hung lock holder; clear a stale claim (says whose)."""
    env = selected_environment(c)
    claim = history_store.clear_claim(env, who_am_i())
    if claim:
        print(safe_to_show(f"removed the claim of {claim} from the history store (kept in its claim audit)"))
    with open_fleet(env, hosts=[env.hosts[0]]) as fleet:
        removed = fleet.each("unlock", lambda host: lock.force_release(host, who_am_i()),
                             quiet=True)[env.hosts[0]]
    if removed is None:
        print(f"{env.name} was not locked" if claim is None else f"no lock on {env.hosts[0]}")
        return
    holder, generation = removed
    paths = Paths(env.code_root)
    print(safe_to_show(f"stopped the lock holder {lock.describe(holder)}; recorded in "
                       f"{paths.relative(paths.lock_breaks_log)} on {env.hosts[0]}"))
    fence_the_broken_holder(env, generation)


# --- services -----------------------------------------------------------------


@task
@reported
def restart_services(c, hosts=""):
    """Restart services without dropping requests."""
    env = selected_environment(c)
    with open_fleet(env, limited_hosts(env, hosts), lock="restart_services", drains=True) as fleet:
        live, meta = live_release(fleet)
        context = hook_context(fleet, "restart_services", meta)
        hooks.run(env, "before_restart", context)
        restart_everywhere(fleet, "graceful", rollout.Target.of(meta))
        hooks.run_after(env, "after_restart", context)
    stream.stage(f"services restarted: every host runs release {live} ({meta.commit[:12]})")


@task
@reported
def set_supervisor_config(c):
    """Render service configs and apply the changes (none: says so, restarts nothing)."""
    env = selected_environment(c)
    with open_fleet(env, lock="set_supervisor_config") as fleet:
        live, meta = live_release(fleet)
        ports = env.topology.service_ports()  # what the configs are rendered with
        if supervisor.renders_as_current(fleet.hosts.values(), meta.ports, ports):
            stream.stage(f"nothing changed: every host has these service configs in release {live}; "
                         "nothing restarted")
            return
        context = hook_context(fleet, "set_supervisor_config", meta)
        hooks.run(env, "before_restart", context)
        fleet.each("render", supervisor.rerender_current)
        restart_everywhere(fleet, "changed", rollout.Target.of(meta, ports))
        mark(fleet, meta.with_ports(ports))
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
    targets = manage_targets(env, host, role, all_hosts)
    with open_fleet(env, hosts=targets) as fleet:
        for name in targets:
            if len(targets) > 1:
                print(f"--- {name}", flush=True)
            exit_code = manage_ops.run(fleet[name], words)
            if exit_code:
                raise Exit(code=exit_code)


def manage_targets(env, host, role, all_hosts):
    """The hosts `manage` runs on: a host; or a role's (default manage.role) first or all."""
    if host and (role or all_hosts):
        raise UsageError("manage: give a host, or a role (with all_hosts), not both")
    if host:
        if host not in env.hosts:
            raise UsageError(f"manage: unknown host {host!r} (hosts: {', '.join(env.hosts)})")
        return [host]
    candidates = env.topology.hosts_of(precedence.manage_role(role, env))
    return candidates if all_hosts else candidates[:1]


def on_pillows(env, operation):
    """Run `operation(host, programs)` on every host of the pillow role."""
    hosts = [name for name in env.hosts if env.topology.pillows_on(name)]
    if not hosts:
        raise ConfigError(f"{env.name}: no supervisor services on role {env.pillow_role}")
    with open_fleet(env, hosts=hosts) as fleet:
        fleet.each("pillows", lambda host: operation(host, env.topology.pillows_on(host.name)))


def split_command(command):
    try:
        words = shlex.split(command)
    except ValueError as error:
        raise UsageError(f"cannot parse command {command!r}: {error}") from None
    if not words:
        raise UsageError("empty command")
    return words


# --- the stages tasks share ---------------------------------------------------


def new_release(fleet, commit, branch, private=False, keep_days=0):
    """Metadata for a new release, named so it collides with nothing on any host."""
    now = rel.utcnow()
    existing = {name for s in fleet.states.values() for name in s.releases}
    return rel.ReleaseMeta(
        name=rel.new_release_name(now, existing),
        commit=commit,
        branch=branch,
        deployed_by=who_am_i(),
        created_at=now.isoformat(),
        status=rel.PRIVATE if private else rel.BUILDING,
        keep_until=rel.keep_until(now, keep_days),
        private=private,
    ).with_ports(fleet.env.topology.service_ports())


def prepared_or_new_release(fleet, commit, ref, task="deploying"):
    """The release preindex_views prepared for `commit` on every host, to go on
    with; otherwise metadata for a new one."""
    states = fleet.states
    prepared = rel.prepared_release(rel.releases_by_host(states),
                                    {name: s.current for name, s in states.items()}, commit)
    if prepared:
        stream.stage(f"{task} {ref} at {commit[:12]}: release {prepared}, prepared earlier by preindex_views")
        return next(iter(states.values())).release(prepared).meta.with_status(rel.BUILDING)
    meta = new_release(fleet, commit, ref)
    stream.stage(f"{task} {ref} at {commit[:12]} as release {meta.name}")
    return meta


def hook_context(fleet, task_name, meta):
    """What the environment's hooks are told about this task and its release."""
    return hooks.HookContext(
        environment=fleet.env.name, task=task_name, performer=who_am_i(), hosts=tuple(fleet.names),
        release=meta.name, commit=meta.commit, ref=meta.branch,
        previous_release=rel.agreed_or_none(fleet.states) or "")


def plans():
    """fab.plan, imported when a plan is asked for (it reads git objects; most runs don't)."""
    from fab import plan

    return plan


def show_plan(plan):
    """Publish what the task would do (a `fab.plan.Plan`); the task then ends, having
    changed nothing. A plan takes no lock: see `fab.plan`."""
    stream.publish(events.PlanMade(plan.to_dict()))


def live_release(fleet):
    """The release current on every host, and its metadata."""
    states = fleet.states
    live = rel.agreed_current({name: s.current for name, s in states.items()})
    missing = sorted(name for name, s in states.items() if not (s.release(live) and s.release(live).meta))
    if missing:
        raise PreflightError(f"current release {live} has no readable metadata on {', '.join(missing)}")
    return live, states[fleet.names[0]].release(live).meta


def previous_releases(fleet):
    """{host: Target} of what each host runs now: where a failed go-live puts it back."""
    targets = {}
    for name, host_state in fleet.states.items():
        back_to = rel.fallback_release(list(host_state.releases.values()), host_state.current)
        if back_to != host_state.current:
            stream.warning(f"current release {host_state.current} is unfinished (a deploy died after "
                           f"swapping it); {back_to or 'no release'} is what a failure puts back", host=name)
        found = host_state.release(back_to) if back_to else None
        targets[name] = rollout.Target.of(found.meta) if found and found.meta else rollout.Target(back_to)
    return targets


def release_to_resume(states):
    """The release every host would resume: the newest unfinished one newer than current."""
    candidates = {}
    for host_state in states.values():
        name = rel.resumable_release(list(host_state.releases.values()), host_state.current)
        if name:
            candidates[name] = host_state.release(name).meta
    if not candidates:
        raise PreflightError("nothing to resume: no unfinished release newer than current")
    name = max(candidates)
    unreadable = sorted(host for host, s in states.items() if s.release(name) and s.release(name).unreadable)
    if unreadable:  # the other hosts' word does not make it ours to continue there
        raise PreflightError(f"cannot resume release {name}: its metadata is unreadable on {', '.join(unreadable)}")
    return candidates[name].with_status(rel.BUILDING)


@contextlib.contextmanager
def unchanged_on_failure(fleet, meta):
    """Work before the swap: on a failure (an interrupt) the release is marked failed
    (interrupted), and no host's `current` has changed."""
    try:
        yield
    except DeployError as error:
        mark(fleet, meta.with_status(status_after(error)), quietly=True)
        resume = "" if meta.private else f"; `fab {fleet.env.name} deploy:resume=yes` continues this release"
        stream.stage(f"no host was changed: current is untouched{resume}")
        raise


def build_release(fleet, meta):
    """Every host gets the release ready to go live: code, secrets, shared files,
    virtualenv, build commands, service configs, predeploy commands, checks.
    Each step is done once per release (a resume skips what a host finished)."""
    env = fleet.env
    if env.secrets:
        fleet.each("secrets", shared.upload_secrets)
    if credentials.needed(env):  # for git and pip, never on their command lines
        fleet.each("credentials", credentials.upload)

    def check(host):
        return build.preswap_check(host, meta.name, [env.topology.program_name(s) for s in env.topology.supervised_on(host.name)])

    # One round trip per host for all of it; linked files (which may need uploading
    # first) and predeploy commands split it.
    first = [lambda host: release.create(host, meta), lambda host: code.checkout(host, meta.name, meta.commit)]
    if env.linked_files or env.linked_dirs:
        fleet.each_steps(lambda host: [step(host) for step in first])
        fleet.each("link", lambda host: host.run_steps([shared.link(host, meta.name)])[0].note)
        first = []
    fleet.each_steps(lambda host: [
        *(step(host) for step in first),
        virtualenv.ensure(host, meta.name),
        build.build_commands(host, meta.name),
        supervisor.install_service_configs(host, meta.name),
        *([] if env.predeploy else [check(host)]),
    ])
    if env.predeploy:
        on_role(fleet, meta, "predeploy", env.predeploy, env.predeploy.commands)
        fleet.each_steps(lambda host: [check(host)])


def migrate(fleet, meta):
    """The environment's migration, in the new release, before any host swaps."""
    if fleet.env.migrate:
        on_role(fleet, meta, "migrate", fleet.env.migrate, [fleet.env.migrate.command])


def on_role(fleet, meta, step, setting, commands):
    """Run `commands` in the release on the first host of the setting's role (`once`)
    or on each, within the setting's time limit."""
    hosts = fleet.of_role(setting.role)
    if setting.once:
        hosts = hosts[:1]
    if not hosts:
        stream.warning(f"{step} skipped: no host of role {setting.role} takes part")
        return
    fleet.each(step, lambda host: build.run_release_commands(host, meta.name, step, commands, setting.timeout),
               hosts=hosts)


def go_live(fleet, meta, previous, on_failure=rel.FAILED, finish=None):
    """Every host goes to `meta`'s release, wave by wave (the last wave's hosts
    also run `finish`'s steps, a rollout.Finishing, in the same round trip).

    On a failure or an interrupt every host is put back on `previous` and the
    release is marked `on_failure` (or interrupted). Returns {host: failure} of
    hosts that failed within the failure limit.
    """
    goal = {name: rollout.Target.of(meta) for name in fleet.names}
    stream.stage(f"waves: {waves.describe(rollout.plan(fleet))}")
    try:
        failed = rollout.go_live(fleet, rollout.plan(fleet), goal, previous, finish=finish)
    except DeployError as error:
        if on_failure:
            mark(fleet, meta.with_status(status_after(error, on_failure)), quietly=True)
        raise
    return failed


def status_after(error, otherwise=rel.FAILED):
    return rel.INTERRUPTED if isinstance(error, Interrupted) else otherwise


def restart_everywhere(fleet, mode, target):
    """Restart every host's services in place, wave by wave, without dropping requests."""
    rollout.restart(fleet, rollout.plan(fleet), {name: target for name in fleet.names}, mode)


def marked(*metas):
    """Steps for a host: write each release's metadata (its new status)."""
    return lambda host: [release.write_meta(host, meta) for meta in metas]


def newer_than(states, target):
    """{host: HostRelease} of each host's current release that is newer than `target`
    (with metadata): what a rollback to `target` leaves and marks rolled_back. Rolling
    forward leaves the older release good, so a later rollback can still go to it."""
    left = {name: state.release(state.current) for name, state in states.items() if state.current}
    return {name: found for name, found in left.items() if found and found.meta and found.name > target}


def rolled_back_from(left, target_meta):
    """Steps for a host going to `target_meta`'s release: mark it good, and the release
    it leaves (`left`, from `newer_than`) rolled_back."""
    good = target_meta.with_status(rel.GOOD)

    def steps(host):
        found = left.get(host.name)
        return marked(good, *([found.meta.with_status(rel.ROLLED_BACK)] if found else []))(host)

    return steps


def mark(fleet, *metas, quietly=False):
    """Write each release's metadata (its new status) on every host, in one round trip."""
    try:
        fleet.each_steps(marked(*metas), quiet=quietly)
    except StepFailed as error:
        if not quietly:
            raise
        stream.warning(f"could not mark release {metas[0].name} {metas[0].status}: {error}")


def good_and_clean(fleet, meta, now):
    """Steps for a host that runs `meta`'s release now: mark it good and delete old
    releases. What to delete is decided per host, before anything is deleted, from
    the state read when the fleet opened plus what this task changed there."""
    good = meta.with_status(rel.GOOD)
    fleet_target = fleet_rollback_target(fleet, good.name)

    def steps(host):
        host.state.releases[good.name] = rel.HostRelease(good.name, good)
        host.state.current = host.placed if host.placed in host.state.releases else good.name
        return [release.write_meta(host, good), cleanup.delete_releases(host, old_releases(host, now, fleet_target))]

    return steps


def clean_old_releases(fleet):
    """Delete old and failed releases, decided per host from the state read when
    the fleet opened (under the lock), before anything is deleted."""
    now = rel.utcnow()
    fleet_target = fleet_rollback_target(fleet, rel.agreed_or_none(fleet.states))
    fleet.each_steps(lambda host: [cleanup.delete_releases(host, old_releases(host, now, fleet_target))])


def fleet_rollback_target(fleet, current):
    """The release `rollback` would take the fleet to from `current` (None if none):
    every host's cleanup keeps it, whatever the host's own rollback target is."""
    return rel.fleet_rollback_target(rel.releases_by_host(fleet.states), current)


def old_releases(host, now, fleet_target=None):
    """What cleanup deletes on `host` (fab.releases.cleanup_deletes), from its state."""
    return rel.cleanup_deletes(list(host.state.releases.values()), host.state.current,
                               host.env.keep_releases, now, fleet_target)


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


# --- history ------------------------------------------------------------------


@task
@user_errors
def history(c, limit=20, json=False):
    """Show the last operations and their outcomes."""
    env = selected_environment(c)
    print(safe_to_show("\n".join(history_store.history_lines(env, limit, as_json=json))))


@task
@user_errors
def deploy_log(c, operation=0, follow=False):
    """Show an operation's log; follow a running one."""
    env = selected_environment(c)
    if follow:
        history_store.follow_log(env, operation, write=lambda line: print(safe_to_show(line), flush=True))
    else:
        print(safe_to_show("\n".join(history_store.log_lines(env, operation))))


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


# --- what a fabfile gets ------------------------------------------------------

#: What `from fab.tasks import *` gives a fabfile: every task, one per environment too
#: (`fab <env> <task>`), with Fabric-1 style arguments understood (fab.entry).
__all__ = entry.set_up(globals())

"""The deployer's tasks. Each is a readable composition of the stages in fab/stages.py
(choose the release, build, migrate, go live, finish) and operations from fab/operations/.

    fab <env> deploy                     fab <env> setup_release:keep_days=N
    fab <env> deploy:resume=yes          fab <env> clean_releases
    fab <env> rollback[:<release>]       fab <env> hotfix_deploy[:<commit>]
    fab <env> restart_services           fab <env> set_supervisor_config
    fab <env> push_secrets               (secrets uploaded again, programs restarted)
    fab <env> start_pillows              fab <env> stop_pillows
    fab <env> supervisorctl:"status"     fab <env> manage:"<command>"
    fab <env> releases                   fab <env> unlock
    fab <env> preindex_views             fab <env> prepare_release (the same)
    fab <env> history[:limit=N,json=yes] fab <env> deploy_log[:<id>|follow=yes]
    fab <env> history_prune[:days=N]     fab <env> history_upgrade
    fab <env> maintenance:on[,message=]  fab <env> maintenance:off
    fab <env> freeze:"<reason>"          fab <env> unfreeze
    fab <env> deploy:plan=yes            (also rollback, clean_releases: changes nothing)
    deploy:message="...",wait=60,force=yes (message: also rollback, hotfix_deploy;
                                         wait: every task that locks; force: what a freeze stops)
    fab <env> check                      (are the hosts ready? one line per problem)
    fab dashboard[:bind=,port=,proxy=yes] (a read-only web page over the history store)
    fab -l

`fab <env>` selects an environment (environments/<env>.yml) for the tasks after it.
Arguments may be given Fabric-1 style (`task:name=value,...`) or natively
(`task --name value`).

A fabfile exposes them with `from fab.tasks import *`: the deployer's own
fabfile.py does, and so does the one in an application's repository. This module
holds the tasks that move releases, and gives the fabfile the others with its own:
the services' tasks are in fab/tasks_services.py, the history and dashboard tasks in
fab/tasks_history.py, freeze, unfreeze and maintenance in fab/tasks_team.py.
"""
from fabric import task
from invoke import Task

from fab import entry, events, hooks, precedence, releases as rel
from fab import history as history_store
from fab import decide, freezes, local_clone, preflight, rollout, stages, wheels
from fab import tasks_history, tasks_services, tasks_team
from fab.errors import DeployError, FleetInconsistent, UsageError
from fab.events import stream
from fab.identity import who_am_i
from fab.opening import fence_the_broken_holder, open_fleet
from fab.operations import code, lock
from fab.operations import preflight as preflight_facts
from fab.operations import proxy as proxy_ops
from fab.paths import Paths
from fab.rotation import rotation_listing
from fab.runner import reported, selected_environment
from fab.secrets import safe_to_show
from fab.snapshot import FleetSnapshot
from fab.task_input import limited_hosts, wait_seconds

# --- deploy -------------------------------------------------------------------


@task
@reported
def deploy(c, resume=False, rev="", hosts="", plan=False, message="", wait=0, force=False):
    """Build, swap and restart a new release everywhere.

    Stages: resolve the branch (or --rev: a full commit, tag or branch) to one
    commit; connect to every host (keys verified); lock; build the release on
    every host (or go on with the one preindex_views prepared for this commit);
    migrate; go live wave by wave (canary first: swap, restart without
    dropping requests, health checks); mark the release good; clean old
    releases; unlock. Hooks run before and after the build, before the
    migration and before and after the swap. A failure or an interrupt before
    the swap changes no host's `current`; after it, every host goes back.
    --resume continues the newest unfinished release; --hosts "web3;web4"
    (hosts or roles) limits the deploy to some hosts, for emergencies. --plan
    shows what it would do (commits, virtualenvs, service configs, waves,
    gates, cleanup, the hosts' problems) and changes nothing.
    `rollout.gates` must keep passing between waves; with `rollout.pause` the
    deploy stops after the canary (exit 5) until --resume goes on.
    A frozen environment refuses it (exit 3) unless --force.
    """
    env = selected_environment(c)
    if resume and rev:
        raise UsageError("deploy: resume continues the failed release's own commit; do not give rev")
    ref = precedence.git_ref(rev, env)
    commit = None if resume else code.resolve_commit(env.app.repo, ref)
    local_clone.warn_of_unpushed(ref, commit)
    with open_fleet(env, limited_hosts(env, hosts), lock=None if plan else "deploy", drains=True,
                    wait=wait_seconds("deploy", wait), force=force) as fleet:
        snapshot = FleetSnapshot.of_fleet(fleet)
        meta = stages.choose_release(fleet, snapshot, commit, ref, "planning" if plan else "deploying", resume)
        decision = decide.decide_deploy(snapshot, meta, rollout.waves_for(fleet), rel.utcnow(), env.rollout.pause)
        if plan:
            return show_plan(plans().for_deploy(fleet, snapshot, decision))
        context = stages.announce(fleet, snapshot, "deploy", meta, message=message)
        with stages.unchanged_on_failure(fleet, meta):
            hooks.run(env, "before_build", context)
            built = stages.build(fleet, meta)
            hooks.run(env, "after_build", context)
            hooks.run(env, "before_migrate", context)
            stages.migrate(fleet, meta)
            hooks.run(env, "before_swap", context)
        moves = stages.go_live(fleet, snapshot, decision, built, context)
        if moves.paused:  # the lock goes with the fleet: a paused deploy holds nothing
            raise stages.paused(fleet, decision, moves)
        stages.finish(fleet, moves)
        hooks.run_after(env, "after_swap", context)
    if moves.failed:
        raise FleetInconsistent(f"release {meta.name} is live, but {rollout.describe_failures(moves.failed)} "
                                "failed within the failure limit and run their previous release")
    stream.stage(f"deploy finished: release {meta.name} ({meta.commit[:12]}) is live on "
                 f"{', '.join(fleet.names)}")


@task
@reported
def rollback(c, release="", plan=False, message="", wait=0):
    """Go back to the previous (or a named) release.

    --plan shows the target, each host's move and the waves, and changes nothing.
    It runs while the environment is frozen (it is the fix); with
    `rollback_freezes: true` it freezes the environment when it is done.
    """
    env = selected_environment(c)
    wanted = rel.validate_release_name(release) if release else None
    with open_fleet(env, lock=None if plan else "rollback", wait=wait_seconds("rollback", wait)) as fleet:
        snapshot = FleetSnapshot.of_fleet(fleet)
        decision = decide.decide_rollback(snapshot, rollout.waves_for(fleet), wanted)
        if plan:
            return show_plan(plans().for_rollback(fleet, snapshot, decision))
        target, leaving = decision.release, decision.previous  # leaving None: the hosts differ
        context = stages.announce(fleet, snapshot, "rollback", target, decision.warnings, message=message)
        stream.stage(f"rolling back from {leaving or 'releases that differ per host'} to {target.name} "
                     f"({target.commit[:12]})")
        hooks.run(env, "before_swap", context)
        moves = stages.go_live(fleet, snapshot, decision)
        stages.finish(fleet, moves)
        hooks.run_after(env, "after_swap", context)
        hooks.run_after(env, "after_rollback", context)
        if env.rollback_freezes:
            stages.freeze(fleet, fleet.lock.host, freezes.after_rollback(message, leaving, target.name))
    rolled_back = sorted({meta.name for host in decision.hosts.values() for meta in host.marks[1:]})
    kept = f"; {', '.join(rolled_back)} kept, marked rolled_back" if rolled_back else ""
    stream.stage(f"rollback finished: {target.name} is live on {', '.join(env.hosts)}{kept}")


@task
@reported
def clean_releases(c, plan=False, wait=0):
    """Delete old and failed releases (safe ones kept).

    --plan lists what each host would lose, and changes nothing.
    """
    env = selected_environment(c)
    with open_fleet(env, lock=None if plan else "clean_releases", wait=wait_seconds("clean_releases", wait)) as fleet:
        decision = decide.decide_cleanup(FleetSnapshot.of_fleet(fleet), rel.utcnow())
        if plan:
            return show_plan(plans().for_cleanup(fleet, decision))
        stages.clean_up(fleet, decision)


@task
@reported
def hotfix_deploy(c, commit="", message="", wait=0, force=False):
    """Put new code into the current release; restart (refused while frozen, unless --force)."""
    env = selected_environment(c)
    ref = precedence.git_ref(commit, env)
    new_commit = code.resolve_commit(env.app.repo, ref)
    local_clone.warn_of_unpushed(ref, new_commit)
    with open_fleet(env, lock="hotfix_deploy", wait=wait_seconds("hotfix_deploy", wait), force=force) as fleet:
        snapshot = FleetSnapshot.of_fleet(fleet)
        decision = decide.decide_hotfix(snapshot, new_commit, who_am_i(), rel.utcnow(), rollout.waves_for(fleet))
        live, meta = snapshot.live()
        stream.publish(events.ReleaseChosen(live, new_commit, ref, previous=live))
        stream.stage(f"hotfix of release {live}: {meta.commit[:12]} -> {new_commit[:12]}")

        stages.fetch_for_hotfix(fleet, live, new_commit)  # refusals change nothing
        context = stages.hook_context(fleet, snapshot, "hotfix_deploy", decision.release, message)
        hooks.run(env, "before_restart", context)
        stages.hotfix(fleet, decision)
        stages.mark(fleet, decision.release)
        hooks.run_after(env, "after_restart", context)
    stream.stage(f"hotfix finished: release {live} now runs {new_commit[:12]}")


@task
@reported
def setup_release(c, keep_days=0, wait=0):
    """Build a private release; print its path."""
    env = selected_environment(c)
    days = rel.parse_keep_days(keep_days)
    commit = code.resolve_commit(env.app.repo, env.app.branch)
    with open_fleet(env, lock="setup_release", wait=wait_seconds("setup_release", wait)) as fleet:
        snapshot = FleetSnapshot.of_fleet(fleet)
        meta = decide.new_release(snapshot, commit, env.app.branch, who_am_i(), rel.utcnow(),
                                  env.topology.service_ports(), private=True, keep_days=days)
        context = stages.announce(fleet, snapshot, "setup_release", meta)
        stream.stage(f"building private release {meta.name} at {commit[:12]}")
        with stages.unchanged_on_failure(fleet, meta):
            hooks.run(env, "before_build", context)
            stages.build(fleet, meta)
            hooks.run(env, "after_build", context)
    kept = f"kept until {meta.keep_until}" if meta.keep_until else "not protected from cleanup"
    for name, host in fleet.hosts.items():
        print(f"{name}: {host.paths.release(meta.name)}")
    stream.stage(f"private release {meta.name} ready ({kept})")


@task
@reported
def preindex_views(c, wait=0):
    """Build a release and its predeploy work now; no swap.

    The release waits, marked `prepared`; the next `deploy` of the same commit
    goes on with it and skips what is done (code, virtualenv, build, predeploy),
    so it is quick. Nothing live changes: no swap, no migration, no restart.
    """
    env = selected_environment(c)
    commit = code.resolve_commit(env.app.repo, env.app.branch)
    with open_fleet(env, lock="preindex_views", wait=wait_seconds("preindex_views", wait)) as fleet:
        snapshot = FleetSnapshot.of_fleet(fleet)
        meta = stages.choose_release(fleet, snapshot, commit, env.app.branch, doing="preparing")
        context = stages.announce(fleet, snapshot, "preindex_views", meta)
        with stages.unchanged_on_failure(fleet, meta):
            hooks.run(env, "before_build", context)
            stages.build(fleet, meta)
            hooks.run(env, "after_build", context)
        stages.mark(fleet, meta.with_status(rel.PREPARED))
    stream.stage(f"release {meta.name} prepared at {commit[:12]}: the next "
                 f"`fab {env.name} deploy` of this commit goes live with it")


#: preindex_views by a name that says what it does for any app.
prepare_release = Task(preindex_views.body, name="prepare_release")


@task
@reported
def releases(c):
    """Show each host's releases and drift, and each proxy's rotation.

    Hosts whose releases are identical share one table; a host it cannot read is
    named with why; per proxy, the hosts it sends traffic to and those it leaves
    out of its rotation (drained)."""
    env = selected_environment(c)
    with open_fleet(env, partial=True) as fleet:
        snapshot = FleetSnapshot.of_fleet(fleet)
        proxies = [host for host in fleet.hosts.values() if proxy_ops.proxies_on(host)]
        upstreams, unread = fleet.attempt("rotation", proxy_ops.read_upstreams, hosts=proxies, quiet=True)
    lock_host = fleet.states.get(env.hosts[0])  # where the freeze is kept
    stream.publish(events.ReleasesListed(
        {name: snapshot.listing(name) for name in env.hosts if name in snapshot.hosts},
        drift=snapshot.drift(),
        unreachable=fleet.unreachable,
        wheel_sets=wheels.role_wheel_sets(env.roles, {  # a host that runs no app code has no venv
            name: found for name, found in snapshot.current_wheel_sets().items() if env.topology.runs_app(name)}),
        freeze=lock_host.freeze if lock_host else None,
        rotation=rotation_listing(env, upstreams, {**fleet.unreachable, **unread}, fleet.address_of)))
    if fleet.unreachable:
        raise DeployError(f"could not read {rollout.describe_failures(fleet.unreachable)}")


@task
@reported
def check(c):
    """Check every host is ready for a deploy; say what to fix.

    One line per problem, with its fix. One read-only round trip per host: SSH and its host key, the python named,
    virtualenv or uv, git (when the hosts fetch), supervisord running and including
    the code root's programs, free disk against the current release's size, the
    code root writable, each service's port free or held by this environment,
    the clock against this machine's, the proxy's config directory. Exit 1 when
    anything is wrong. deploy:plan=yes shows the same problems.
    """
    env = selected_environment(c)
    with open_fleet(env, partial=True, read=False) as fleet:
        reads, failed = fleet.attempt("check", preflight_facts.read, quiet=True)
    found = preflight.verdict(env, reads, {**fleet.unreachable, **failed})
    stream.publish(events.HostsChecked(tuple(env.hosts), tuple(problem.to_dict() for problem in found)))
    if found:
        hosts = sorted({problem.host for problem in found})
        raise DeployError(f"{len(found)} problem{'s' if len(found) > 1 else ''} on {', '.join(hosts)}")


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


# --- the dry run -----------------------------------------------------------------


def plans():
    """fab.plan, imported when a plan is asked for (it reads git objects; most runs don't)."""
    from fab import plan

    return plan


def show_plan(plan):
    """Publish what the task would do (a `fab.plan.Plan`); the task then ends, having
    changed nothing. A plan takes no lock: see `fab.plan`."""
    stream.publish(events.PlanMade(plan.to_dict()))


# --- what a fabfile gets ------------------------------------------------------

#: What `from fab.tasks import *` gives a fabfile: every task (those of the modules named
#: here too), one per environment too (`fab <env> <task>`), with Fabric-1 style arguments
#: understood (fab.entry).
__all__ = entry.set_up(globals(), tasks_services, tasks_history, tasks_team)

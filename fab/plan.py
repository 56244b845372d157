"""What a task would do, shown before it does anything: `plan=yes` on deploy,
rollback and clean_releases.

A plan only reads: each host's state (read when the fleet opens) and its facts
(`fab.operations.plan_facts`, one read-only round trip per host), and the app's
repository on the controller (`fab.app_repo`). It takes no lock: it changes
nothing, so it cannot get in a deploy's way, and taking the lock would itself
write on the lock host; when a live task holds the lock the plan says so, since
that task may change what the plan found.

What each host goes to, what a failure puts back there and what cleanup
deletes are the task's own decision (fab.decide, from the fleet read once,
fab.snapshot): a plan shows that very Decision (`from_decision`) and adds what
it reads beside it, with the pure functions in the second half, unit-tested
without SSH, each reusing the function the real task decides with: the venv
key (`virtualenv.venv_key`), the service configs
(`supervisor.render_service_configs`). A plan is plain data; `Plan.to_dict()`
is what the PlanMade event carries to the outputs.
"""
import dataclasses
import difflib
import json
import posixpath
from typing import Optional

from fab import decide, freezes, gates, preflight
from fab import rollout, stages
from fab.app_repo import RepoUnreadable, opened
from fab.operations import lock, plan_facts, supervisor, virtualenv
from fab.operations import wheels as wheel_ops
from fab.operations import preflight as preflight_facts
from fab.paths import SERVICES
from fab.steps import Outcome

#: Commits a plan lists before it says "... N more".
LOG_LIMIT = 10
#: Diff lines a plan shows per config file before it says "... N more lines".
DIFF_LIMIT = 30
#: Wheels a plan names per host; past that it gives their count and bytes only.
WHEEL_NAMES_SHOWN = 5

REUSED, BUILT, SKIPPED, UNKNOWN, FAILS, NONE = "reused", "built", "skipped", "unknown", "fails", "none"
ADDED, CHANGED, REMOVED, UNCHANGED = "added", "changed", "removed", "unchanged"
RELOAD, RESTART = "reload", "restart"


@dataclasses.dataclass(frozen=True)
class Commits:
    """The commits between two commits, `git log --oneline` style, newest first."""

    since: Optional[str]  # None: the whole history of `until`
    until: Optional[str]
    total: int = 0
    shown: tuple = ()  # at most LOG_LIMIT "<short id> <subject>" lines
    #: Commits `since` has that `until` lacks (a deploy of an older commit drops them).
    dropped: int = 0
    error: Optional[str] = None  # why the log could not be read

    @property
    def more(self):
        return max(0, self.total - len(self.shown))


@dataclasses.dataclass(frozen=True)
class VirtualenvPlan:
    action: str  # REUSED, BUILT, SKIPPED, UNKNOWN, FAILS or NONE (the host runs no app code)
    key: Optional[str] = None
    reason: str = ""
    changed: tuple = ()  # requirements files that differ from the live release's


#: What a host's store gets (wheels.build: once): the venv's wheels it lacks, or
#: nothing because it has the venv, or wheels not built yet (not in the controller's cache).
RECEIVES, TO_BUILD = "receives", "to_build"


@dataclasses.dataclass(frozen=True)
class WheelsPlan:
    action: str  # REUSED, RECEIVES, TO_BUILD, SKIPPED or UNKNOWN
    key: Optional[str] = None
    count: int = 0  # wheels it would receive
    bytes: int = 0
    names: tuple = ()  # their file names, when at most WHEEL_NAMES_SHOWN


@dataclasses.dataclass(frozen=True)
class ConfigChange:
    file: str  # "<control>/<program>.conf" under a release's services/
    change: str  # ADDED, CHANGED, REMOVED or UNCHANGED
    diff: tuple = ()  # a unified diff, shortened
    more: int = 0  # diff lines left out


@dataclasses.dataclass(frozen=True)
class HostPlan:
    current: Optional[str]
    goes_to: Optional[str] = None  # the release `current` would point to (None: unchanged)
    virtualenv: Optional[VirtualenvPlan] = None
    configs: Optional[tuple] = None  # ConfigChange, None when the task renders none
    deletes: tuple = ()  # releases its cleanup would delete, oldest first
    back_to: Optional[str] = None  # the release a failure puts back (None: none, or nothing swapped)
    programs: Optional[dict] = None  # {program: RELOAD or RESTART}, None when the task restarts none here
    wheels: Optional[WheelsPlan] = None  # None unless wheels.build is once (deploy)


@dataclasses.dataclass(frozen=True)
class Plan:
    task: str
    release: Optional[str] = None
    new_release: bool = False  # a release the task would create (named when it starts)
    commit: Optional[str] = None
    ref: Optional[str] = None
    live_release: Optional[str] = None  # current on every host (None: none, or they differ)
    commits: Optional[Commits] = None
    waves: tuple = ()  # fab.waves.Wave
    hosts: dict = dataclasses.field(default_factory=dict)  # name -> HostPlan
    warnings: tuple = ()
    #: A deploy's gates (fab.gates.describe) and whether it pauses after the canary.
    gates: tuple = ()
    pause: bool = False
    problems: tuple = ()  # deploy: what `check` finds on the hosts (fab.preflight.Problem.to_dict())

    def to_dict(self):
        """Plain JSON data (what the PlanMade event and the JSON summary carry)."""
        data = dataclasses.asdict(self)
        if self.commits is not None:
            data["commits"]["more"] = self.commits.more
        return json.loads(json.dumps(data))


# --- what a plan reads -----------------------------------------------------------


def for_deploy(fleet, snapshot, decision):
    """The plan of `deploy` building and going live with a release (new or resumed):
    the task's `decision` (fab.decide.decide_deploy, from `snapshot`, the fleet as
    the task read it), with the commits, each host's venv reuse and service config
    changes read beside it."""
    env = fleet.env
    meta = decision.release
    facts, checked = read_facts_and_checks(fleet)
    live_commit, drift = snapshot.live_commit()
    warnings = [f"hosts run different commits ({drift}): no single log of changes"] if drift else []
    new_requirements, commits = None, Commits(live_commit, meta.commit)
    try:
        with opened(env.app.repo, [meta.commit, live_commit]) as repo:
            if not repo.has(f"{meta.commit}^{{commit}}"):
                raise RepoUnreadable(f"commit {meta.commit[:12]} is not in it")
            new_requirements = {path: repo.file_at(meta.commit, path) for path in env.requirements}
            commits = read_commits(repo, live_commit, meta.commit)
    except RepoUnreadable as error:
        commits = Commits(live_commit, meta.commit, error=f"cannot read the repository: {error}")
    plan = from_decision(decision, commit=meta.commit, ref=meta.branch, commits=commits,
                         new_release=not snapshot.anywhere(meta.name),
                         warnings=(*warnings, *lock_warnings(facts), *freeze_warnings(fleet, "deploy")),
                         problems=tuple(problem.to_dict() for name in fleet.hosts
                                        for problem in preflight.problems(env, name, checked[name])))
    hosts = {}
    live = {name for wave in decision.waves if wave.live for name in wave.hosts}  # checked, not restarted
    for name, host in fleet.hosts.items():
        current, done = snapshot.current(name), snapshot.steps_done(name, meta.name)
        venv = virtualenv_plan(env.requirements, new_requirements, env.pip_args, facts[name], current,
                               done="virtualenv" in done, unreadable=commits.error,
                               runs_app=env.topology.runs_app(name))
        built = predicted_build(host, meta.name, venv, services_done="services" in done)
        cached = wheel_ops.from_cache(venv.key, host.state.python_identity) \
            if venv.action == BUILT and env.wheels.build == "once" else None
        hosts[name] = dataclasses.replace(
            plan.hosts[name], virtualenv=venv,
            wheels=wheels_plan(venv, cached, host.state.stored_wheels) if env.wheels.build == "once" else None,
            configs=config_changes(facts[name].current_configs, rendered_configs(host), current),
            programs=None if name in live else program_moves(host, snapshot, decision.hosts[name].goes_to, built),
        )
    return dataclasses.replace(plan, hosts=hosts, gates=tuple(gates.describe(g) for g in env.rollout.gates),
                               pause=decision.pause_after is not None)


def for_rollback(fleet, snapshot, decision):
    """The plan of `rollback`: the task's `decision` (fab.decide.decide_rollback, from
    `snapshot`, the fleet as the task read it), with the commits between the
    release it leaves (None: the hosts run different ones) and the target read
    beside it."""
    target_meta, leaving = decision.release, decision.previous
    facts = read_facts(fleet, with_python=False)
    leaving_found = snapshot.release(snapshot.names[0], leaving) if leaving else None
    leaving_commit = leaving_found.meta.commit if leaving_found and leaving_found.meta else None
    commits = Commits(target_meta.commit, leaving_commit, error="the live release has no metadata"
                      if leaving else "the hosts run different releases")
    if leaving_commit:
        try:
            with opened(fleet.env.app.repo, [leaving_commit, target_meta.commit]) as repo:
                commits = read_commits(repo, target_meta.commit, leaving_commit)
        except RepoUnreadable as error:
            commits = Commits(target_meta.commit, leaving_commit, error=f"cannot read the repository: {error}")
    plan = from_decision(decision, commit=target_meta.commit, ref=target_meta.branch, commits=commits,
                         warnings=(*decision.warnings, *lock_warnings(facts)))
    return dataclasses.replace(plan, hosts={
        name: dataclasses.replace(plan.hosts[name], programs=program_moves(
            host, snapshot, decision.hosts[name].goes_to)) for name, host in fleet.hosts.items()})


def for_cleanup(fleet, decision):
    """The plan of `clean_releases`: what it would delete on each host (the task's
    `decision`, fab.decide.decide_cleanup)."""
    facts = read_facts(fleet, with_python=False)
    return from_decision(decision, warnings=lock_warnings(facts))


def from_decision(decision, **read):
    """The Plan showing `decision` (a fab.decide.Decision): the release, each host's
    move, what a failure puts back and what cleanup deletes, the waves; `read`
    gives the fields a plan reads beside it (commit, ref, commits, warnings, ...)."""
    release = decision.release.name if decision.release and decision.task != decide.CLEANUP else None
    hosts = {name: HostPlan(
        current=host.current,
        goes_to=host.goes_to.release if host.goes_to else None,
        deletes=host.deletes,
        back_to=host.back_to.release if host.goes_to and host.back_to else None,
    ) for name, host in decision.hosts.items()}
    return Plan(decision.task, release=release, live_release=decision.previous, waves=decision.waves,
                hosts=hosts, **read)


def read_facts(fleet, with_python):
    """{host: HostFacts}, read in parallel, one read-only round trip each."""
    return fleet.each("plan", lambda host: plan_facts.read(
        host, with_python=with_python and fleet.env.topology.runs_app(host.name)), quiet=True)


def read_facts_and_checks(fleet):
    """({host: HostFacts}, {host: fab.operations.preflight.Read}): a deploy plan's facts
    and the preflight's (`check`), in one read-only round trip per host."""
    both = fleet.each("plan", lambda host: preflight_facts.read_after(host, plan_facts.command(host)), quiet=True)
    return ({name: plan_facts.parse(output) for name, (output, _) in both.items()},
            {name: read for name, (_, read) in both.items()})


def read_commits(repo, since, until):
    """Commits: what `until` has that `since` lacks, and how many of `since`'s it drops."""
    if since and not repo.has(f"{since}^{{commit}}"):
        return Commits(since, until, error=f"commit {since[:12]} is not in the repository any more")
    shown, total = repo.log(since, until, LOG_LIMIT)
    dropped = repo.count(until, since) if since else 0
    return Commits(since, until, total, tuple(shown), dropped)


def rendered_configs(host):
    """{file: text} of the host's service configs as the new release gets them, rendered
    for the live release's name (or, with none, any name), so the comparison with the
    live files leaves aside the release name and path every deploy changes."""
    release = host.state.current or "new"
    services_dir = posixpath.dirname(host.paths.release_services(release))
    return {posixpath.relpath(path, services_dir): text
            for path, text in supervisor.render_service_configs(host, release).items()}


def predicted_build(host, release_name, venv, services_done):
    """rollout.Built of what the build stage would make of `release_name` on `host`:
    stages.built_on (what the run decides reloads with), given the outcomes the
    plan predicts: the venv step skipped or giving `venv`'s key (a VirtualenvPlan;
    none when unknown or failing: its programs restart), the services step skipped
    (`services_done`) or rendering the release's configs here."""
    venv_step = Outcome("virtualenv", "skipped", "", 0.0) if venv.action == SKIPPED else \
        Outcome("virtualenv", "ok", "", 0.0, venv.key if venv.action in (REUSED, BUILT) else None)
    services_step = Outcome("services", "skipped" if services_done else "ok", "", 0.0)
    return stages.built_on(host, release_name, {"virtualenv": venv_step, "services": services_step})


# --- the decisions (pure) ------------------------------------------------------------


def program_moves(host, snapshot, target, built=None):
    """{program: RELOAD or RESTART} for `host`'s supervisor programs going live on
    `target` (a Target; None: the task swaps nothing there), or None when there
    is nothing to restart. Decided by the go-live's own function
    (rollout.in_place_reloads) from the fleet as read (`snapshot`) and what the
    build would make there (`built`: rollout.Built, None: nothing is built)."""
    topology = host.env.topology
    programs = sorted(topology.program_name(name) for name in topology.supervised_on(host.name))
    if target is None or not programs:
        return None
    moves = rollout.Moves(snapshot, {host.name: built} if built else {})
    reloads = rollout.in_place_reloads(host, moves, target)
    return {program: RELOAD if program in reloads else RESTART for program in programs}



def virtualenv_plan(files, new_contents, pip_args, facts, live_release, done=False, unreadable=None,
                    runs_app=True):
    """Whether the virtualenv step would reuse or build a venv on a host, and why.

    `files`: the environment's requirements files; `new_contents`: {file: bytes or
    None if the new commit lacks it}, None if the repository could not be read
    (`unreadable` says why); `facts`: the host's HostFacts; `live_release`: its
    current release (None: none); `done`: the step already ran (a resume skips it);
    `runs_app`: false if the host runs no app code (fab.topology.Topology.runs_app).
    """
    if not runs_app:
        return VirtualenvPlan(NONE, reason="no venv and no build commands: its services run no app code (app: false)")
    if done:
        return VirtualenvPlan(SKIPPED, reason="already done in this release (resume skips it)")
    if new_contents is None:
        return VirtualenvPlan(UNKNOWN, reason=unreadable or "the new commit's requirements are unknown")
    if facts.python_version is None:
        return VirtualenvPlan(UNKNOWN, reason=f"the host's python does not run: {facts.python_error}")
    missing = [f for f in files if new_contents.get(f) is None]
    if missing:
        return VirtualenvPlan(FAILS, reason=f"requirements file {missing[0]} is not in the release")
    key = virtualenv.venv_key([new_contents[f] for f in files], pip_args, facts.python_version)
    changed = tuple(f for f in files if facts.current_requirements.get(f) != new_contents[f]) if live_release else ()
    if key in facts.venvs:
        if key == facts.current_venv:
            why = "the live release's venv: requirements unchanged"
        else:
            why = f"venv {key} from an earlier release matches"
            if changed:
                why = f"{', '.join(changed)} changed, but {why}"
        return VirtualenvPlan(REUSED, key, why, changed)
    if live_release is None:
        why = "no release on this host yet, and no venv matches"
    elif changed:
        why = f"{', '.join(changed)} changed since the live release"
    elif facts.current_venv and facts.current_venv != virtualenv.venv_key(
            [facts.current_requirements[f] for f in files], pip_args, facts.python_version):
        why = "the requirements list, pip_args or the python version changed"
    else:
        why = f"no complete venv {key} on the host"
    return VirtualenvPlan(BUILT, key, why, changed)


def wheels_plan(venv, cached, stored):
    """What a host's store would receive for its venv (`venv`: its VirtualenvPlan):
    nothing where the venv is reused (or the step done), else the wheels of the
    controller's cache for the key (`cached`: [(Wheel, Artifact)], None if not
    cached: they are built once when the deploy runs) that it lacks (`stored`)."""
    if venv.action in (REUSED, SKIPPED, UNKNOWN, FAILS):
        return WheelsPlan(venv.action if venv.action != FAILS else UNKNOWN, venv.key)
    if cached is None:
        return WheelsPlan(TO_BUILD, venv.key)
    lacking = [artifact for wheel, artifact in cached if wheel not in stored]
    names = tuple(a.name for a in lacking) if len(lacking) <= WHEEL_NAMES_SHOWN else ()
    return WheelsPlan(RECEIVES, venv.key, len(lacking), sum(a.size for a in lacking), names)


def config_changes(live, new, live_release, limit=DIFF_LIMIT):
    """How each service config file would change: [ConfigChange], by file name.

    `live` and `new` map "<control>/<program>.conf" to text; with no live release,
    every new file is simply added.
    """
    changes = []
    for file in sorted(set(live) | set(new)):
        if file not in live:
            changes.append(ConfigChange(file, ADDED))
        elif file not in new:
            changes.append(ConfigChange(file, REMOVED))
        elif live[file] == new[file]:
            changes.append(ConfigChange(file, UNCHANGED))
        else:
            diff = list(difflib.unified_diff(
                live[file].splitlines(), new[file].splitlines(),
                f"{live_release}/{SERVICES}/{file}", f"new/{SERVICES}/{file}", lineterm="", n=1))
            shown, more = shorten(diff, limit)
            changes.append(ConfigChange(file, CHANGED, tuple(shown), more))
    return tuple(changes)


def lock_warnings(facts):
    return tuple(
        f"{lock.describe(found.lock_holder)} holds the lock now: what it does may change this plan"
        for found in facts.values() if found.lock_holder is not None)


def freeze_warnings(fleet, task):
    """What a freeze would do to `task`, from the lock host's state (read with the others)."""
    state = fleet.states.get(fleet.env.hosts[0])
    refusal = freezes.refusal(fleet.env.name, task, state.freeze if state else None, force=False)
    return (f"the {task} would be refused: {refusal}",) if refusal else ()


def shorten(lines, limit):
    """(the first `limit` lines, how many were left out)."""
    return list(lines[:limit]), max(0, len(lines) - limit)

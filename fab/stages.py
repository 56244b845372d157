"""The stages the tasks are made of, in the order they run:

    choose the release   a new one, the one preindex_views prepared, the one to resume,
                         the live one, or the one rollback goes to
    build                every host gets the release ready (one round trip per host)
    migrate              the environment's migration, before any host swaps
    go live              wave by wave: swap, restart or reload, health; put back on failure
    finish               mark the release good and clean up (or mark what rollback left)

`deploy` runs them all; `setup_release` and `preindex_views` choose and build;
`rollback` chooses and goes live; `hotfix_deploy` and `restart_services` restart in
place. Hooks run between stages, in the tasks, where a reader sees them.

A task reads the fleet once when it opens (a fab.snapshot.FleetSnapshot) and
decides once (fab.decide: which release, where each host goes, what a failure
puts back, what is marked and deleted once live); the stages carry out that
Decision, the very object `plan=yes` shows. What the build made is returned as
data (`build` returns {host: rollout.Built}: the reload-or-restart decision takes
it); what going live changed is one record, rollout.Moves, owned by the go-live
stage; nothing is written into the hosts' states.
"""
import contextlib
import dataclasses
import os

from fab import app_repo, decide, events, freezes, gates, hooks, notify
from fab import releases as rel
from fab import rollout, transfer, waves
from fab.errors import DeployError, Interrupted, Paused, StepFailed
from fab.events import stream
from fab.identity import controller_name, who_am_i
from fab.operations import build as build_ops
from fab.operations import cleanup, code, credentials, inline_transfer, release, shared, supervisor, virtualenv, wheels
from fab.operations import freeze as freeze_ops
from fab.settings.build import FETCH_HOSTS

# --- choose the release ---------------------------------------------------------


def choose_release(fleet, snapshot, commit, ref, doing="deploying", resume=False):
    """The release a deploy (or preindex_views) goes on with, said in one line: the
    unfinished one `resume` continues, the one preindex_views prepared for `commit`,
    or a new one (fab.decide.choose_release)."""
    chosen = decide.choose_release(snapshot, commit, ref, who_am_i(), rel.utcnow(), fleet.env.topology.service_ports(),
                                   resume)
    meta = chosen.meta
    if chosen.source == decide.RESUMED:
        stream.stage(f"resuming release {meta.name} at {meta.commit[:12]}")
    elif chosen.source == decide.PREPARED:
        stream.stage(f"{doing} {ref} at {commit[:12]}: release {meta.name}, prepared earlier by preindex_views")
    else:
        stream.stage(f"{doing} {ref} at {commit[:12]} as release {meta.name}")
    return meta


def announce(fleet, snapshot, task, meta, warnings=(), message=""):
    """Say which release this task works on (and which was live), and the decision's
    `warnings`; the hooks' context (with the task's `message`)."""
    stream.publish(events.ReleaseChosen(meta.name, meta.commit, meta.branch, previous=snapshot.agreed_current()))
    for line in warnings:
        stream.warning(line)
    return hook_context(fleet, snapshot, task, meta, message)


def hook_context(fleet, snapshot, task, meta, message=""):
    """What the environment's hooks (and its notifications: published) are told about
    this task, its release and its message."""
    context = hooks.HookContext(
        environment=fleet.env.name, task=task, performer=who_am_i(), hosts=tuple(fleet.names),
        release=meta.name, commit=meta.commit, ref=meta.branch,
        previous_release=snapshot.agreed_current() or "", message=message)
    stream.publish(events.TaskContext(dataclasses.asdict(context)))
    return context


# --- build ------------------------------------------------------------------------


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


def build(fleet, meta):
    """Every host gets the release ready to go live: code, secrets, shared files,
    virtualenv, build commands, service configs, predeploy commands, checks.
    Each step is done once per release (a resume skips what a host finished).

    Returns {host: rollout.Built}: the venv and service configs the release has there.
    """
    env = fleet.env
    # Made on the controller (or one builder host) before any host changes. A small
    # bundle to a host that receives nothing else rides in its first build batch
    # (inline_transfer); the rest is sent in one delivery: each host receives only
    # what its store lacks (its git bundle, its wheels).
    bundles = code.prepare(fleet, meta.commit, meta.name)
    describe_commit(fleet, meta.commit)
    prepared = wheels.prepare(fleet, meta)
    carried = {name: bundle for name, bundle in bundles.items()
               if not prepared.artifacts.get(name) and inline_transfer.carried(bundle)}

    def check(host):
        return build_ops.preswap_check(host, meta.name,
                                       [env.topology.program_name(s) for s in env.topology.supervised_on(host.name)])

    # One round trip per host for all of it; linked files (which may need uploading
    # first) and predeploy commands split it.
    receiving = set()  # hosts whose release is made before their delivery

    def first(host):  # the release (unless made already), the bundle it carries, its code
        made = [] if host.name in receiving else [release.create(host, meta)]
        bundle = carried.get(host.name)
        return [*made, *([inline_transfer.receive(host, bundle)] if bundle else []),
                code.checkout(host, meta.name, meta.commit, bundles.get(host.name))]

    def then(host):
        return [*app_steps(host, meta.name, prepared.installs.get(host.name)),
                supervisor.install_service_configs(host, meta.name),
                *([] if env.predeploy else [check(host)])]

    linked = env.linked_files or env.linked_dirs
    first_batch = first if linked else (lambda host: [*first(host), *then(host)])
    # The batch carrying a bundle is composed now, to see that its command is not too long.
    composed = {name: first_batch(fleet.hosts[name]) for name in carried}
    for name in [name for name, steps in composed.items() if not inline_transfer.fits(steps)]:
        del carried[name], composed[name]  # its bundle is delivered
    shipments = {name: [*([bundles[name]] if name in bundles and name not in carried else []),
                        *prepared.artifacts.get(name, [])]
                 for name in fleet.hosts}
    # Where something is delivered, the release first: a transfer cut short (a full disk,
    # a lost connection) is then a release `deploy:resume=yes` goes on with.
    receiving.update(name for name, artifacts in shipments.items() if artifacts)
    if receiving:
        fleet.each_steps(lambda host: [release.create(host, meta)], hosts=[fleet.hosts[n] for n in receiving])
        transfer.deliver(fleet, shipments, "transfer")
    if env.secrets:
        fleet.each("secrets", shared.upload_secrets)
    needing = [host for host in fleet.hosts.values() if credentials.needed_on(host)]
    if needing:  # for git and pip, never on their command lines
        fleet.each("credentials", credentials.upload, hosts=needing)
    outcomes = fleet.each_steps(lambda host: composed.pop(host.name, None) or first_batch(host))
    if linked:
        fleet.each("link", lambda host: host.run_steps([shared.link(host, meta.name)])[0].note)
        outcomes = fleet.each_steps(then)
    if env.predeploy:
        on_role(fleet, meta, "predeploy", env.predeploy, env.predeploy.commands)
        fleet.each_steps(lambda host: [check(host)])
    return {name: built_on(host, meta.name, outcomes[name]) for name, host in fleet.hosts.items()}


def app_steps(host, release_name, install=None):
    """The steps that make the release able to run the app's code: its virtualenv (from
    the store as `install` says, fab.operations.wheels) and build commands; none on a
    host that runs no app code (fab.topology.Topology.runs_app)."""
    if not host.env.topology.runs_app(host.name):
        return []
    return [virtualenv.ensure(host, release_name, install), build_ops.build_commands(host, release_name)]


def built_on(host, release_name, outcomes):
    """rollout.Built of the release on `host`, from its build steps' `outcomes` ({step:
    fab.steps.Outcome}): what a step skipped (done before, e.g. by preindex_views) was
    read with the host's state; configs the step wrote are those rendered here for it.
    A host that runs no app code has no venv (rollout.NO_VENV)."""
    state = host.state
    services = outcomes["services"]
    if services.outcome == "skipped":
        configs = state.configs.get(release_name, {})
    else:
        configs = supervisor.digests(supervisor.configs_by_program(host, release_name))
    if not host.env.topology.runs_app(host.name):
        venv = rollout.NO_VENV
    else:
        step = outcomes["virtualenv"]
        venv = state.venvs.get(release_name) if step.outcome == "skipped" else step.result
    return rollout.Built(release_name, venv, configs)


# --- migrate --------------------------------------------------------------------


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
    fleet.each(step, lambda host: build_ops.run_release_commands(host, meta.name, step, commands, setting.timeout),
               hosts=hosts)


# --- go live ----------------------------------------------------------------------


def go_live(fleet, snapshot, decision, built=None, context=None):
    """Every host goes where `decision` (a fab.decide.Decision) sends it, in its waves,
    and then finishes as it says (marks the release, cleans up: run `finish` to
    complete that; the last wave's hosts, and meanwhile those of the waves before
    it, finish in their go-live round trip). `built`: what the build stage returned.

    On a failure or an interrupt every host is put back where the decision says
    and the release is marked `fails_as` (or interrupted). Returns the rollout.Moves
    record of what changed (hosts that failed within the failure limit in `failed`).
    With the hooks' `context` the environment's gates are asked between waves.
    """
    for name, line in decision.host_warnings.items():
        stream.warning(line, host=name)
    stream.stage(f"waves: {waves.describe(decision.waves)}")

    def finish_steps(host, placed):
        return decide.finish_steps(decision, host.name, FinishSteps(host, (built or {}).get(host.name)), placed)

    env = fleet.env
    asked = (lambda: gates.first_failure(env, context)) if context is not None and env.rollout.gates else None
    try:
        moves = rollout.go_live(fleet, snapshot, list(decision.waves), decision.goal(), decision.put_back(), built,
                                finish_steps, gates=asked, pause_after=decision.pause_after)
    except DeployError as error:
        if decision.fails_as:
            mark(fleet, decision.release.with_status(status_after(error, decision.fails_as)), quietly=True)
        raise
    if moves.paused:
        mark(fleet, decision.release.with_status(rel.PAUSED))
    return moves


def paused(fleet, decision, moves):
    """Paused, the error a deploy stopped after its canary ends with: where the release
    is live, and what continues it or gives it up."""
    live = [name for wave in decision.waves for name in wave.hosts if name in moves.placed
            and name not in moves.failed]
    env = fleet.env.name
    return Paused(f"deploy paused after the {moves.paused}: release {decision.release.name} is live on "
                  f"{', '.join(live)} only; `fab {env} deploy:resume=yes` continues with the other waves, "
                  f"`fab {env} rollback` gives it up")


def fetch_for_hotfix(fleet, live, commit):
    """Bring `commit` into every host's git cache (a bundle from the controller, or
    each host fetching: app.fetch), refusing it where a hotfix of release `live`
    would write through a link into shared/. Changes no release. A small bundle
    rides in the host's fetch round trip (inline_transfer: a command of 60 KB at
    most, no length to check), a bigger one is delivered first."""
    bundles = code.prepare(fleet, commit)
    describe_commit(fleet, commit)
    carried = {name: bundle for name, bundle in bundles.items() if inline_transfer.carried(bundle)}
    transfer.deliver(fleet, {name: [bundle] for name, bundle in bundles.items() if name not in carried})
    needing = [host for host in fleet.hosts.values() if host.env.app.fetch == FETCH_HOSTS
               and credentials.needed_on(host)]
    if needing:  # for git, never on its command line
        fleet.each("credentials", credentials.upload, hosts=needing)
    fleet.each_steps(lambda host: [
        *([inline_transfer.receive(host, carried[host.name])] if host.name in carried else []),
        code.fetch_for_hotfix(host, live, commit, bundles.get(host.name))])


def describe_commit(fleet, commit):
    """Say the commit's time and subject where the controller holds it (after
    code.prepare, which fetches it into its cache): the history keeps them."""
    described = app_repo.describe_commit(fleet.env.app.repo, commit)
    if described is not None:
        stream.publish(events.CommitDescribed(commit, *described))


def hotfix(fleet, decision):
    """Put the new commit into the live release in place on every host (fetched
    already) and restart without dropping requests; on a failure put the old commit
    back and restart again (`decision`: fab.decide.decide_hotfix's)."""
    live, new_commit = decision.release.name, decision.release.commit
    old_commit = decision.put_back()[fleet.names[0]].commit
    try:
        notes = fleet.each("hotfix", lambda host: code.hotfix(host, live, old_commit, new_commit))
        if any(code.REQUIREMENTS_CHANGED in note for note in notes.values()):
            stream.warning(f"{new_commit[:12]} changes the requirements; a hotfix does not install them: "
                           f"`fab {fleet.env.name} deploy` does")
        rollout.restart(fleet, list(decision.waves), decision.goal(), "graceful")
    except DeployError as error:
        stream.stage(f"hotfix failed: putting {old_commit[:12]} back into {live}")
        fleet.each("unhotfix", lambda host: code.hotfix(host, live, new_commit, old_commit))
        rollout.restart(fleet, list(decision.waves), decision.put_back(), "graceful")
        raise DeployError(f"{error}; release {live} runs {old_commit[:12]} again") from None


def restart_everywhere(fleet, mode, target):
    """Restart every host's services in place, wave by wave, without dropping requests."""
    rollout.restart(fleet, rollout.waves_for(fleet), {name: target for name in fleet.names}, mode)


# --- finish -----------------------------------------------------------------------


def finish(fleet, moves):
    """Run the go-live's finish steps on the hosts that have not run them yet (one
    round trip each); raise what failed (StepFailed), there or in the go-live."""
    rollout.finish_the_others(fleet, moves)


class FinishSteps:
    """The steps a host finishes with, as fab.decide.finish_steps asks for them
    (`built`: the rollout.Built of the release the task built there, if it did)."""

    def __init__(self, host, built=None):
        self.host = host
        self.built = built

    def mark(self, meta):
        return release.write_meta(self.host, meta)

    def delete(self, names):
        return cleanup.delete_releases(self.host, names, self.built)


def clean_up(fleet, decision):
    """Delete what `decision` (fab.decide.decide_cleanup's) says, on every host in
    one round trip each."""
    fleet.each_steps(lambda host: [cleanup.delete_releases(host, list(decision.hosts[host.name].deletes))])


def mark(fleet, *metas, quietly=False):
    """Write each release's metadata (its new status) on every host, in one round trip."""
    try:
        fleet.each_steps(marked(*metas), quiet=quietly)
    except StepFailed as error:
        if not quietly:
            raise
        stream.warning(f"could not mark release {metas[0].name} {metas[0].status}: {error}")


def marked(*metas):
    """Steps for a host: write each release's metadata (its new status)."""
    return lambda host: [release.write_meta(host, meta) for meta in metas]


def status_after(error, otherwise=rel.FAILED):
    return rel.INTERRUPTED if isinstance(error, Interrupted) else otherwise


# --- the freeze (fab.freezes) -------------------------------------------------------


def freeze(fleet, host, reason):
    """Freeze the environment with `reason`, on its lock host `host` (one of `fleet`'s)."""
    record = freezes.record(reason, who_am_i(), controller_name(), os.getpid(), rel.utcnow())
    replaced = fleet.each("freeze", lambda one: freeze_ops.freeze(one, record), hosts=[host], quiet=True)[host.name]
    stream.publish(events.FreezeChanged(record, replaced))
    tell(fleet, "frozen", reason)
    name = fleet.env.name
    stream.stage(freezes.announcement(name, reason))
    if replaced is not None:
        stream.note(f"(this replaces the freeze of {freezes.describe(replaced)})")


def unfreeze(fleet, host):
    """Lift the environment's freeze on its lock host `host` (one of `fleet`'s)."""
    lifted = fleet.each("unfreeze", freeze_ops.lift, hosts=[host], quiet=True)[host.name]
    name = fleet.env.name
    if lifted is None:
        stream.stage(f"{name} was not frozen")
        return
    stream.publish(events.FreezeChanged(None, lifted))
    tell(fleet, "unfrozen", lifted.get("reason") or "")
    stream.stage(f"{name} is unfrozen (it was frozen by {freezes.describe(lifted)})")


def tell(fleet, event, message):
    """The environment's webhooks (fab.notify) hear that it was frozen or unfrozen, and why."""
    env = fleet.env
    if env.notify:
        task = "freeze" if event == "frozen" else "unfreeze"
        notify.send(env, event, hooks.HookContext(environment=env.name, task=task, performer=who_am_i(),
                                                  hosts=tuple(env.hosts), message=message))

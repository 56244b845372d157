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

The fleet is read once when it opens: the stages decide (which release, what a
failure puts back, what cleanup deletes, reload or restart) from that reading, the
task's FleetSnapshot. What the build made is returned as data (`build` returns
{host: rollout.Built}); what going live changed is one record, rollout.Moves,
owned by the go-live stage; nothing is written into the hosts' states.
"""
import contextlib

from fab import events, hooks
from fab import releases as rel
from fab import rollout, waves
from fab import host_values as values
from fab.errors import DeployError, Interrupted, StepFailed
from fab.events import stream
from fab.identity import who_am_i
from fab.operations import build as build_ops
from fab.operations import cleanup, code, credentials, release, shared, supervisor, virtualenv
from fab.operations.state import config_digest
from fab.snapshot import Target

# --- choose the release ---------------------------------------------------------


def new_release(fleet, snapshot, commit, branch, private=False, keep_days=0):
    """Metadata for a new release, named so it collides with nothing on any host."""
    now = rel.utcnow()
    return rel.ReleaseMeta(
        name=snapshot.new_release_name(now),
        commit=commit,
        branch=branch,
        deployed_by=who_am_i(),
        created_at=now.isoformat(),
        status=rel.PRIVATE if private else rel.BUILDING,
        keep_until=rel.keep_until(now, keep_days),
        private=private,
    ).with_ports(fleet.env.service_ports())


def prepared_or_new_release(fleet, snapshot, commit, ref, doing="deploying"):
    """The release preindex_views prepared for `commit` on every host, to go on
    with; otherwise metadata for a new one."""
    prepared = snapshot.prepared_for(commit)
    if prepared:
        stream.stage(f"{doing} {ref} at {commit[:12]}: release {prepared.name}, prepared earlier by preindex_views")
        return prepared
    meta = new_release(fleet, snapshot, commit, ref)
    stream.stage(f"{doing} {ref} at {commit[:12]} as release {meta.name}")
    return meta


def release_to_resume(snapshot):
    """The release every host would resume: the newest unfinished one newer than current."""
    meta = snapshot.release_to_resume()
    stream.stage(f"resuming release {meta.name} at {meta.commit[:12]}")
    return meta


def rollback_release(snapshot, wanted=None):
    """(metadata of the release rollback goes to, the release it leaves or None where
    the hosts run different ones and `wanted` was named)."""
    return snapshot.meta(snapshot.rollback_target(wanted)), snapshot.agreed_current()


def announce(fleet, snapshot, task, meta):
    """Say which release this task works on (and which was live); the hooks' context."""
    stream.publish(events.ReleaseChosen(meta.name, meta.commit, meta.branch, previous=snapshot.agreed_current()))
    return hook_context(fleet, snapshot, task, meta)


def hook_context(fleet, snapshot, task, meta):
    """What the environment's hooks are told about this task and its release."""
    return hooks.HookContext(
        environment=fleet.env.name, task=task, performer=who_am_i(), hosts=tuple(fleet.names),
        release=meta.name, commit=meta.commit, ref=meta.branch,
        previous_release=snapshot.agreed_current() or "")


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
    if env.secrets:
        fleet.each("secrets", shared.upload_secrets)
    if credentials.needed(env):  # for git and pip, never on their command lines
        fleet.each("credentials", credentials.upload)

    def check(host):
        return build_ops.preswap_check(host, meta.name,
                                       [env.program_name(s) for s in env.supervised_on(host.name)])

    # One round trip per host for all of it; linked files (which may need uploading
    # first) and predeploy commands split it.
    first = [lambda host: release.create(host, meta), lambda host: code.checkout(host, meta.name, meta.commit)]
    if env.linked_files or env.linked_dirs:
        fleet.each_steps(lambda host: [step(host) for step in first])
        fleet.each("link", lambda host: host.run_steps([shared.link(host, meta.name)])[0].note)
        first = []
    notes = fleet.each_steps(lambda host: [
        *(step(host) for step in first),
        virtualenv.ensure(host, meta.name),
        build_ops.build_commands(host, meta.name),
        supervisor.install_service_configs(host, meta.name),
        *([] if env.predeploy else [check(host)]),
    ])
    if env.predeploy:
        on_role(fleet, meta, "predeploy", env.predeploy, env.predeploy.commands)
        fleet.each_steps(lambda host: [check(host)])
    return {name: built_on(host, meta.name, notes[name]) for name, host in fleet.hosts.items()}


def built_on(host, release_name, notes):
    """rollout.Built of the release on `host`, from its build steps' `notes` ({step:
    note}): what a step skipped (done before, e.g. by preindex_views) was read with
    the host's state; configs the step wrote are those rendered here for it."""
    state = host.state
    if skipped(notes["virtualenv"]):
        venv = state.venvs.get(release_name)
    else:
        venv = venv_key_in(notes["virtualenv"])
    if skipped(notes["services"]):
        configs = state.configs.get(release_name, {})
    else:
        configs = {program: config_digest(text)
                   for program, text in supervisor.configs_by_program(host, release_name).items()}
    return rollout.Built(release_name, venv, configs)


def skipped(note):
    return note.startswith("skipped")


def venv_key_in(note):
    """The venv key the virtualenv step reported (None: not said). It reports
    "reused venv <key>" or "built venv <key> with <builder>" today; "reused <key>"
    and "built <key> <builder>" are read too."""
    words = note.split()
    if len(words) < 2 or words[0] not in ("reused", "built"):
        return None
    key = words[2] if words[1] == "venv" and len(words) > 2 else words[1]
    try:
        return values.hex_digest(key, "venv key")
    except values.Unreadable:
        return None


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


def go_live(fleet, snapshot, meta, finish, built=None, on_failure=rel.FAILED):
    """Every host goes to `meta`'s release, wave by wave; each host then runs the
    finish steps `finish(host, placed)` (run `finish` to complete them: the last
    wave's hosts, and meanwhile those of the waves before it, run them in their
    go-live round trip). `built`: what the build stage returned.

    On a failure or an interrupt every host is put back on what it ran and the
    release is marked `on_failure` (or interrupted). Returns the rollout.Moves
    record of what changed (hosts that failed within the failure limit in `failed`).
    """
    goal = {name: Target.of(meta) for name in fleet.names}
    for name, line in snapshot.put_back_warnings().items():
        stream.warning(line, host=name)
    wave_list = rollout.waves_for(fleet)
    stream.stage(f"waves: {waves.describe(wave_list)}")
    try:
        return rollout.go_live(fleet, snapshot, wave_list, goal, snapshot.put_back_targets(), built, finish)
    except DeployError as error:
        if on_failure:
            mark(fleet, meta.with_status(status_after(error, on_failure)), quietly=True)
        raise


def hotfix(fleet, meta, new_commit):
    """Put `new_commit` into the live release `meta` in place on every host (fetched
    already) and restart without dropping requests; on a failure put its commit back
    and restart again."""
    live = meta.name
    try:
        notes = fleet.each("hotfix", lambda host: code.hotfix(host, live, meta.commit, new_commit))
        if any(code.REQUIREMENTS_CHANGED in note for note in notes.values()):
            stream.warning(f"{new_commit[:12]} changes the requirements; a hotfix does not install them: "
                           f"`fab {fleet.env.name} deploy` does")
        restart_everywhere(fleet, "graceful", Target(live, new_commit, meta.ports))
    except DeployError as error:
        stream.stage(f"hotfix failed: putting {meta.commit[:12]} back into {live}")
        fleet.each("unhotfix", lambda host: code.hotfix(host, live, new_commit, meta.commit))
        restart_everywhere(fleet, "graceful", Target.of(meta))
        raise DeployError(f"{error}; release {live} runs {meta.commit[:12]} again") from None


def restart_everywhere(fleet, mode, target):
    """Restart every host's services in place, wave by wave, without dropping requests."""
    rollout.restart(fleet, rollout.waves_for(fleet), {name: target for name in fleet.names}, mode)


# --- finish -----------------------------------------------------------------------


def finish(fleet, moves):
    """Run the go-live's finish steps on the hosts that have not run them yet (one
    round trip each); raise what failed (StepFailed), there or in the go-live."""
    rollout.finish_the_others(fleet, moves)


def good_and_clean(snapshot, meta):
    """Finish steps for a host that runs `meta`'s release now: mark it good and delete
    old releases, decided per host (FleetSnapshot.cleanup_deletes after going live,
    where the host runs what this task placed there) before anything is deleted."""
    good = meta.with_status(rel.GOOD)
    now = rel.utcnow()

    def steps(host, placed):
        doomed = snapshot.cleanup_deletes(host.name, now, after_going_live=meta, running=placed)
        return [release.write_meta(host, good), cleanup.delete_releases(host, doomed)]

    return steps


def rolled_back_from(left, target_meta):
    """Finish steps for a host going to `target_meta`'s release: mark it good, and the
    release it leaves (`left`, from `newer_than`) rolled_back."""
    good = target_meta.with_status(rel.GOOD)

    def steps(host, placed):
        found = left.get(host.name)
        return marked(good, *([found.meta.with_status(rel.ROLLED_BACK)] if found else []))(host)

    return steps


def clean_up(fleet, snapshot):
    """Delete old and failed releases, decided per host from the state read when
    the fleet opened (under the lock), before anything is deleted."""
    now = rel.utcnow()
    fleet.each_steps(lambda host: [cleanup.delete_releases(host, snapshot.cleanup_deletes(host.name, now))])


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

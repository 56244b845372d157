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

What the build made is returned as data (`build` returns {host: rollout.Built});
what going live changed is one record, rollout.Moves, owned by the go-live stage;
nothing is written into the hosts' states. The decisions the stages take (which
release, what a failure puts back, what cleanup deletes) are the pure functions of
fab.releases, over the states read once when the fleet opened.
"""
import contextlib

from fab import events, hooks
from fab import releases as rel
from fab import rollout, waves
from fab import host_values as values
from fab.errors import DeployError, Interrupted, PreflightError, StepFailed
from fab.events import stream
from fab.identity import who_am_i
from fab.operations import build as build_ops
from fab.operations import cleanup, code, credentials, release, shared, supervisor, virtualenv
from fab.operations.state import config_digest

# --- choose the release ---------------------------------------------------------


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
    ).with_ports(fleet.env.service_ports())


def prepared_or_new_release(fleet, commit, ref, doing="deploying"):
    """The release preindex_views prepared for `commit` on every host, to go on
    with; otherwise metadata for a new one."""
    states = fleet.states
    prepared = rel.prepared_release(rel.releases_by_host(states), currents(fleet), commit)
    if prepared:
        stream.stage(f"{doing} {ref} at {commit[:12]}: release {prepared}, prepared earlier by preindex_views")
        return next(iter(states.values())).release(prepared).meta.with_status(rel.BUILDING)
    meta = new_release(fleet, commit, ref)
    stream.stage(f"{doing} {ref} at {commit[:12]} as release {meta.name}")
    return meta


def release_to_resume(fleet):
    """The release every host would resume: the newest unfinished one newer than current."""
    states = fleet.states
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
    stream.stage(f"resuming release {name} at {candidates[name].commit[:12]}")
    return candidates[name].with_status(rel.BUILDING)


def live_release(fleet):
    """The release current on every host, and its metadata."""
    states = fleet.states
    live = rel.agreed_current(currents(fleet))
    missing = sorted(name for name, s in states.items() if not (s.release(live) and s.release(live).meta))
    if missing:
        raise PreflightError(f"current release {live} has no readable metadata on {', '.join(missing)}")
    return live, states[fleet.names[0]].release(live).meta


def rollback_release(fleet, wanted=None):
    """(metadata of the release rollback goes to, the release it leaves or None where
    the hosts run different ones and `wanted` was named)."""
    states = fleet.states
    target = rel.rollback_target(rel.releases_by_host(states), currents(fleet), wanted)
    return states[fleet.env.hosts[0]].release(target).meta, rel.agreed_or_none(states)


def announce(fleet, task, meta):
    """Say which release this task works on (and which was live); the hooks' context."""
    previous = rel.agreed_or_none(fleet.states)
    stream.publish(events.ReleaseChosen(meta.name, meta.commit, meta.branch, previous=previous))
    return hook_context(fleet, task, meta)


def hook_context(fleet, task, meta):
    """What the environment's hooks are told about this task and its release."""
    return hooks.HookContext(
        environment=fleet.env.name, task=task, performer=who_am_i(), hosts=tuple(fleet.names),
        release=meta.name, commit=meta.commit, ref=meta.branch,
        previous_release=rel.agreed_or_none(fleet.states) or "")


def fleet_rollback_target(fleet, current):
    """The release `rollback` would take the fleet to from `current` (None if none):
    every host's cleanup keeps it, whatever the host's own rollback target is."""
    return rel.fleet_rollback_target(rel.releases_by_host(fleet.states), current)


def currents(fleet):
    """{host: its current release} as read when the fleet opened."""
    return {name: s.current for name, s in fleet.states.items()}


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
    return rollout.Built(venv, configs)


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


def go_live(fleet, meta, finish, built=None, on_failure=rel.FAILED):
    """Every host goes to `meta`'s release, wave by wave; each host then runs the
    finish steps `finish(host, placed)` (run `finish` to complete them: the last
    wave's hosts, and meanwhile those of the waves before it, run them in their
    go-live round trip). `built`: what the build stage returned.

    On a failure or an interrupt every host is put back on what it ran and the
    release is marked `on_failure` (or interrupted). Returns the rollout.Moves
    record of what changed (hosts that failed within the failure limit in `failed`).
    """
    goal = {name: rollout.Target.of(meta) for name in fleet.names}
    previous = put_back_targets(fleet)
    wave_list = rollout.waves_for(fleet)
    stream.stage(f"waves: {waves.describe(wave_list)}")
    try:
        return rollout.go_live(fleet, wave_list, goal, previous, builds_known(fleet, meta.name, built), finish)
    except DeployError as error:
        if on_failure:
            mark(fleet, meta.with_status(status_after(error, on_failure)), quietly=True)
        raise


def put_back_targets(fleet):
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


def builds_known(fleet, release_name=None, built=None):
    """{host: {release: rollout.Built}}: each release's build as read when the fleet
    opened, and `release_name`'s as the build stage returned it (`built`)."""
    known = {}
    for name, state in fleet.states.items():
        known[name] = {r: rollout.Built(state.venvs.get(r), state.configs.get(r, {})) for r in state.releases}
        if built and name in built:
            known[name][release_name] = built[name]
    return known


def restart_everywhere(fleet, mode, target):
    """Restart every host's services in place, wave by wave, without dropping requests."""
    rollout.restart(fleet, rollout.waves_for(fleet), {name: target for name in fleet.names}, mode)


# --- finish -----------------------------------------------------------------------


def finish(fleet, moves):
    """Run the go-live's finish steps on the hosts that have not run them yet (one
    round trip each); raise what failed (StepFailed), there or in the go-live."""
    rollout.finish_the_others(fleet, moves)


def good_and_clean(fleet, meta):
    """Finish steps for a host that runs `meta`'s release now: mark it good and delete
    old releases, decided per host (`deletes_after_going_live`) before anything is
    deleted."""
    good = meta.with_status(rel.GOOD)
    now = rel.utcnow()
    fleet_target = fleet_rollback_target(fleet, good.name)

    def steps(host, placed):
        doomed = deletes_after_going_live(host.state, good, placed, host.env.keep_releases, now, fleet_target)
        return [release.write_meta(host, good), cleanup.delete_releases(host, doomed)]

    return steps


def deletes_after_going_live(state, good, placed, keep, now, fleet_target=None):
    """What cleanup deletes on a host (`state`: as read when the fleet opened) once
    `good`'s release went live: its current is then `placed` (what this task put
    there, e.g. its previous release if it was put back) if that is a release it
    has, else the good one."""
    releases = {**state.releases, good.name: rel.HostRelease(good.name, good)}
    current = placed if placed in releases else good.name
    return rel.cleanup_deletes(list(releases.values()), current, keep, now, fleet_target)


def newer_than(fleet, target):
    """{host: HostRelease} of each host's current release that is newer than `target`
    (with metadata): what a rollback to `target` leaves and marks rolled_back. Rolling
    forward leaves the older release good, so a later rollback can still go to it."""
    left = {name: state.release(state.current) for name, state in fleet.states.items() if state.current}
    return {name: found for name, found in left.items() if found and found.meta and found.name > target}


def rolled_back_from(left, target_meta):
    """Finish steps for a host going to `target_meta`'s release: mark it good, and the
    release it leaves (`left`, from `newer_than`) rolled_back."""
    good = target_meta.with_status(rel.GOOD)

    def steps(host, placed):
        found = left.get(host.name)
        return marked(good, *([found.meta.with_status(rel.ROLLED_BACK)] if found else []))(host)

    return steps


def clean_up(fleet):
    """Delete old and failed releases, decided per host from the state read when
    the fleet opened (under the lock), before anything is deleted."""
    now = rel.utcnow()
    fleet_target = fleet_rollback_target(fleet, rel.agreed_or_none(fleet.states))
    fleet.each_steps(lambda host: [cleanup.delete_releases(host, rel.cleanup_deletes(
        list(host.state.releases.values()), host.state.current, host.env.keep_releases, now, fleet_target))])


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

"""Putting a release live on a fleet, wave by wave, and putting it back.

Each wave is drained from the proxies that balance it, swapped, restarted and
health-checked together, then put back into rotation; the canary wave may also
be watched for a while. When the canary fails, or failures pass the failure
limit, every wave already live is put back on its previous release, newest
first. An interrupt (SIGINT/SIGTERM/SIGHUP, raised as `Interrupted`) and the
loss of the task's deploy lock (`LockLost`) are treated like a failure: the
deployer puts every host back, and a second interrupt stops it with a line
saying which host runs what. Which hosts go in which wave is `fab.waves`.
"""
import contextlib
import dataclasses
import time
import typing

from fab.gates import watch as gate_watch
from fab.waves import failure_budget, divide_into_waves
from fab import events
from fab.errors import DeployError, FleetInconsistent, Interrupted, LockLost, StepFailed
from fab.events import stream
from fab.operations import current, health, portservice, supervisor
from fab.operations import proxy as proxy_ops
from fab.rotation import Rotation
from fab.steps import reporting_step


#: Where a host's `current` points when its swap was cut short: either release.
CUT_SHORT = "unknown (its swap was cut short)"


class GateFailed(DeployError):
    """A gate (fab.gates) failed while a wave was watched: the rollout stops and
    every started wave goes back, as when the canary fails."""


#: Built.venv of a release that has no virtualenv: its host runs no app code.
NO_VENV = ""


@dataclasses.dataclass(frozen=True)
class Built:
    """What the build stage made on a host that decides whether programs may reload
    in place: `release`, its virtualenv's key (None: unknown; NO_VENV: none) and
    {program: config digest}."""

    release: str
    venv: typing.Optional[str] = None
    configs: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Moves:
    """What this task changed on the fleet while going live: one record, kept by the
    go-live stage alone (nothing is written into the hosts' states).

    It starts from `snapshot` (the FleetSnapshot read when the fleet opened), `built`
    ({host: Built}, what the build stage made) and `finish(host, placed)`, the steps
    a live host runs to finish (e.g. mark the release good). Then: `placed`, {host:
    the release its `current` points to now} for every host this task swapped
    ("nothing": removed, CUT_SHORT: unknown); `put_back`, the hosts it put back on
    their previous release; `failed`, {host: failure} of those that failed within
    the failure limit; `finished`, the hosts that ran the finish steps, and
    `finish_failed` ({host: (step, line)}) those where one failed (they stay live).
    The hosts of a `live` wave (a resumed deploy's canary) count in `placed` as
    swapped by this task: a failure puts them back with the others.
    """

    snapshot: typing.Any = None
    built: dict = dataclasses.field(default_factory=dict)
    finish: typing.Callable = None
    placed: dict = dataclasses.field(default_factory=dict)
    put_back: set = dataclasses.field(default_factory=set)
    failed: dict = dataclasses.field(default_factory=dict)
    finished: set = dataclasses.field(default_factory=set)
    finish_failed: dict = dataclasses.field(default_factory=dict)
    #: The wave after which the rollout stopped, paused (None: it went to the end).
    paused: typing.Optional[str] = None

    def running(self, name):
        """The release host `name` runs as far as this task knows: what it placed there
        if the host had that release when read, else what it ran then (None: unknown)."""
        if name not in self.placed:
            return self.snapshot.current(name)
        return self.placed[name] if self.snapshot.release(name, self.placed[name]) else None

    def finish_steps(self, host):
        """The finish steps of `host`, given the release this task placed there."""
        return self.finish(host, self.placed.get(host.name))

    def swap_step(self, host, target, lock=None):
        """Step: point `host`'s `current` at the target release (with none, remove
        `current`: undoing a first deploy), recorded here once the host says it is
        done. `lock`: the task's deploy lock (its swaps carry it)."""
        self.placed[host.name] = CUT_SHORT

        def placed(note):
            self.placed[host.name] = target.release or "nothing"
            stream.publish(events.ReleaseChanged(host.name, target.release))
            return note

        return current.swap_step(host, target.release, then=placed, lock=lock)


def waves_for(fleet, hosts=None):
    """The waves for `hosts` (default: every host of the fleet) from the environment's
    rollout settings."""
    env = fleet.env
    names = [h for h in env.hosts if h in (hosts or fleet.names)]
    settings, topology = env.rollout, env.topology
    return divide_into_waves(
        names, settings.canary, settings.batch,
        balanced=topology.balanced_hosts(names),
        last=topology.balancer_hosts(names),
        services=any(topology.services_on(h) for h in names),
    )


def go_live(fleet, snapshot, waves, goal, previous, built=None, finish=None, gates=None, pause_after=None):
    """Swap and restart `waves` in order so each host runs `goal[host]` (a Target).

    `snapshot`: the fleet as read when it opened; `built`: {host: Built} of what the
    build stage made (programs reload in place only where both releases are known
    alike: FleetSnapshot.reloads_in_place). `finish(host, placed)`: the steps a host
    runs once live (`placed`: the release this task put there). The last wave's
    hosts run them in their own go-live round trip and the hosts of the waves
    before it (all live by then) in one of theirs meanwhile, a round trip saved per
    host; `finish_the_others` runs them where they did not run. `gates`: a callable
    saying why the environment's gates fail now (None: they pass), asked while
    each wave but the last is watched (GateFailed: the rollout stops). After the
    wave named `pause_after` it stops, with `paused` set in the Moves it returns.
    A `live` wave (fab.waves.Wave: a paused deploy's canary, when it resumes) is
    only health-checked: no swap, no restart, no watch, no gates.

    Returns the task's Moves record; hosts that failed within the failure limit are
    in its `failed` (they are back on `previous[host]`). Otherwise, on the canary
    failing, on too many failures or on an interrupt, puts every started wave back
    on `previous` and raises: the error itself once the fleet is back,
    FleetInconsistent if it could not be.
    """
    env = fleet.env
    moves = Moves(snapshot, built or {}, finish)
    rotation = Rotation(fleet)
    budget = failure_budget(env.rollout.failure_limit, sum(len(w.hosts) for w in waves))
    started = []
    try:
        for wave in waves:
            if wave.live:  # they passed as the canary before the deploy paused
                stream.stage(f"{wave.name}: {', '.join(wave.hosts)} run the release already: checking their "
                             "health, restarting nothing")
                moves.placed.update({name: goal[name].release for name in wave.hosts})
            else:
                stream.stage(f"{wave.name}: {', '.join(wave.hosts)} going live")
            stream.publish(events.WaveStarted(wave.name, tuple((w.name, w.hosts) for w in waves)))
            started.append(wave)
            gated = gates if wave is not waves[-1] and not wave.live else None  # before the next wave
            watch = env.rollout.canary_watch if (wave.canary and not wave.live) or gated else 0
            finishing = finish is not None and wave is waves[-1] and not watch
            live = [h for w in started[:-1] for h in w.hosts if h not in moves.failed] if finishing else []
            try:
                failures = run_wave(fleet, rotation, moves, wave.hosts, goal, swap=not wave.live, mode="all",
                                    watch=watch, finishing=finishing, also=live, gates=gated, restart=not wave.live)
            except GateFailed as failed:
                raise GateFailed(f"{'the canary' if wave.canary else wave.name} failed: {failed}") from None
            moves.failed.update(failures)
            if failures and (wave.canary or len(moves.failed) > budget):
                why = "the canary failed" if wave.canary else (
                    f"{len(moves.failed)} host(s) failed, more than the failure limit of {budget}")
                raise DeployError(f"{why}: {describe_failures(failures)}")
            if failures:
                stream.warning(f"{len(moves.failed)} host(s) failed, within the failure limit of {budget}: "
                               "putting them back on their previous release")
                put_back(fleet, rotation, moves, [list(failures)], previous)
                stream.stage(f"{describe_failures(failures)} back on the previous release; going on")
            if wave.name == pause_after:
                moves.paused = wave.name
                break
    except DeployError as error:
        error = lock_lost_first(fleet, error)
        stopped = "interrupted" if isinstance(error, Interrupted) else "going live failed"
        stream.stage(f"{stopped}: putting every started wave back on its previous release")
        try:
            put_back(fleet, rotation, moves, [list(w.hosts) for w in reversed(started)], previous)
        except FleetInconsistent as inconsistent:  # say why the deploy stopped, too
            raise FleetInconsistent(f"{error}; {inconsistent}") from None
        back = "every host is back on its previous release"
        stream.stage(back)
        raise (type(error) if isinstance(error, Interrupted) else DeployError)(f"{error}; {back}") from None
    return moves


def lock_lost_first(fleet, error):
    """The reason a rollout stopped: if the task's lock was lost (a host refused a
    swap for it, say), that, as an interrupt (LockLost), naming who broke it."""
    lock = fleet.lock
    if lock is None or isinstance(error, LockLost) or not lock.notice():
        return error
    return LockLost(f"{lock.lost} ({error})")


def restart(fleet, waves, expected, mode):
    """Restart services in place (no swap) wave by wave; raise at the first failure.

    Hosts left drained by a failure go back into rotation if what runs there is
    healthy (one quick probe: the failed check already waited its timeout).
    """
    rotation = Rotation(fleet)
    try:
        for wave in waves:
            stream.stage(f"{wave.name}: restarting {', '.join(wave.hosts)}")
            stream.publish(events.WaveStarted(wave.name, tuple((w.name, w.hosts) for w in waves)))
            failures = run_wave(fleet, rotation, Moves(), wave.hosts, expected, swap=False, mode=mode)
            if failures:
                raise DeployError(f"restart failed: {describe_failures(failures)}")
    except DeployError:
        if rotation.drained:
            healthy, _ = fleet.attempt("recheck", lambda h: health.check(
                h, patience=2, ports=tuple(rotation.listening.get(h.name, {}).items())),
                                       hosts=checked(fleet, rotation.drained))
            rotation.set(rotation.drained - set(healthy))
        raise


def finish_the_others(fleet, moves):
    """Run the finish steps of `moves` on the fleet's hosts that have not run them in
    their go-live round trip, one round trip each; then raise what failed, there or
    here, as one StepFailed."""
    rest = [host for name, host in fleet.hosts.items()
            if name not in moves.finished and name not in moves.finish_failed]
    _, failed = fleet.attempt_steps(moves.finish_steps, rest)
    moves.finish_failed.update(failed)
    if moves.finish_failed:
        raise StepFailed("/".join(sorted({step for step, _ in moves.finish_failed.values()})),
                         {host: message for host, (_, message) in moves.finish_failed.items()})


def put_back(fleet, rotation, moves, host_groups, previous):
    """Put each group of hosts (in the order given) back on `previous`; those healthy
    again go back into rotation. A host that cannot be put back (unreachable, say)
    does not stop the others: every group is tried, then FleetInconsistent names
    what is left. A second interrupt stops this at once and says which host runs what."""
    failures = {}
    # A host this task never asked to swap runs its previous release: it only goes
    # back into rotation (an interrupt or a lost lock before its swap restarts nothing).
    untouched = {name for group in host_groups for name in group if name not in moves.placed}
    try:
        with fleet.lock.putting_back() if fleet.lock else contextlib.nullcontext():
            for group in host_groups:
                touched = [name for name in group if name not in untouched]
                if touched:
                    failed = run_wave(fleet, rotation, moves, touched, previous, swap=True, mode="all")
                    failures.update(failed)
                    moves.put_back.update(name for name in touched if name not in failed)
            rotation.set(rotation.drained - untouched)
            stream.publish(events.PutBack({name: previous[name].release for group in host_groups for name in group
                                           if name not in failures and name not in untouched}))
    except Interrupted:
        raise FleetInconsistent(
            f"interrupted again while putting hosts back; now: {where_is_what(fleet, moves)}; a host cut "
            f"mid-restart may have its services stopped or be out of rotation: `fab {fleet.env.name} "
            "deploy:resume=yes` (or rollback:release=NAME) brings every host level") from None
    if failures:
        drained = sorted(set(failures) & rotation.drained)
        left_out = f"; left out of the proxies' rotation: {', '.join(drained)}" if drained else ""
        raise FleetInconsistent(f"could not put back {describe_failures(failures)}{left_out}; "
                                f"the other hosts are back: check `fab {fleet.env.name} releases`")


def run_wave(fleet, rotation, moves, names, goal, swap, mode, watch=0, finishing=False, also=(), gates=None,
             restart=True):
    """Drain (where a restart needs it), swap (if `swap`), restart or reload (if
    `restart`) and health-check the hosts `names` together, each in one round trip (followed, with
    `finishing`, by the finish steps of `moves`, which the hosts `also` run alone
    meanwhile), then put the healthy ones back into rotation and, for `watch`
    seconds or with `gates`, watch them (watch_wave). Swaps are recorded in
    `moves`. Returns {host: failure}; hosts that failed stay drained."""
    env = fleet.env
    hosts = [fleet[name] for name in names]
    # A restart without a swap in mode "all" (push_secrets) restarts every program: a
    # process reads its environment when it starts, so none may merely reload.
    reloads = {h.name: in_place_reloads(h, moves, goal[h.name]) if mode == "all" and swap else set()
               for h in hosts}
    rotation.set(rotation.drained | {h.name for h in hosts if restart and needs_drain(env, h, mode, reloads[h.name])})

    def wave_steps(host):
        target = goal[host.name]
        steps = [moves.swap_step(host, target, fleet.lock)] if swap else []
        if restart and env.topology.services_on(host.name):
            steps.append(restart_step(rotation, host, mode, target, reloads[host.name]))
        if target.release and health.checks_for(host):
            steps.append(health.check_step(host, target.release, target.commit, ports=target.ports))
        return steps

    finish_steps = {}  # host: the names of its finish steps

    def steps(host):
        extra = moves.finish_steps(host) if finishing else []
        finish_steps[host.name] = {step.name for step in extra}
        return ([] if host.name in also else wave_steps(host)) + extra

    _, failed = fleet.attempt_steps(steps, hosts + [fleet[name] for name in also])
    failures = {host: message for host, (step, message) in failed.items() if step not in finish_steps[host]}
    if finishing:
        moves.finish_failed.update({host: outcome for host, outcome in failed.items() if host not in failures})
        moves.finished.update(name for name in [*names, *also] if name not in failed)
    serving = {h.name for h in hosts if h.name not in failures and goal[h.name].release}
    rotation.moved({h.name: goal[h.name] for h in hosts})
    rotation.set(rotation.drained - serving)
    if (watch or gates) and serving:  # in rotation: the gates measure the traffic it serves
        failures.update(watch_wave(fleet, [h for h in hosts if h.name in serving], goal, watch, gates))
        rotation.set(rotation.drained | set(failures))
    return failures


def watch_wave(fleet, hosts, goal, seconds, gates=None):
    """Keep health-checking `hosts` (about every second) and asking the `gates`
    (fab.gates.first_failure, bound; every rollout.gate_interval seconds) for
    `seconds`, at least once. Returns {host: failure} of the hosts whose checks
    failed (the watch stops there); raises GateFailed if a gate failed."""
    watched = [h for h in hosts if health.checks_for(h)]
    if not (watched or gates):
        return {}
    failures = {}
    interval = fleet.env.rollout.gate_interval if gates else 1.0
    asked = f" with its gates every {interval:g}s" if gates else ""
    stream.stage(f"watching {', '.join(h.name for h in hosts)} for {seconds:g}s{asked}")
    if not gates:  # the wave's own check has just passed: the first round waits
        time.sleep(min(interval, seconds))
        seconds -= min(interval, seconds)

    def round_():
        _, failed = fleet.attempt("watch", lambda h: health.check(
            h, goal[h.name].release, goal[h.name].commit, patience=2, ports=goal[h.name].ports), watched,
                                  quiet=True) if watched else ({}, {})
        failures.update(failed)
        return "a host failed" if failed else gates() if gates else None

    gate_failure = gate_watch(seconds, interval, round_)
    if gate_failure and not failures:
        raise GateFailed(gate_failure)
    return failures


def in_place_reloads(host, moves, target):
    """Programs on `host` that may reload in place (SIGHUP, no drain) to run `target`:
    FleetSnapshot.reloads_in_place, from the host as read and what the build made."""
    topology = host.env.topology
    reloadable = {topology.program_name(name): service for name, service in topology.supervised_on(host.name).items()
                  if service.restart == "reload"}
    venv_free = {program for program, service in reloadable.items() if not service.runs_app}
    built = moves.built.get(host.name)
    venvs, configs = ({built.release: built.venv}, {built.release: built.configs}) if built else ({}, {})
    return moves.snapshot.reloads_in_place(host.name, set(reloadable), moves.running(host.name), target.release,
                                           venvs, configs, venv_free)


def needs_drain(env, host, mode, reloads=()):
    """A host behind a proxy is drained unless every balanced program reloads in place."""
    balanced = env.topology.balanced_services(host.name)
    if not balanced:
        return False
    if mode == "all":
        return any(env.topology.program_name(name) not in reloads for name in balanced)
    return not supervisor.reloads_in_place(host, mode)


def checked(fleet, names):
    """The hosts among `names` that have health-checked services."""
    return [fleet[name] for name in names if health.checks_for(fleet[name])]


def restart_step(rotation, host, mode, target, reloads=()):
    """Step: apply and restart (or reload) the host's services: supervisor programs,
    then port services (proxies get their upstream list first)."""
    env = host.env
    parts = []
    if env.topology.supervised_on(host.name):
        parts.append(supervisor.restart(host, mode, expect_programs=bool(target.release), reloads=reloads))
    if env.topology.port_services_on(host.name) and target.release:
        for name, service in env.topology.port_services_on(host.name).items():
            if service.balances:
                parts.append(proxy_ops.upstream_script(
                    host, name, service, rotation.backends(service.balances), reload=False))
            parts.append(portservice.start_or_reload(host, name, service))
    return reporting_step("restart", parts, nothing="nothing to restart")


def describe_failures(failures):
    return ", ".join(f"{host} ({detail})" for host, detail in sorted(failures.items()))


def where_is_what(fleet, moves):
    """`host=release, ...` as far as the deployer last saw (unknown where a step was cut)."""
    return ", ".join(f"{name}={moves.placed.get(name) or host.state.current or 'nothing'}"
                     for name, host in fleet.hosts.items())

"""Putting a release live on a fleet, wave by wave, and putting it back.

Each wave is drained from the proxies that balance it, swapped, restarted and
health-checked together, then put back into rotation; the canary wave may also
be watched for a while. When the canary fails, or failures pass the failure
limit, every wave already live is put back on its previous release, newest
first. An interrupt (SIGINT/SIGTERM, raised as `Interrupted`) is treated like
a failure: the deployer puts every host back, and a second interrupt stops it
with a line saying which host runs what. The plan itself is `fab.waves`.
"""
import dataclasses
import time

from fab import waves as wave_plan
from fab.errors import DeployError, FleetInconsistent, Interrupted
from fab.events import stream
from fab.operations import current, health, portservice, supervisor
from fab.operations import proxy as proxy_ops


@dataclasses.dataclass(frozen=True)
class Target:
    """What one host should run: a release (None: no release at all) and its commit."""

    release: str
    commit: str = None


def plan(fleet, hosts=None):
    """The waves for `hosts` (default: every host of the fleet) from the environment's
    rollout settings."""
    env = fleet.env
    names = [h for h in env.hosts if h in (hosts or fleet.names)]
    settings = env.rollout
    return wave_plan.plan_waves(
        names, settings.canary, settings.batch,
        balanced=[h for h in names if balanced_services(env, h)],
        last=[h for h in names if any(s.balances for s in env.services_on(h).values())],
    )


def balanced_services(env, host):
    """Services on `host` that a proxy balances (they are drained to restart)."""
    balanced = {s.balances for s in env.services.values() if s.balances}
    return [name for name in env.supervised_on(host) if name in balanced]


def go_live(fleet, waves, goal, previous):
    """Swap and restart `waves` in order so each host runs `goal[host]` (a Target).

    Returns {host: failure} for hosts that failed within the failure limit (they
    are back on `previous[host]`). Otherwise, on the canary failing, on too many
    failures or on an interrupt, puts every started wave back on `previous` and
    raises: the error itself once the fleet is back, FleetInconsistent if it
    could not be.
    """
    env = fleet.env
    rotation = Rotation(fleet)
    budget = wave_plan.failure_budget(env.rollout.failure_limit, sum(len(w.hosts) for w in waves))
    started, failed = [], {}
    try:
        for wave in waves:
            stream.stage(f"{wave.name}: {', '.join(wave.hosts)} going live")
            started.append(wave)
            watch = env.rollout.canary_watch if wave.canary else 0
            failures = run_wave(fleet, rotation, wave.hosts, goal, swap=True, mode="all", watch=watch)
            failed.update(failures)
            if failures and (wave.canary or len(failed) > budget):
                why = "the canary failed" if wave.canary else (
                    f"{len(failed)} host(s) failed, more than the failure limit of {budget}")
                raise DeployError(f"{why}: {describe_failures(failures)}")
            if failures:
                stream.warning(f"{len(failed)} host(s) failed, within the failure limit of {budget}: "
                               "putting them back on their previous release")
                put_back(fleet, rotation, [list(failures)], previous)
                stream.stage(f"{describe_failures(failures)} back on the previous release; going on")
    except DeployError as error:
        stopped = "interrupted" if isinstance(error, Interrupted) else "going live failed"
        stream.stage(f"{stopped}: putting every started wave back on its previous release")
        put_back(fleet, rotation, [list(w.hosts) for w in reversed(started)], previous)
        back = "every host is back on its previous release"
        stream.stage(back)
        raise (Interrupted if isinstance(error, Interrupted) else DeployError)(f"{error}; {back}") from None
    return failed


def restart(fleet, waves, expected, mode):
    """Restart services in place (no swap) wave by wave; raise at the first failure.

    Hosts left drained by a failure go back into rotation if what runs there is
    healthy (one quick probe: the failed check already waited its timeout).
    """
    rotation = Rotation(fleet)
    try:
        for wave in waves:
            stream.stage(f"{wave.name}: restarting {', '.join(wave.hosts)}")
            failures = run_wave(fleet, rotation, wave.hosts, expected, swap=False, mode=mode)
            if failures:
                raise DeployError(f"restart failed: {describe_failures(failures)}")
    except DeployError:
        if rotation.drained:
            healthy, _ = fleet.attempt("recheck", lambda h: health.check(h, patience=2),
                                       hosts=checked(fleet, rotation.drained))
            rotation.set(rotation.drained - set(healthy))
        raise


def put_back(fleet, rotation, host_groups, previous):
    """Put each group of hosts (in the order given) back on `previous`; those healthy
    again go back into rotation. A second interrupt stops this at once and says
    which host runs what."""
    try:
        for group in host_groups:
            failures = run_wave(fleet, rotation, group, previous, swap=True, mode="all")
            if failures:
                raise FleetInconsistent(
                    f"could not put back {describe_failures(failures)}: check `fab {fleet.env.name} releases`")
    except Interrupted:
        raise FleetInconsistent(
            f"interrupted again while putting hosts back; now: {where_is_what(fleet)}") from None


def run_wave(fleet, rotation, names, goal, swap, mode, watch=0):
    """Drain, swap (if `swap`), restart and health-check the hosts `names` together,
    then put the healthy ones back into rotation. Returns {host: failure}; hosts
    that failed stay drained."""
    env = fleet.env
    failures = {}

    def step(name, action, hosts, quiet=False):
        _, failed = fleet.attempt(name, action, hosts, quiet)
        failures.update(failed)
        return [h for h in hosts if h.name not in failed]

    def check(host, patience=None):
        return health.check(host, goal[host.name].release, goal[host.name].commit, patience=patience)

    hosts = [fleet[name] for name in names]
    rotation.set(rotation.drained | {h.name for h in hosts if needs_drain(env, h, mode)})
    if swap:
        hosts = step("swap", lambda h: swap_to(h, goal[h.name]), hosts)
    step("restart", lambda h: restart_host(fleet, h, mode, goal[h.name]),
         [h for h in hosts if env.services_on(h.name)])
    serving = [h for h in hosts if h.name not in failures and goal[h.name].release]
    watched = step("health", check, [h for h in serving if health.checks_for(h)])
    deadline = time.monotonic() + watch
    while watched and time.monotonic() < deadline:
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        watched = step("watch", lambda h: check(h, patience=2), watched, quiet=True)
    rotation.set(rotation.drained - {h.name for h in serving if h.name not in failures})
    return failures


def needs_drain(env, host, mode):
    """A host behind a proxy is drained unless its restart reloads in place."""
    if not balanced_services(env, host.name):
        return False
    return mode == "all" or not supervisor.reloads_in_place(host, mode)


def checked(fleet, names):
    """The hosts among `names` that have health-checked services."""
    return [fleet[name] for name in names if health.checks_for(fleet[name])]


def swap_to(host, target):
    """Point `current` at the target release; with none, remove `current` (undoing a
    first deploy)."""
    host.placed = "unknown (its swap was cut short)"
    if target.release:
        note = current.swap(host, target.release)
    else:
        current.remove(host)
        note = "current removed (it was the first deploy)"
    host.placed = target.release or "nothing"
    return note


def restart_host(fleet, host, mode, target):
    """Apply and restart the host's services: supervisor programs, then port services."""
    env = fleet.env
    notes = []
    if env.supervised_on(host.name):
        notes.append(supervisor.restart(host, mode, expect_programs=bool(target.release)))
    if env.port_services_on(host.name) and target.release:
        notes.append(start_port_services(fleet, host))
    return "; ".join(notes)


def start_port_services(fleet, host):
    """Start or reload every port-controlled service on the host (proxies included)."""
    notes = []
    for name, service in fleet.env.port_services_on(host.name).items():
        if service.balances:
            proxy_ops.write_upstream(host, name, service, backends_of(fleet, service.balances), reload=False)
        notes.append(portservice.start_or_reload(host, name, service))
    return "; ".join(notes)


def backends_of(fleet, service_name):
    """[(address, port)] of the hosts running `service_name` (all of them, connected or not)."""
    service = fleet.env.services[service_name]
    return [(fleet.address_of(name), service.port) for name in fleet.env.hosts_of(service.role)]


class Rotation:
    """Which hosts the proxies leave out; rewritten on the proxies only when it changes."""

    def __init__(self, fleet):
        self.fleet = fleet
        self.drained = set()

    def set(self, drained):
        drained = set(drained)
        if drained == self.drained:
            return
        env = self.fleet.env
        for proxy_name, proxy in env.services.items():
            proxies = self.fleet.of_role(proxy.role) if proxy.balances else []
            if not proxies:
                continue
            backends = backends_of(self.fleet, proxy.balances)
            addresses = {self.fleet.address_of(name) for name in drained}
            self.fleet.each("drain" if drained else "undrain",
                            lambda host: proxy_ops.write_upstream(host, proxy_name, proxy, backends, addresses),
                            hosts=proxies)
        self.drained = drained


def describe_failures(failures):
    return ", ".join(f"{host} ({detail})" for host, detail in sorted(failures.items()))


def where_is_what(fleet):
    """`host=release, ...` as far as the deployer last saw (unknown where a step was cut)."""
    parts = []
    for name, host in fleet.hosts.items():
        parts.append(f"{name}={host.placed or host.state.current or 'nothing'}")
    return ", ".join(parts)

"""Pure decisions about the rollout: which hosts go live in which wave, and how
many failures a rollout tolerates. Nothing here touches a host.

The shape follows scap3's server groups and failure_limit, Kamal's boot limit
and Ansible's serial / max_fail_percentage: a canary wave first, then waves of
a batch size; proxies last, once every host they balance runs the new release.
"""
import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Wave:
    """Hosts that go live together. A `canary` wave failing stops the rollout. A `live`
    wave's hosts run the release already (a paused deploy's canary): a resume only
    checks their health, restarting nothing."""

    name: str
    hosts: tuple
    canary: bool = False
    live: bool = False


def parse_size(value, total, minimum=0):
    """A host count given as a number or a percentage ("25%") of `total` hosts.

    Percentages round up for batch sizes (`minimum` 1) and down for limits, as
    Ansible's serial and max_fail_percentage do.
    """
    if isinstance(value, str) and value.endswith("%"):
        share = float(value[:-1]) * total / 100
        count = math.ceil(share) if minimum else math.floor(share)
    else:
        count = int(value)
    return max(minimum, count)


def divide_into_waves(hosts, canary, batch, balanced=(), last=(), services=True):
    """The waves of a rollout over `hosts` (in order), as a list of Wave.

    `canary`: host names, or how many hosts (the first ones, preferring hosts in
    `balanced`, which serve traffic and so prove the release). `batch`: hosts
    per later wave (number or percentage of all hosts). `balanced`: hosts behind
    a proxy; when there are several, no wave takes all of them, so some always
    serve. `last`: hosts that go live in a final wave of their own (proxies).
    Every host is in exactly one wave. Without `services` (no host restarts or
    checks anything, so a canary would prove nothing) every host goes in one wave.
    """
    hosts = list(dict.fromkeys(hosts))
    if not services:
        return [Wave("all hosts", tuple(hosts))] if hosts else []
    final = [h for h in hosts if h in set(last)]
    remaining = [h for h in hosts if h not in set(last)]
    balanced = [h for h in remaining if h in set(balanced)]
    waves = []

    if isinstance(canary, (list, tuple)):
        chosen = [h for h in remaining if h in set(canary)]
    else:
        preferred = balanced + [h for h in remaining if h not in balanced]
        chosen = preferred[: max(0, int(canary))]
    if chosen:
        chosen = _keep_one_serving(chosen, balanced)
        waves.append(Wave("canary", tuple(chosen), canary=True))
        remaining = [h for h in remaining if h not in chosen]

    size = parse_size(batch, len(hosts), minimum=1)
    while remaining:
        wave = _keep_one_serving(remaining[:size], balanced)
        waves.append(Wave(f"wave {len(waves) + (0 if waves and waves[0].canary else 1)}", tuple(wave)))
        remaining = [h for h in remaining if h not in wave]
    if final:
        waves.append(Wave("proxies", tuple(final)))
    return waves


def continuing_after_pause(waves, live):
    """The waves a resumed deploy goes on in after its pause, given `live`: the hosts
    that run its release already (its canary, health-checked and watched, and gated,
    before it paused). They come first, in a `live` wave of their own (named for the
    wave they were, when they are all of it), then the other waves without them (one
    left empty dropped). With no host live, `waves` as they are."""
    live = [host for wave in waves for host in wave.hosts if host in set(live)]
    if not live:
        return list(waves)
    first = waves[0]
    name = f"{first.name} (live already)" if set(first.hosts) == set(live) else "live already"
    rest = [dataclasses.replace(wave, hosts=tuple(h for h in wave.hosts if h not in live)) for wave in waves]
    return [Wave(name, tuple(live), canary=True, live=True), *(wave for wave in rest if wave.hosts)]


def _keep_one_serving(wave, balanced):
    """`wave` less its last balanced host if it would take every balanced host."""
    if len(balanced) > 1 and set(balanced) <= set(wave):
        dropped = [h for h in wave if h in balanced][-1]
        return [h for h in wave if h != dropped]
    return wave


def failure_budget(limit, total):
    """How many hosts may fail while the rollout goes on (a number or a percentage)."""
    return parse_size(limit, total)


def describe(waves):
    """One line: `canary: web1 | wave 1: web2, pillow1 | proxies: proxy1`."""
    return " | ".join(f"{wave.name}: {', '.join(wave.hosts)}" for wave in waves)

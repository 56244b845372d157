"""Pure decisions about releases: naming, metadata, what cleanup deletes.

Nothing here touches a host; every function is unit-tested without SSH.
"""
import dataclasses
import datetime as dt
import functools
import json

from fab import host_values as values
from fab.errors import PreflightError, UsageError

RELEASE_NAME_FORMAT = "%Y-%m-%d_%H.%M.%S"

BUILDING = "building"
GOOD = "good"
FAILED = "failed"
ROLLED_BACK = "rolled_back"
PRIVATE = "private"
INTERRUPTED = "interrupted"
#: Built by preindex_views (its slow pre-deploy commands done) and waiting for
#: the deploy of its commit, which goes on with it instead of building anew.
PREPARED = "prepared"
#: Live on the canary only: the deploy stopped there (rollout.pause) until
#: `deploy:resume=yes` continues it or `rollback` gives it up.
PAUSED = "paused"
STATUSES = (BUILDING, GOOD, FAILED, ROLLED_BACK, PRIVATE, INTERRUPTED, PREPARED, PAUSED)
#: What a release whose metadata fails the strict reader is shown as. Never written:
#: such a release is never a rollback, resume or preindex target, never counts as
#: good, and cleanup leaves it (saying so): the host's word on it is not data.
UNREADABLE = "unreadable"
#: The most characters of metadata read from a host (a real one is under 2 KB).
META_LIMIT = 64 * 1024
#: Statuses of a release that did not finish: a resume may complete it.
UNFINISHED = (BUILDING, FAILED, INTERRUPTED, PREPARED, PAUSED)


def utcnow():
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def new_release_name(now, existing=()):
    """The UTC timestamp name for a release started at `now`.

    Two releases started within one second (a deploy right after a setup_release)
    would collide; the later one gets a `-N` suffix, which still sorts after the
    plain name and before the next second's.
    """
    base = now.astimezone(dt.timezone.utc).strftime(RELEASE_NAME_FORMAT)
    taken = set(existing)
    name, counter = base, 1
    while name in taken:
        name = f"{base}-{counter}"
        counter += 1
    return name


def validate_release_name(name):
    """Return `name` if it is a release name; a user-supplied path never gets through."""
    if not isinstance(name, str) or not values.RELEASE_NAME.fullmatch(name):
        raise UsageError(
            f"invalid release name {name!r}: expected YYYY-MM-DD_HH.MM.SS "
            "(see `fab <env> releases`)"
        )
    return name


#: A private release kept longer than this many days is a typo (and past year 9999 an error).
MAX_KEEP_DAYS = 36500


def parse_keep_days(value):
    """`keep_days` from the command line: a whole number of days, 0 to MAX_KEEP_DAYS."""
    from fab.cli import whole_number

    if not whole_number(value, MAX_KEEP_DAYS):
        raise UsageError(f"keep_days must be a whole number of days (0 to {MAX_KEEP_DAYS}), got {value!r}")
    return int(str(value).strip())


@dataclasses.dataclass(frozen=True)
class ReleaseMeta:
    """What a release is; identical on every host of a deploy, stored beside its code."""

    name: str
    commit: str
    branch: str  # the branch, tag or commit the deploy was asked for
    deployed_by: str
    created_at: str
    status: str = BUILDING
    keep_until: str = None
    hotfixes: tuple = ()
    #: Made by setup_release: never resumed into a deploy.
    private: bool = False
    #: ((service, port), ...): the ports its service configs were rendered with, so a
    #: proxy sends each host's traffic where that host listens while a port changes.
    ports: tuple = ()

    def hotfixed(self, new_commit, who, when):
        """This release after its code was replaced in place by `new_commit`."""
        entry = f"{when.isoformat()} {who}: {self.commit} -> {new_commit}"
        return dataclasses.replace(self, commit=new_commit, hotfixes=self.hotfixes + (entry,))

    def with_status(self, status):
        if status not in STATUSES:
            raise ValueError(f"unknown release status {status!r}")
        return dataclasses.replace(self, status=status)

    @functools.lru_cache(maxsize=16)  # the same text for every host of a fleet
    def to_json(self):
        data = dataclasses.asdict(self)
        data["hotfixes"] = list(self.hotfixes)
        data["ports"] = [list(pair) for pair in self.ports]
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text, directory):
        """The metadata a host keeps in the release directory `directory`, read by the
        strict reader (fab.host_values): Unreadable saying why if any field fails, or
        if it names another release than its directory."""
        if len(text) > META_LIMIT:
            raise values.Unreadable(f"metadata longer than {META_LIMIT} characters")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise values.Unreadable("metadata is not JSON") from None
        if not isinstance(data, dict):
            raise values.Unreadable("metadata is not a JSON object")
        missing = [name for name in ("name", "commit", "branch", "deployed_by", "created_at") if name not in data]
        if missing:
            raise values.Unreadable(f"metadata has no {', '.join(missing)}")
        name = values.release_name(data["name"])
        if name != directory:
            raise values.Unreadable(f"metadata names release {name}, not its directory {directory}")
        keep = data.get("keep_until")
        ports = values.listed(data.get("ports") or [], "ports")
        if not all(isinstance(pair, list) and len(pair) == 2 for pair in ports):
            raise values.Unreadable("ports is not a list of [service, port] pairs")
        return cls(
            name=name,
            commit=values.commit(data["commit"]),
            branch=values.text(data["branch"], "branch"),
            deployed_by=values.text(data["deployed_by"], "deployed_by"),
            created_at=values.moment(data["created_at"], "created_at"),
            status=values.one_of(data.get("status", BUILDING), STATUSES, "status"),
            keep_until=None if keep is None else values.moment(keep, "keep_until"),
            hotfixes=tuple(values.text(line, "hotfix entry")
                           for line in values.listed(data.get("hotfixes") or [], "hotfixes")),
            private=values.flag(data.get("private", False), "private"),
            ports=tuple((values.word(service, "service"), values.port(port)) for service, port in ports),
        )

    def with_ports(self, ports):
        return dataclasses.replace(self, ports=tuple(sorted(ports.items())))

    def with_later_keep_until(self, other):
        """This record of the release with `other`'s keep_until where that one protects
        it longer (`other`: the metadata a host has for the release). A task's record of
        a release is read on one host, and a setup_release may have reached only some:
        a host never loses, through it, the protection its own metadata gives."""
        if not other.keep_until or (self.keep_until and dt.datetime.fromisoformat(self.keep_until)
                                    >= dt.datetime.fromisoformat(other.keep_until)):
            return self
        return dataclasses.replace(self, keep_until=other.keep_until)

    def protected_at(self, now):
        """True while keep_days protects this release from cleanup."""
        if not self.keep_until:
            return False
        return dt.datetime.fromisoformat(self.keep_until) > now


def keep_until(now, keep_days):
    """The moment a release made with `keep_days` stops being protected (None for 0)."""
    if not keep_days:
        return None
    return (now + dt.timedelta(days=keep_days)).isoformat()


@dataclasses.dataclass(frozen=True)
class HostRelease:
    """A release directory as found on one host; `meta` is None if it has none, or if
    its metadata failed the strict reader (`unreadable` then says why)."""

    name: str
    meta: ReleaseMeta = None
    unreadable: str = None

    @property
    def status(self):
        if self.unreadable:
            return UNREADABLE
        # A directory without metadata never finished its first step.
        return self.meta.status if self.meta else FAILED


def releases_to_delete(releases, current, keep, now, rollback_target=None):
    """Names of releases cleanup removes on one host, oldest first.

    Kept: `current`; `rollback_target`; any release protected by keep_days; the
    newest `keep` good releases (current counts as one); the release a resume
    would continue (`resumable_release`); a release whose metadata is unreadable
    (the task says it leaves it). Other unfinished, rolled-back and
    expired private releases never count toward `keep`, so a run of failed
    deploys cannot push the last good release out.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1")
    ordered = sorted(releases, key=lambda r: r.name)
    keep_names = {current, rollback_target}
    keep_names.update(r.name for r in ordered if r.status == UNREADABLE)  # left; said when read (state.parse)
    keep_names.update(r.name for r in ordered if r.meta and r.meta.protected_at(now))
    good = [r.name for r in ordered if r.status == GOOD or r.name == current]
    keep_names.update(good[-keep:])
    keep_names.add(resumable_release(ordered, current))
    return [r.name for r in ordered if r.name not in keep_names]


def cleanup_deletes(releases, current, keep, now, fleet_target=None):
    """What `clean_releases` (and a deploy's cleanup) deletes on one host: the
    releases `releases_to_delete` names, keeping the host's own rollback target
    and the fleet's (`fleet_rollback_target`; they differ on a host that a limited
    deploy gave a release the others never ran)."""
    doomed = releases_to_delete(releases, current, keep, now,
                                rollback_target=previous_good_release(releases, current))
    return [name for name in doomed if name != fleet_target]


def resumable_release(releases, current):
    """The release `deploy:resume` continues on one host: the newest unfinished,
    non-private release newer than `current` (None if there is none).

    Cleanup keeps exactly this one, so a release is never both unresumable and
    undeletable."""
    unfinished = [
        r.name for r in releases
        if r.meta and not r.meta.private and r.status in UNFINISHED
        and (current is None or r.name > current)
    ]
    return max(unfinished) if unfinished else None


def leveller(host_releases, currents):
    """What else brings hosts that disagree level: resuming the deploy, where one left an
    unfinished release to continue; otherwise (a limited `deploy:hosts=...` that
    succeeded) a resume has nothing to do and a full deploy is what works."""
    if any(resumable_release(found, currents.get(host)) for host, found in host_releases.items()):
        return "finish the deploy: deploy:resume=yes"
    return "deploy to every host: a full `deploy`"


def prepared_release(host_releases, currents, commit):
    """The release preindex_views prepared for `commit` that a deploy of that commit
    goes on with: the newest one that every host has as `prepared` at that commit,
    newer than the host's current release. None if there is none.

    `host_releases` maps host -> [HostRelease]; `currents` host -> current name.
    """
    candidates = None
    for host, found in host_releases.items():
        current = currents.get(host)
        names = {r.name for r in found
                 if r.status == PREPARED and r.meta.commit == commit and (current is None or r.name > current)}
        candidates = names if candidates is None else candidates & names
    return max(candidates) if candidates else None


def previous_good_release(releases, current):
    """The newest good release older than `current` (the rollback target), or None."""
    older_good = [
        r.name
        for r in releases
        if r.status == GOOD and (current is None or r.name < current)
    ]
    return max(older_good) if older_good else None


def fleet_rollback_target(host_releases, current):
    """The newest release older than `current` that is good on every host of
    `host_releases` (host -> [HostRelease]): where `rollback` takes the fleet. None
    if there is none."""
    common = None
    for found in host_releases.values():
        good = {r.name for r in found if r.status == GOOD and (current is None or r.name < current)}
        common = good if common is None else common & good
    return max(common) if common else None


def fallback_release(releases, current):
    """The release a host goes back to if a go-live fails: its current release if
    that one is complete, else (a deploy died after swapping it) its newest good one."""
    found = {r.name: r for r in releases}
    # An unreadable current release ran before the task: putting it back changes nothing.
    if current is None or (current in found and found[current].status in (*COMPLETE, UNREADABLE)):
        return current
    return previous_good_release(releases, None)


def disagreement(values_by_host):
    """None if every host reports the same value; else a line naming the hosts that
    differ from the rest: "web2 has X where web1, pillow1 have Y"."""
    groups = {}
    for host, value in sorted(values_by_host.items()):
        groups.setdefault(value, []).append(host)
    if len(groups) <= 1:
        return None
    usual = max(groups, key=lambda value: len(groups[value]))  # ties: the first host's

    def have(hosts, value):
        return f"{', '.join(hosts)} {'has' if len(hosts) == 1 else 'have'} {value or 'none'}"

    odd = [have(hosts, value) for value, hosts in groups.items() if value != usual]
    return f"{'; '.join(odd)} where {have(groups[usual], usual)}"


#: Statuses of a release that finished building and may go live again.
COMPLETE = (GOOD, ROLLED_BACK, PRIVATE)


def agreed_current(currents):
    """The release every host has as current; PreflightError saying what differs otherwise."""
    from fab.errors import PreflightError

    missing = sorted(host for host, name in currents.items() if not name)
    if missing:
        raise PreflightError(f"no current release on {', '.join(missing)}")
    drift = disagreement(currents)
    if drift:
        raise PreflightError(f"hosts disagree on the current release: {drift}")
    return next(iter(currents.values()))


def rollback_target(host_releases, currents, wanted=None):
    """The release rollback goes to, decided once from every host's state.

    `host_releases` maps host -> [HostRelease]; `currents` host -> current name.
    Without `wanted`: the newest release older than current (the same on every
    host) that is good on every host. With `wanted`: that release, complete on
    every host, whatever each host runs now.
    Raises PreflightError naming what differs per host.
    """
    if wanted:
        # A named release may bring hosts that disagree (a limited or killed deploy) level.
        if set(currents.values()) == {wanted}:
            raise PreflightError(f"{wanted} is already the current release")
        problems = []
        for host, found in sorted(host_releases.items()):
            statuses = {r.name: r.status for r in found}
            if wanted not in statuses:
                problems.append(f"{host}: missing")
            elif statuses[wanted] not in COMPLETE:
                problems.append(f"{host}: {statuses[wanted]}")
        if problems:
            raise PreflightError(f"cannot roll back to {wanted}: {'; '.join(problems)}")
        return wanted
    given_up = paused_current(host_releases, currents)
    if given_up:  # giving up a paused deploy: back to what the other hosts run
        others = {host: name for host, name in currents.items() if name != given_up}
        return rollback_target(host_releases, currents, agreed_current(others))
    try:
        current = agreed_current(currents)
    except PreflightError as error:
        raise PreflightError(f"{error}; to bring every host to one release, name it: rollback:release=NAME "
                             f"(or {leveller(host_releases, currents)})") from None
    target = fleet_rollback_target(host_releases, current)
    if target:
        return target
    targets = {host: previous_good_release(found, current) for host, found in host_releases.items()}
    missing = sorted(host for host, target in targets.items() if target is None)
    if missing:
        # A release there that the deployer cannot trust is never a target: say which.
        unreadable = sorted({r.name for host in missing for r in host_releases[host]
                             if r.status == UNREADABLE and r.name < current})
        because = f" ({', '.join(unreadable)} unreadable there: see `releases`)" if unreadable else ""
        raise PreflightError(
            f"no good release older than {current} on {', '.join(missing)}{because}: nothing to roll back to"
        )
    raise PreflightError(f"no release older than {current} is good on every host: {disagreement(targets)}")


def paused_current(host_releases, currents):
    """The release a paused deploy left live on some hosts (its canary), marked paused
    there, while the other hosts all run one older release; None otherwise."""
    statuses = {(host, r.name): r.status for host, found in host_releases.items() for r in found}
    paused = {name for host, name in currents.items() if name and statuses.get((host, name)) == PAUSED}
    others = {name for name in currents.values() if name not in paused}
    if len(paused) != 1 or len(others) != 1 or None in others or others.pop() > min(paused):
        return None
    return paused.pop()


def host_listing(releases, current, rollback_target=None, wheel_sets=None):
    """What one host has, as `fab <env> releases` shows it: plain data, oldest first.
    `wheel_sets`: {release: (digest, count)} of the wheel set each release's venv
    was installed from (fab.wheels.set_digest), where it records one.

    `releases` are the host's HostRelease; `rollback_target` is what `rollback`
    picks for the fleet (FleetSnapshot.would_roll_back_to: None where it refuses),
    never a host's own previous good release, so the listing and `rollback`
    never disagree.
    """
    listed = []
    for found in sorted(releases, key=lambda r: r.name):
        meta = found.meta
        listed.append({
            "name": found.name,
            "status": found.status,
            "commit": meta.commit if meta else None,
            "branch": meta.branch if meta else None,
            "deployed_by": meta.deployed_by if meta else None,
            "created_at": meta.created_at if meta else None,
            "keep_until": meta.keep_until if meta else None,
            "wheels": ({"set": wheel_sets[found.name][0], "count": wheel_sets[found.name][1]}
                       if found.name in (wheel_sets or {}) else None),
            **({"why": found.unreadable} if found.unreadable else {}),
        })
    return {
        "current": current,
        "rollback_target": rollback_target,
        "releases": listed,
    }

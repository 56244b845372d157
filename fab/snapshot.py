"""The fleet as read once: a frozen snapshot of every host's state, and the pure
answers the tasks ask of it.

A task opens the fleet, reads each host's state under the lock (one round trip
per host: fab.operations.state) and builds one `FleetSnapshot` from it:

    snapshot = FleetSnapshot.of(fleet.states, fleet.env.keep_releases)

Every question a task, a plan or a view asks about what the fleet has (each
host's current release, whether hosts agree, the rollback target, the release
to resume, what a failure puts back, what cleanup deletes, whether a program
reloads in place) is a method here, answered from that one reading, never from
a host's state as some step later rewrote it. The per-host decisions are
fab.releases's pure functions; this module asks them fleet-wide, so each
concept has one place.

Nothing here touches a host: every method is unit-tested without SSH
(tests/test_snapshot.py).
"""
import dataclasses
import types
import typing

from fab import releases as rel
from fab.errors import PreflightError


@dataclasses.dataclass(frozen=True)
class Target:
    """What one host should run: a release (None: no release at all), its commit and
    the ports its services listen on there (ReleaseMeta.ports; () if not recorded)."""

    release: typing.Optional[str]
    commit: typing.Optional[str] = None
    ports: tuple = ()

    @classmethod
    def of(cls, meta, ports=None):
        """The target of running `meta`'s release (with `ports`, a dict, if its configs
        were rendered again with other ports than it records)."""
        return cls(meta.name, meta.commit, tuple(sorted(ports.items())) if ports is not None else meta.ports)


@dataclasses.dataclass(frozen=True)
class HostView:
    """One host's state as read when the task opened the fleet (a copy of its
    fab.operations.state.HostState that nothing changes afterwards)."""

    current: typing.Optional[str]
    releases: types.MappingProxyType  # name -> HostRelease
    steps: types.MappingProxyType  # release name -> frozenset of steps done there
    venvs: types.MappingProxyType  # release name -> key of the venv it links to
    configs: types.MappingProxyType  # release name -> {program: rendered config digest}
    #: release name -> (digest, count) of the wheel set its venv was installed from
    wheel_sets: types.MappingProxyType = dataclasses.field(default_factory=lambda: types.MappingProxyType({}))
    maintenance: frozenset = frozenset()  # its proxy programs in maintenance

    @classmethod
    def of(cls, state):
        return cls(
            maintenance=frozenset(state.maintenance),
            current=state.current,
            releases=types.MappingProxyType(dict(state.releases)),
            steps=types.MappingProxyType({name: frozenset(done) for name, done in state.steps.items()}),
            venvs=types.MappingProxyType(dict(state.venvs)),
            configs=types.MappingProxyType({name: types.MappingProxyType(dict(found))
                                            for name, found in state.configs.items()}),
            wheel_sets=types.MappingProxyType(dict(getattr(state, "wheel_sets", {}))),
        )

    def release(self, name):
        """The HostRelease `name` on this host, None if it has none by that name."""
        return self.releases.get(name) if name else None


@dataclasses.dataclass(frozen=True)
class FleetSnapshot:
    """Every host's state as read once (host name -> HostView, in fleet order), and
    the environment's `keep_releases` (what cleanup keeps; None where no question
    about cleanup is asked)."""

    hosts: types.MappingProxyType
    keep_releases: typing.Optional[int] = None
    #: Fleet-wide answers already worked out ({question: answer}): each is asked once
    #: per host (cleanup, the listing), and at 200 hosts working it out again each
    #: time would cost seconds. The snapshot never changes, so neither do they.
    _answers: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def of(cls, states, keep_releases=None):
        """The snapshot of {host: HostState} (as `fleet.states` gives them after the
        fleet opened under the lock); later changes to those states do not reach it."""
        return cls(types.MappingProxyType({name: HostView.of(state) for name, state in states.items()}),
                   keep_releases)

    @classmethod
    def of_fleet(cls, fleet):
        """The snapshot of an open fleet's hosts, with its environment's keep_releases."""
        return cls.of(fleet.states, fleet.env.keep_releases)

    # --- what each host has ------------------------------------------------------

    @property
    def names(self):
        """The hosts, in fleet order."""
        return tuple(self.hosts)

    def current(self, host):
        """The release `current` points to on `host` (None: none)."""
        return self.hosts[host].current

    @property
    def currents(self):
        """{host: its current release (None: none)}."""
        return {name: view.current for name, view in self.hosts.items()}

    def release(self, host, name):
        """The HostRelease `name` on `host`, None if the host has none by that name."""
        return self.hosts[host].release(name)

    def releases(self, host):
        """[HostRelease] of `host`, in the order read."""
        return list(self.hosts[host].releases.values())

    def _releases_by_host(self):
        """{host: (HostRelease, ...)}, what fab.releases's fleet-wide decisions take:
        made once and shared by this snapshot's own decisions."""
        return self._answer("releases_by_host", lambda: {
            name: tuple(view.releases.values()) for name, view in self.hosts.items()})

    def _answer(self, question, work_out):
        """The answer to `question` (a hashable key), worked out once by `work_out()`."""
        if question not in self._answers:
            self._answers[question] = work_out()
        return self._answers[question]

    def meta(self, name):
        """The metadata of release `name` as the first host (in fleet order) that can
        read it has it; None if no host can. A release's metadata is the same on
        every host of a deploy."""
        for view in self.hosts.values():
            found = view.release(name)
            if found and found.meta:
                return found.meta
        return None

    def steps_done(self, host, name):
        """The steps `host` finished in release `name` (a resume skips them)."""
        return self.hosts[host].steps.get(name, frozenset())

    def anywhere(self, name):
        """True if any host has a release directory `name`."""
        return any(name in view.releases for view in self.hosts.values())

    # --- whether the hosts agree -------------------------------------------------

    def agreed_current(self):
        """The release every host has as current, or None (first deploy, or drift)."""
        found = set(self.currents.values())
        return found.pop() if len(found) == 1 else None

    def drift(self):
        """None if every host runs the same release; else a line naming the hosts that differ."""
        return rel.disagreement(self.currents)

    def live(self):
        """(the release current on every host, its metadata); PreflightError saying
        what differs, or where its metadata cannot be read, otherwise."""
        live = rel.agreed_current(self.currents)
        missing = sorted(name for name, view in self.hosts.items()
                         if not (view.release(live) and view.release(live).meta))
        if missing:
            raise PreflightError(f"current release {live} has no readable metadata on {', '.join(missing)}")
        return live, self.meta(live)

    def live_commit(self):
        """(the commit every host's current release runs, or None; a line naming the
        hosts that run different commits, or None when they agree)."""
        commits = {}
        for name, view in self.hosts.items():
            found = view.release(view.current)
            commits[name] = found.meta.commit if found and found.meta else None
        drift = rel.disagreement(commits)
        if drift:
            return None, drift
        return next(iter(commits.values()), None), None

    # --- which release a task takes ----------------------------------------------

    def new_release_name(self, now):
        """The name of a release started at `now`, colliding with no release on any host."""
        return rel.new_release_name(now, {name for view in self.hosts.values() for name in view.releases})

    def release_to_resume(self):
        """The metadata (status building) of the release `deploy:resume` continues:
        the newest unfinished one newer than current on any host. PreflightError if
        there is none, or if a host cannot read its metadata."""
        candidates = {}
        for view in self.hosts.values():
            name = rel.resumable_release(list(view.releases.values()), view.current)
            if name:
                candidates[name] = view.release(name).meta
        if not candidates:
            raise PreflightError("nothing to resume: no unfinished release newer than current")
        name = max(candidates)
        unreadable = sorted(host for host, view in self.hosts.items()
                            if view.release(name) and view.release(name).unreadable)
        if unreadable:  # the other hosts' word does not make it ours to continue there
            raise PreflightError(f"cannot resume release {name}: its metadata is unreadable on "
                                 f"{', '.join(unreadable)}")
        return candidates[name].with_status(rel.BUILDING)

    def live_paused(self, name):
        """The hosts that run release `name`, marked paused there: a deploy paused with
        them live (its canary, checked before it paused), in fleet order."""
        return [host for host, view in self.hosts.items()
                if view.current == name and view.release(name) and view.release(name).status == rel.PAUSED]

    def prepared_for(self, commit):
        """The metadata (status building) of the release preindex_views prepared for
        `commit` on every host, newer than each host's current, that a deploy of
        that commit goes on with; None if there is none."""
        name = rel.prepared_release(self._releases_by_host(), self.currents, commit)
        return self.meta(name).with_status(rel.BUILDING) if name else None

    # --- rollback ----------------------------------------------------------------

    def fleet_rollback_target(self, current):
        """The newest release older than `current` that is good on every host (None
        if none): where `rollback` takes the fleet from `current`, so every host's
        cleanup keeps it whatever the host's own rollback target is."""
        return self._answer(("fleet_rollback_target", current),
                            lambda: rel.fleet_rollback_target(self._releases_by_host(), current))

    def rollback_target(self, wanted=None):
        """The release `rollback` goes to (`wanted`: the one named), decided once from
        every host's state; PreflightError naming what differs per host otherwise."""
        return rel.rollback_target(self._releases_by_host(), self.currents, wanted)

    def would_roll_back_to(self):
        """What `rollback` without a release name picks now, or None where it refuses:
        the one release `releases` marks as the rollback target, on every host."""
        def work_out():
            try:
                return self.rollback_target()
            except PreflightError:
                return None

        return self._answer("would_roll_back_to", work_out)

    def passed_over(self, target):
        """{release: {host: why}} of the releases newer than `target` and older than
        the agreed current that are good on some host but not on every one (`why`:
        "missing" or the release's status there): what a rollback to `target`
        passes over. {} when hosts disagree on current (a named rollback)."""
        current = self.agreed_current()
        if current is None or target is None:
            return {}
        between = {r.name for view in self.hosts.values() for r in view.releases.values()
                   if target < r.name < current and r.status == rel.GOOD}
        passed = {}
        for name in sorted(between):
            lacking = {host: view.release(name).status if view.release(name) else "missing"
                       for host, view in self.hosts.items()
                       if not view.release(name) or view.release(name).status != rel.GOOD}
            if lacking:
                passed[name] = lacking
        return passed

    def newer_than(self, target):
        """{host: HostRelease} of each host's current release that is newer than
        `target` (with metadata): what a rollback to `target` leaves and marks
        rolled_back. Rolling forward leaves the older release good, so a later
        rollback can still go to it."""
        left = {name: view.release(view.current) for name, view in self.hosts.items() if view.current}
        return {name: found for name, found in left.items() if found and found.meta and found.name > target}

    def listing(self, host):
        """What `host` has, as `fab <env> releases` shows it (fab.releases.host_listing),
        its rollback target being exactly what `rollback` would pick for the fleet;
        `maintenance`: its proxy programs in maintenance, if any."""
        listing = rel.host_listing(self.releases(host), self.current(host), self.would_roll_back_to(),
                                   self.hosts[host].wheel_sets)
        maintenance = self.hosts[host].maintenance
        return {**listing, "maintenance": sorted(maintenance)} if maintenance else listing

    def current_wheel_sets(self):
        """{host: (digest, count) of the wheel set its current release's venv was
        installed from, or None (no record: no release, or installed from an index)}."""
        return {name: view.wheel_sets.get(view.current) for name, view in self.hosts.items()}

    # --- what a failure puts back ------------------------------------------------

    def put_back_release(self, host):
        """The release `host` goes back to if a go-live fails: its current release if
        that one is complete, else (a deploy died after swapping it) its newest good one."""
        view = self.hosts[host]
        return rel.fallback_release(list(view.releases.values()), view.current)

    def put_back_targets(self):
        """{host: Target} of what each host goes back to if a go-live fails."""
        targets = {}
        for name, view in self.hosts.items():
            back_to = self.put_back_release(name)
            found = view.release(back_to)
            targets[name] = Target.of(found.meta) if found and found.meta else Target(back_to)
        return targets

    def put_back_warnings(self):
        """{host: line} for each host whose current release is unfinished (a deploy
        died after swapping it), saying what a failure puts back there instead."""
        return {name: unfinished_current_warning(view.current, self.put_back_release(name),
                                                 paused=name in self.live_paused(view.current))
                for name, view in self.hosts.items() if self.put_back_release(name) != view.current}

    # --- cleanup -----------------------------------------------------------------

    def cleanup_deletes(self, host, now, after_going_live=None, running=None):
        """The releases cleanup deletes on `host` at `now` (fab.releases.cleanup_deletes),
        oldest first, keeping the fleet's rollback target as well as the host's own.

        Without `after_going_live`: as `clean_releases` finds the host. With it (a
        ReleaseMeta): once that release went live there and was marked good, as
        the deploy's cleanup runs; `running` is what the host then runs if not that
        release (a host a failure put back on its previous release).
        """
        if self.keep_releases is None:
            raise ValueError("this snapshot was made without keep_releases")
        view = self.hosts[host]
        found = list(view.releases.values())
        if after_going_live is None:
            current, fleet_current = view.current, self.agreed_current()
        else:
            good = after_going_live.with_status(rel.GOOD)
            own = view.releases.get(good.name)
            if own and own.meta:  # the task's record (read on another host) lifts no keep_until here
                good = good.with_later_keep_until(own.meta)
            found = [r for r in found if r.name != good.name] + [rel.HostRelease(good.name, good)]
            current = running if running in {r.name for r in found} else good.name
            fleet_current = good.name
        return rel.cleanup_deletes(found, current, self.keep_releases, now, self.fleet_rollback_target(fleet_current))

    # --- restart or reload ---------------------------------------------------------

    def reloads_in_place(self, host, reloadable, running, target, venv_keys=None, config_digests=None,
                         venv_free=frozenset()):
        """The programs of `reloadable` on `host` that reload in place going from
        release `running` to `target` (see the module function `reloads_in_place`),
        from what the host had when read plus what this task built there since
        (`venv_keys`: {release: venv key}; `config_digests`: {release: {program: digest}})."""
        view = self.hosts[host]
        return reloads_in_place(reloadable, running, target, {**view.venvs, **(venv_keys or {})},
                                {**view.configs, **(config_digests or {})}, venv_free)


def reloads_in_place(reloadable, running, target, venv_keys, config_digests, venv_free=frozenset()):
    """The programs among `reloadable` (those of services with `restart: reload`)
    that may reload in place (SIGHUP, no drain) to go from release `running` to
    release `target`: only if both are known, both link the same virtualenv (same
    venv key) and the program's rendered config has the same digest in both.
    Anything else, or anything unknown, restarts: the zero-downtime reload is only
    safe when the code is all that changes. Programs in `venv_free` (of services
    that run no app code, `app: false`) do not use the venv: only their configs count.

    `venv_keys`: {release: venv key}; `config_digests`: {release: {program: digest}}.
    Returns a frozenset of program names.
    """
    if not (running and target):
        return frozenset()
    venv = venv_keys.get(running)
    same_venv = venv is not None and venv == venv_keys.get(target)
    before = config_digests.get(running, {})
    after = config_digests.get(target, {})
    return frozenset(p for p in reloadable if (same_venv or p in venv_free)
                     and p in after and p in before and before[p] == after[p])


def unfinished_current_warning(current, back_to, paused=False):
    """The line saying that `current` is unfinished (`paused`: live as a paused deploy's
    canary) and what a failure puts back instead."""
    why = "paused (live as the canary)" if paused else "unfinished (a deploy died after swapping it)"
    return f"current release {current} is {why}; {back_to or 'no release'} is what a failure puts back"


def passed_over_warnings(target, passed):
    """Lines a rollback to `target` prints for the releases it passes over (`passed`,
    from FleetSnapshot.passed_over), one per release naming the hosts that lack it."""
    lines = []
    for name, lacking in sorted(passed.items()):
        by_why = {}
        for host, why in sorted(lacking.items()):
            by_why.setdefault(why, []).append(host)
        lacks = "; ".join(f"{why} on {', '.join(hosts)}" for why, hosts in sorted(by_why.items()))
        lines.append(f"rollback passes over {name} ({lacks}): it goes to {target}, good on every host")
    return lines

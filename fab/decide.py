"""Decide once: what a task will do on each host, as one plain object.

`decide_deploy`, `decide_rollback`, `decide_cleanup` and `decide_hotfix` are pure
functions from the fleet as read once (a fab.snapshot.FleetSnapshot) and the
request (the release chosen, the waves, the moment) to a `Decision`: per host,
the release it goes to, what a failure puts back, what is marked once it is
live and what cleanup then deletes. `plan=yes` shows that object (fab.plan adds
what it reads beside it: commits, venv reuse, config diffs); the real task runs
the very same object, so what a plan shows is what the run does
(tests/test_decide.py runs decisions against a fleet in memory to show it).

How a task runs a Decision (the stages):

    goal = decision.goal()            # {host: Target}: rollout.go_live's goal
    previous = decision.put_back()    # {host: Target}: what a failure puts back
    # once a host is live (or was put back on `previous`, within the failure limit):
    marks, deletes = decision.finishing(name, placed)    # what it writes, then deletes

(`finish_steps` turns that into a host's steps through a maker: `mark(meta)` is
release.write_meta, `delete(names)` cleanup.delete_releases). Nothing here
touches a host.
"""
import dataclasses
import typing

from fab import releases as rel
from fab.snapshot import Target, passed_over_warnings
from fab.waves import continuing_after_pause

DEPLOY, ROLLBACK, CLEANUP, HOTFIX = "deploy", "rollback", "clean_releases", "hotfix_deploy"
#: Where a deploy's release comes from (ReleaseChoice.source).
NEW, PREPARED, RESUMED = "new", "prepared", "resumed"


@dataclasses.dataclass(frozen=True)
class HostDecision:
    """What a task does on one host.

    current: the release the host runs when the task starts (as read; None: none).
    goes_to: what the host runs once live (a Target; None: the task swaps nothing
        here, e.g. clean_releases). For a hotfix the release stays and its commit
        changes.
    back_to: what a failed go-live puts the host back on (None: nothing to put back).
    marks: ReleaseMeta written on the host once it is live (their new statuses), in
        order: the release made good; for a rollback, then the release it left,
        rolled_back.
    deletes: the releases cleanup deletes on the host once it is live (a deploy) or
        now (clean_releases), oldest first.
    deletes_if_put_back: what the deploy's cleanup deletes instead on this host if
        it failed within the failure limit and was put back on `back_to` (it still
        runs the finishing steps there).
    """

    current: typing.Optional[str]
    goes_to: typing.Optional[Target] = None
    back_to: typing.Optional[Target] = None
    marks: tuple = ()
    deletes: tuple = ()
    deletes_if_put_back: tuple = ()


@dataclasses.dataclass(frozen=True)
class Decision:
    """What a task will do, decided once before it changes anything.

    task: DEPLOY, ROLLBACK, CLEANUP or HOTFIX.
    release: the metadata of the release the task goes live with (deploy: status
        building, as it is built; rollback: the target; hotfix: the live release,
        already hotfixed), None for clean_releases.
    previous: the release every host ran before (None: none, or they differed).
    fails_as: the status the release is marked with if going live fails (None:
        it is not marked); an interrupt marks it interrupted instead.
    waves: the fab.waves.Wave tuple the hosts go live in, in order.
    hosts: {host: HostDecision}, in fleet order.
    warnings: lines the task prints before it starts (e.g. a rollback passing over
        a release missing on some host).
    host_warnings: {host: line} about single hosts (an unfinished current release).
    pause_after: the name of the wave after which a deploy stops, paused (None:
        it does not; rollout.pause).
    """

    task: str
    release: typing.Optional[rel.ReleaseMeta] = None
    previous: typing.Optional[str] = None
    fails_as: typing.Optional[str] = None
    waves: tuple = ()
    hosts: dict = dataclasses.field(default_factory=dict)
    warnings: tuple = ()
    host_warnings: dict = dataclasses.field(default_factory=dict)
    pause_after: typing.Optional[str] = None

    def goal(self):
        """{host: Target} each host goes to (the hosts this task swaps)."""
        return {name: host.goes_to for name, host in self.hosts.items() if host.goes_to is not None}

    def put_back(self):
        """{host: Target} each host goes back to if going live fails."""
        return {name: host.back_to for name, host in self.hosts.items() if host.goes_to is not None}

    def finishing(self, host, placed=None):
        """(marks, deletes) `host` writes once it is live: the ReleaseMeta to write, in
        order, and the releases its cleanup deletes (None: the task runs no cleanup
        step there; a deploy always runs one, even with nothing to delete).

        `placed`: the release the go-live left on the host (None: the one it was
        sent to). A host put back on its `back_to` release, within the failure
        limit, still finishes: its cleanup is then `deletes_if_put_back`.
        """
        decided = self.hosts[host]
        if self.task != DEPLOY:
            return decided.marks, None
        put_back = placed is not None and decided.back_to is not None and placed == decided.back_to.release \
            and placed != decided.goes_to.release
        return decided.marks, decided.deletes_if_put_back if put_back else decided.deletes


@dataclasses.dataclass(frozen=True)
class ReleaseChoice:
    """The release a deploy (or preindex_views) goes on with: `meta` (status
    building) and where it comes from (`source`: NEW, PREPARED or RESUMED)."""

    meta: rel.ReleaseMeta
    source: str


def choose_release(snapshot, commit, ref, who, now, ports=(), resume=False):
    """The release a deploy of `commit` (asked for as `ref`) goes on with: the one a
    resume continues (`resume`; PreflightError if none), the one preindex_views
    prepared for `commit`, else a new one named for `now` (by `who`, its services
    on `ports`, a dict)."""
    if resume:
        return ReleaseChoice(snapshot.release_to_resume(), RESUMED)
    prepared = snapshot.prepared_for(commit)
    if prepared:
        return ReleaseChoice(prepared, PREPARED)
    return ReleaseChoice(new_release(snapshot, commit, ref, who, now, ports), NEW)


def new_release(snapshot, commit, ref, who, now, ports=(), private=False, keep_days=0):
    """Metadata for a new release started at `now`, named so it collides with no
    release on any host (setup_release: `private`, kept `keep_days`)."""
    return rel.ReleaseMeta(
        name=snapshot.new_release_name(now), commit=commit, branch=ref, deployed_by=who,
        created_at=now.isoformat(), status=rel.PRIVATE if private else rel.BUILDING,
        keep_until=rel.keep_until(now, keep_days), private=private,
    ).with_ports(dict(ports))


def decide_deploy(snapshot, meta, waves, now, pause=False):
    """A deploy of `meta`'s release (from `choose_release`) to every host of the
    snapshot, going live in `waves`: each host goes to the release, goes back on
    failure to what it runs (fab.snapshot.FleetSnapshot.put_back_targets), and once
    live marks it good and cleans up as decided at `now`. With `pause`
    (rollout.pause) it stops after the canary (`pauses_after`). Resuming a paused
    deploy, the hosts it left live go first, only checked (waves.continuing_after_pause)."""
    good = meta.with_status(rel.GOOD)
    back = snapshot.put_back_targets()
    hosts = {}
    for name in snapshot.names:
        hosts[name] = HostDecision(
            current=snapshot.current(name), goes_to=Target.of(meta), back_to=back[name], marks=(good,),
            deletes=tuple(snapshot.cleanup_deletes(name, now, after_going_live=meta)),
            deletes_if_put_back=tuple(snapshot.cleanup_deletes(
                name, now, after_going_live=meta, running=back[name].release)),
        )
    return Decision(DEPLOY, release=meta, previous=snapshot.agreed_current(), fails_as=rel.FAILED,
                    waves=tuple(continuing_after_pause(waves, snapshot.live_paused(meta.name))), hosts=hosts,
                    host_warnings=snapshot.put_back_warnings(),
                    pause_after=pauses_after(snapshot, meta, waves) if pause else None)


def pauses_after(snapshot, meta, waves):
    """The wave a deploy of `meta` with rollout.pause stops after: the canary, when
    other waves follow it, unless the deploy resumes a release paused there already
    (the resume goes on to the end). None: it does not stop."""
    waves = list(waves)
    resumed = snapshot.meta(meta.name)
    if len(waves) < 2 or not waves[0].canary or (resumed and resumed.status == rel.PAUSED):
        return None
    return waves[0].name


def decide_rollback(snapshot, waves, wanted=None):
    """A rollback to the previous good release (or `wanted`), in `waves`:
    PreflightError if `rollback` refuses (fab.releases.rollback_target). Each host
    goes to the target and marks it good, and the release it leaves (if newer) is
    marked rolled_back; nothing is deleted. Warns of every release passed over
    that some host lacks."""
    target = snapshot.rollback_target(wanted)
    target_meta = snapshot.meta(target)
    good = target_meta.with_status(rel.GOOD)
    left = snapshot.newer_than(target)
    # What it leaves is marked rolled_back wherever it is (a paused deploy's release
    # too, on the hosts it never reached: no resume takes it up again).
    given_up = sorted({found.name for found in left.values()})
    back = snapshot.put_back_targets()
    hosts = {name: HostDecision(
        current=snapshot.current(name), goes_to=Target.of(target_meta), back_to=back[name],
        marks=(good, *(snapshot.release(name, release).meta.with_status(rel.ROLLED_BACK) for release in given_up
                       if snapshot.release(name, release) and snapshot.release(name, release).meta)))
        for name in snapshot.names}
    passed = passed_over_warnings(target, snapshot.passed_over(target))
    return Decision(ROLLBACK, release=target_meta, previous=snapshot.agreed_current(), waves=tuple(waves),
                    hosts=hosts, warnings=tuple(passed), host_warnings=snapshot.put_back_warnings())


def decide_cleanup(snapshot, now):
    """clean_releases at `now`: what each host deletes (nothing is swapped)."""
    return Decision(CLEANUP, hosts={
        name: HostDecision(current=snapshot.current(name), deletes=tuple(snapshot.cleanup_deletes(name, now)))
        for name in snapshot.names})


def decide_hotfix(snapshot, new_commit, who, now, waves):
    """A hotfix of the live release to `new_commit` (PreflightError if hosts do not
    agree on a live release with metadata): each host keeps the release, runs the
    new commit in it, and on failure the old commit again; once done the release's
    metadata records the hotfix."""
    live, meta = snapshot.live()
    hotfixed = meta.hotfixed(new_commit, who, now)
    hosts = {name: HostDecision(current=live, goes_to=Target(live, new_commit, meta.ports),
                                back_to=Target.of(meta), marks=(hotfixed,))
             for name in snapshot.names}
    return Decision(HOTFIX, release=hotfixed, previous=live, waves=tuple(waves), hosts=hosts)


def finish_steps(decision, host, steps, placed=None):
    """The steps `host` runs once it is live, or back on its previous release after
    failing within the failure limit (`placed`: the release the go-live left
    there; None: the one the decision sends it to): each of its `marks`, then,
    for a deploy, the deletion of what its cleanup deletes (Decision.finishing).
    `steps` makes each step: an object with `mark(meta)` and `delete(names)` (a
    host's real steps, or a recorder in a test). Returns the steps, in order."""
    marks, doomed = decision.finishing(host, placed)
    return [*(steps.mark(meta) for meta in marks), *([] if doomed is None else [steps.delete(list(doomed))])]

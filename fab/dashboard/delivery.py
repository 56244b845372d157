"""The team's delivery figures over a window, from one environment's operations:
deploy frequency, change failure rate, time to restore and lead time. Pure
functions of operation summaries (fab.dashboard.reading); no database.

The definitions, precisely:

- An operation *has ended* when its outcome is not `running` (a `running` row whose
  holder is gone reads `interrupted`) and its end is no later than `now`. Its end is
  `finished_at`, else `started_at + seconds` (an interrupted row never wrote its end).
  Operations that have not ended are ignored everywhere.
- *Success* is the outcome `succeeded` (what the recorder writes; `ok` is read alike).
- A *deploy* is a `deploy` or `hotfix_deploy` operation that started in
  [since, until) and has ended, except: `refused` ones (they changed nothing), and a
  `paused` deploy that a later `deploy` of the same release continues
  (`deploy:resume=yes`): the two are one deploy, counted (and judged) at the
  continuation. A paused deploy nothing continued counts as a deploy, not failed.
  Each deploy is counted on the UTC day it started.
- A deploy *failed* when its outcome is `failed` or `interrupted`, before its swap or
  after it (the store does not say which, and either way the change did not ship).
- A release is *put live* by a successful deploy, hotfix_deploy or rollback, and by a
  paused deploy (on its canary). Failed deploys put every host back, so put nothing live.
- A deploy is *rolled back* when a successful rollback's previous live operation (the
  last one, ended before the rollback started, that put a release live) is that
  deploy; when both the rollback's `previous_release` (the release it left) and the
  deploy's `release` are recorded they must match. A rollback of a rollback marks
  nothing (no deploy is in between); a hotfix lives in its release, so a rollback
  leaving that release rolls the hotfix back.
- *Change failure rate* = (failed deploys + rolled-back deploys) / deploys; None
  without deploys.
- *Time to restore*: an incident opens at the end of a failed or rolled-back deploy
  of the window (a failure while one is open joins it) and is restored at the end of
  the next successful operation that puts a good release live: a rollback, or a
  deploy or hotfix_deploy that is not itself rolled back. Its seconds run from open
  to restore; the restore may come after `until` (if such operations are given).
  Incidents not restored by `now` are listed in `unrestored` and not in the figures.
- *Lead time*: for each successful deploy of the window whose `commit_time` is
  recorded (None on rows older than migration 0005: left out), its `finished_at`
  (when it went live) minus `commit_time`, at least 0 (clocks disagree).
- The window's `days` is (until - since) / 86400; `deploys_per_day` = deploys / days.
  `per_day` lists every UTC day the window touches, zeros included: deploys started
  that day and, of those, the change failures (failed or rolled back).
"""
import datetime
import statistics

from fab import events
from fab.history.liveness import RUNNING

DEPLOY_TASKS = ("deploy", "hotfix_deploy")
ROLLBACK = "rollback"
SUCCESS = (events.SUCCEEDED, events.OK)
FAILURES = (events.FAILED, events.INTERRUPTED)
REFUSED, PAUSED = events.REFUSED, events.PAUSED
DAY = 86400


def figures(operations, since, until, now):
    """The delivery figures of one environment's `operations` (summaries, any order)
    for the window [since, until) (epoch seconds), as of `now`."""
    ended = sorted((op for op in operations if has_ended(op, now)), key=lambda op: (op["started_at"], op["id"]))
    continued = continued_pauses(ended)
    in_window = [op for op in ended if op["task"] in DEPLOY_TASKS and since <= op["started_at"] < until
                 and op["outcome"] != REFUSED and op["id"] not in continued]
    rolled_back = rolled_back_deploys(ended)
    failed = [op["id"] for op in in_window if op["outcome"] in FAILURES]
    rolled = [op["id"] for op in in_window if op["id"] in rolled_back]
    days = max(0.0, (until - since) / DAY)
    incidents, unrestored = restorations(ended, set(failed) | set(rolled), rolled_back)
    return {
        "window": {"since": since, "until": until, "days": days},
        "deploys": len(in_window),
        "deploys_per_day": len(in_window) / days if days else 0.0,
        "change_failure_rate": (len(failed) + len(rolled)) / len(in_window) if in_window else None,
        "failed": failed,
        "rolled_back": rolled,
        "time_to_restore": {**summary([i["seconds"] for i in incidents]), "incidents": incidents,
                            "unrestored": unrestored},
        "lead_time": summary(lead_times(in_window)),
        "per_day": per_day(in_window, set(failed) | set(rolled), since, until),
    }


def ended_at(op):
    if op.get("finished_at") is not None:
        return op["finished_at"]
    return op["started_at"] + (op.get("seconds") or 0.0)


def has_ended(op, now):
    return op["outcome"] != RUNNING and ended_at(op) <= now


def succeeded(op):
    return op["outcome"] in SUCCESS


def puts_live(op):
    """Whether the (ended) operation left a release live."""
    if op["task"] == ROLLBACK or op["task"] in DEPLOY_TASKS:
        return succeeded(op) or (op["task"] == "deploy" and op["outcome"] == PAUSED)
    return False


def continued_pauses(ended):
    """Ids of paused deploys that a later deploy of the same release continued: the
    next `deploy` run after each (ended operations, oldest first)."""
    continued = set()
    deploys = [op for op in ended if op["task"] == "deploy" and op["outcome"] != REFUSED]
    for paused, following in zip(deploys, deploys[1:]):
        if paused["outcome"] == PAUSED and paused.get("release") and following.get("release") == paused["release"]:
            continued.add(paused["id"])
    return continued


def rolled_back_deploys(ended):
    """Ids of the deploys (any time) a successful rollback undid (module docstring)."""
    rolled_back = set()
    live = None  # the last operation that put a release live
    for op in sorted(ended, key=lambda op: (ended_at(op), op["id"])):
        if op["task"] == ROLLBACK and succeeded(op) and live is not None and live["task"] in DEPLOY_TASKS:
            left, deployed = op.get("previous_release"), live.get("release")
            if not (left and deployed) or left == deployed:
                rolled_back.add(live["id"])
        if puts_live(op):
            live = op
    return rolled_back


def restorations(ended, failure_ids, rolled_back):
    """(incidents restored, [the failure that opened the incident still open]) from
    the `ended` operations; `failure_ids`: the window's failed or rolled-back deploys."""
    incidents, opened = [], None  # opened: the failure the open incident started at
    for op in sorted(ended, key=lambda op: (ended_at(op), op["id"])):
        if op["id"] in failure_ids:
            opened = opened or op
        elif opened is not None and puts_live(op) and succeeded(op) and op["id"] not in rolled_back:
            incidents.append({"failed_id": opened["id"], "restored_id": op["id"],
                              "seconds": ended_at(op) - ended_at(opened)})
            opened = None
    return incidents, [opened["id"]] if opened else []


def lead_times(deploys):
    return [max(0.0, op["finished_at"] - op["commit_time"]) for op in deploys
            if succeeded(op) and op.get("commit_time") is not None and op.get("finished_at") is not None]


def summary(values):
    return {"median": statistics.median(values) if values else None,
            "mean": statistics.fmean(values) if values else None,
            "count": len(values)}


def per_day(deploys, failure_ids, since, until):
    """Every UTC day [since, until) touches, oldest first, with its deploys and failures."""
    if until <= since:
        return []
    first, last = utc_day(since), utc_day(until - 1e-6)
    days = {first + datetime.timedelta(days=n): {"deploys": 0, "failed": 0} for n in range((last - first).days + 1)}
    for op in deploys:
        counts = days[utc_day(op["started_at"])]
        counts["deploys"] += 1
        counts["failed"] += op["id"] in failure_ids
    return [{"day": day.isoformat(), **counts} for day, counts in days.items()]


def utc_day(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).date()

"""What each page shows, as one plain dict: the JSON twin answers it as is, the page's
template renders it. Built from the readers' results (fab.dashboard.reading), the
delivery figures (fab.dashboard.delivery); no database, no HTML here.

Times: the readers give epoch seconds; a page's data gives ISO 8601 UTC strings
(fab.history.views.iso), and keeps `<name>_epoch` beside those a client computes with
(an operation's start and end, a commit's time).
"""
import json
import math
import urllib.parse

from fab import cli
from fab.history import views

#: Keys whose number is a time (epoch seconds) wherever they appear in a page's data.
TIME_KEYS = frozenset({"started_at", "finished_at", "commit_time", "since", "until", "heartbeat_at"})
#: Of those, the ones whose epoch is kept too (`started_at_epoch`), for arithmetic.
EPOCH_KEPT = frozenset({"started_at", "finished_at", "commit_time"})
#: The history filters, in the order the page and the API take them.
FILTERS = ("environment", "task", "outcome", "performer")
HISTORY_PAGE = 50
#: The delivery window, in days: at most ten years.
MOST_DAYS = 3650
DEFAULT_DAYS = 30
#: Log lines an operation's page carries; the rest follows over its stream.
LOG_ON_PAGE = 5000


class BadParameter(ValueError):
    """A query parameter the page cannot take: answered 400 with this one line."""


def with_iso_times(value):
    """`value` (dicts and lists, any depth) with every time key's epoch as ISO 8601 UTC,
    and `<key>_epoch` kept for EPOCH_KEPT."""
    if isinstance(value, dict):
        shown = {}
        for key, item in value.items():
            if key in TIME_KEYS and isinstance(item, (int, float)) and not isinstance(item, bool):
                shown[key] = views.iso(item)
                if key in EPOCH_KEPT:
                    shown[f"{key}_epoch"] = item
            elif key in TIME_KEYS and item is None:
                shown[key] = None
                if key in EPOCH_KEPT:
                    shown[f"{key}_epoch"] = None
            else:
                shown[key] = with_iso_times(item)
        return shown
    if isinstance(value, (list, tuple)):
        return [with_iso_times(item) for item in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity
    return value


# --- environments ------------------------------------------------------------


def environments_page(catalogue, now):
    """Every environment's live release, last and running operation, lock and freeze,
    in name order; environments of a store that could not be read have no summary."""
    summaries = {}
    for reader in catalogue.readers:
        for summary in reader.environment_summaries(now):
            summaries[summary["environment"]] = summary
    rows = [summaries.get(name) or {"environment": name, "live": None, "last": None, "running": None,
                                    "locked": None, "frozen": None}
            for name in catalogue.environments]
    return with_iso_times({"environments": rows, "problems": list(catalogue.problems)})


# --- history -----------------------------------------------------------------


def history_filters(query):
    """{filter: value or None} from the query parameters (empty means no filter)."""
    return {name: (query.get(name) or "").strip() or None for name in FILTERS}


def history_cursor(query):
    """The `before` cursor of the query (None: the first page)."""
    return (query.get("before") or "").strip() or None


def history_page(catalogue, filters, rows, following):
    """One page of operations (`rows`, newest first) matching `filters`; `next` is the
    cursor of the page after it (None: the last page), `next_query` its query string;
    `choices` the values each filter menu offers."""
    choices = {"environment": list(catalogue.environments), "task": set(), "outcome": set(), "performer": set()}
    for reader in catalogue.readers:
        for name, values in reader.distinct_values().items():
            choices.setdefault(name, set()).update(values)
    given = {name: value for name, value in filters.items() if value}
    return with_iso_times({
        "filters": filters,
        "choices": {name: sorted(values) for name, values in choices.items()},
        "operations": rows,
        "next": following,
        "next_query": urllib.parse.urlencode({**given, "before": following}) if following else None,
        "problems": list(catalogue.problems),
    })


# --- an operation ------------------------------------------------------------


def operation_page(detail, log):
    """An operation's detail (steps, receipts, log size) with the first lines of its log
    ([(n, text)]); `follow_from` is the last line shown: the stream goes on after it when
    the operation still runs or has more lines than the page carries."""
    shown = with_iso_times(detail)
    shown["log"] = [{"n": number, "text": text} for number, text in log]
    last = log[-1][0] if log else 0
    shown["follow_from"] = last
    shown["follows"] = detail["outcome"] == "running" or last < (detail.get("log_lines") or 0)
    return shown


def log_event(number, text):
    """One Server-Sent Event for a log line: its id is the line number, so a reconnecting
    browser resumes after it (Last-Event-ID)."""
    return f"id: {number}\nevent: line\ndata: {json.dumps({'n': number, 'text': text})}\n\n"


END_EVENT = "event: end\ndata: {}\n\n"


def resume_after(last_event_id, after):
    """The line to stream after: the browser's Last-Event-ID, else `?after=`, else 0."""
    for given in (last_event_id, after):
        if given and cli.whole_number(given):
            return int(given.strip())
    return 0


# --- delivery ----------------------------------------------------------------


def delivery_parameters(catalogue, query):
    """(environment, days) from the query: the environment given (default: the first)
    and a whole number of days from 1 to MOST_DAYS. BadParameter otherwise."""
    days_text = (query.get("days") or str(DEFAULT_DAYS)).strip()
    if not cli.whole_number(days_text, MOST_DAYS) or int(days_text) < 1:
        raise BadParameter(f"days must be a whole number from 1 to {MOST_DAYS}, got {days_text!r}")
    environment = (query.get("environment") or "").strip() or (catalogue.environments or [None])[0]
    return environment, int(days_text)


def delivery_page(environment, days, figures, choices):
    """The delivery figures of `environment` over the last `days`, for the page and API."""
    return with_iso_times({"environment": environment, "days": days, "environments": list(choices),
                           "figures": figures})


def chart_label(days):
    return f"deploys per day, last {days} days (failed or rolled back in red)"


def percent(fraction):
    return "–" if fraction is None else f"{fraction * 100:.0f}%"


def seconds_text(seconds):
    """A duration for people (views.duration), a dash when there is none."""
    return "–" if seconds is None else views.duration(seconds)

"""The dashboard's pictures as SVG text, drawn on the server: an operation's per-host
timeline and a small bar chart of the delivery figures. Pure functions; no script
and no style attributes (the page's Content-Security-Policy forbids both): each
shape has class names for the stylesheet and a fill, so it reads without it.

Every text that comes from the store (host and step names, notes, outcomes, wave
names) may be hostile: it goes through `text()`, which drops what XML cannot
hold and escapes the rest, and is only ever element content or a quoted
attribute value.

Waves: the store's steps do not say which wave a host went live in; the log does,
in the line the rollout writes before its first wave (`== waves: canary: web1 |
wave 1: web2, web3`), which `waves_from_log` reads. Given no waves, they are
inferred from when each host went live: the hosts of a wave start their go-live
round trip (swap, restart, health) together, and the next wave starts only once
every one of them has ended it; hosts that never went live then make a group of
their own. Fewer than two waves inferred: the hosts are one group, unlabelled.
"""
import html
import re
import time

from fab import events
from fab.history import liveness
from fab.history.reconcile import UNRECORDED
from fab.history.views import cut, duration
from fab.shown import shown

WIDTH = 960
LABELS = 170  # the host names' column
MARGIN = 16
TOP = 6
AXIS = 30  # the time axis below the rows
GO_LIVE_STEPS = ("swap", "restart", "health")
HOST_LABEL_WIDTH = 26  # characters of a host's name shown (whole in its tooltip and data-host)

#: Step outcome -> (CSS class, fill). Others show as they are, classed `other`.
OUTCOMES = {
    events.OK: ("ok", "#2e7d32"),
    events.FAILED: ("failed", "#c62828"),
    liveness.RUNNING: ("running", "#1565c0"),
    events.SKIPPED: ("skipped", "#9e9e9e"),
    liveness.INTERRUPTED: ("interrupted", "#ef6c00"),
    events.PUT_BACK: ("put-back", "#8e24aa"),
    UNRECORDED: ("not-recorded", "#bdbdbd"),
}
OTHER = ("other", "#6d4c41")
BAND_FILLS = ("#f3f6fa", "#e6ecf3")
#: Candidate distances between ticks of the time axis, in seconds.
TICK_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)

# What XML 1.0 cannot hold, even escaped (after `shown` has dropped the controls):
# lone surrogates and the two non-characters at the end of the basic plane.
_NOT_XML = re.compile("[\ud800-\udfff\ufffe\uffff]")


def text(value):
    """`value` as SVG element content or attribute value: terminal controls dropped
    (fab.shown), what XML cannot hold replaced, markup escaped (quotes too)."""
    return html.escape(_NOT_XML.sub("\ufffd", shown("" if value is None else value)), quote=True)


def number(value):
    return f"{value:.1f}".rstrip("0").rstrip(".")


def svg(width, height, body, cls, label, **data):
    attributes = "".join(f' data-{name}="{text(value)}"' for name, value in data.items())
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="{cls}"{attributes} viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="{text(label)}">'
            f'<title>{text(label)}</title>{"".join(body)}</svg>')


def empty(cls, said, **data):
    return svg(320, 40, [f'<text class="empty" x="12" y="24" fill="#555" font-size="13">{text(said)}</text>'],
               cls, said, **data)


# --- the timeline -------------------------------------------------------------------


def timeline_svg(operation, now=None, waves=None):
    """An operation's timeline (`operation`: an operation detail, fab.dashboard.reading):
    one row per host (in the order each began), one bar per step from its start to
    its end (a running step to `now`, default the clock; one cut off by the
    operation's end to that end), classed and filled by outcome, with a `<title>`
    tooltip; hosts grouped by wave in labelled bands (`waves`: [(name, [host, ...])],
    default `operation["waves"]` if any, else inferred: module doc); the slowest
    step labelled; a time axis."""
    now = time.time() if now is None else now
    bars = [bar(step, operation, now) for step in operation.get("steps") or []]
    if not bars:
        return empty("timeline", "no steps recorded", hosts=0)
    start = min([b["start"] for b in bars] + [operation.get("started_at") or bars[0]["start"]])
    # to the operation's end: what it did after its last step (a hook, a wait) shows too
    end = max([b["end"] for b in bars] + [operation_end(operation, now)])
    span = max(end - start, 1e-3)
    by_host = {}  # host -> its bars, hosts in the order they began
    for b in sorted(bars, key=lambda b: b["start"]):
        by_host.setdefault(b["host"], []).append(b)
    hosts = list(by_host) + [h for h in operation.get("hosts") or [] if h not in by_host]
    waves = waves or operation.get("waves")
    if not waves:  # inferred: shown only when they tell something (two waves or more)
        waves = inferred_waves(by_host)
        waves = waves if len(waves) > 1 else []
    labelled = bool(waves)
    groups = grouped(hosts, waves) if labelled else [("", hosts)]
    row = 18 if len(hosts) <= 60 else 12
    font = 11 if row == 18 else 9
    plot = WIDTH - LABELS - MARGIN

    def x(at):
        return LABELS + (at - start) / span * plot

    body, y = [], TOP
    slowest = max(bars, key=lambda b: b["end"] - b["start"])
    labelled_inside = inside(slowest, slowest_words(slowest), x, font)  # else beside it
    for index, (wave, members) in enumerate(groups):
        if labelled:
            body.append(f'<g class="wave" data-wave="{text(wave)}">'
                        f'<rect class="wave-band" x="0" y="{y}" width="{WIDTH}" height="{(len(members) + 1) * row}" '
                        f'fill="{BAND_FILLS[index % 2]}"/>'
                        f'<text class="wave-label" x="6" y="{y + row - 5}" fill="#333" font-size="{font}" '
                        f'font-weight="bold">{text(wave)}</text>')
            y += row
        for host in members:
            body.extend(host_row(host, by_host.get(host, []), x, y, row, font, slowest if labelled_inside else None))
            if slowest["host"] == host and not labelled_inside:
                body.append(slowest_label(slowest, x, y, row, font))
            y += row
        if labelled:
            body.append("</g>")
    body.extend(axis(start, span, x, y, font))
    said = f"{operation.get('task', 'operation')} timeline: {len(hosts)} host(s), {duration(span)}"
    return svg(WIDTH, y + AXIS, body, "timeline", said, hosts=len(hosts))


def host_row(host, bars, x, y, row, font, slowest=None):
    """A host's row at height `y`: its name, then a bar per step (`x`: time -> position),
    with the step's name inside where it fits; bar `slowest`, if given, holds its label."""
    parts = [f'<g class="host" data-host="{text(host)}">'
             f'<text class="host-label" x="{LABELS - 6}" y="{y + row - 5}" text-anchor="end" '
             f'fill="#222" font-size="{font}">{text(cut(host, HOST_LABEL_WIDTH))}</text>']
    for b in bars:
        cls, fill = OUTCOMES.get(b["outcome"], OTHER)
        left, width = x(b["start"]), max(1.0, x(b["end"]) - x(b["start"]))
        tip = f"{host} {b['step']}: {b['outcome']}, {duration(b['end'] - b['start'])}"
        tip += f" ({b['note']})" if b["note"] else ""
        # a thin light edge keeps neighbouring steps of one outcome apart
        parts.append(f'<rect class="bar {cls}" data-host="{text(host)}" data-step="{text(b["step"])}" '
                     f'x="{number(left)}" y="{y + 2}" width="{number(width)}" height="{row - 4}" '
                     f'fill="{fill}" stroke="#fff" stroke-width="0.5"><title>{text(tip)}</title></rect>')
        if b is slowest:
            parts.append(f'<text class="bar-label slowest-label" data-host="{text(host)}" '
                         f'data-step="{text(b["step"])}" x="{number(left + 3)}" y="{y + row - 5}" fill="#fff" '
                         f'font-size="{font - 1}" font-weight="bold">{text(slowest_words(b))}</text>')
        elif inside(b, b["step"], x, font):
            parts.append(f'<text class="bar-label" x="{number(left + 3)}" y="{y + row - 5}" fill="#fff" '
                         f'font-size="{font - 1}">{text(b["step"])}</text>')
    parts.append("</g>")
    return parts


def bar(step, operation, now):
    """A step as a bar: its host, name, outcome and note, and where it starts and ends."""
    outcome, end = step["outcome"], step.get("finished_at")
    if end is None:
        if operation.get("outcome", liveness.RUNNING) == liveness.RUNNING:
            end = now
        else:  # cut off by the operation's end (fab.history.views.steps_table reads it so too)
            outcome = liveness.INTERRUPTED if outcome == liveness.RUNNING else outcome
            end = operation_end(operation, now)
    start = step["started_at"]
    return {"host": step["host"], "step": step["step"], "outcome": outcome, "note": step.get("note"),
            "start": start, "end": max(start, end)}


def operation_end(operation, now):
    """When the operation ended (its recorded end, or its start plus its seconds), or `now`."""
    if operation.get("outcome") == liveness.RUNNING:
        return now
    if operation.get("finished_at") is not None:
        return operation["finished_at"]
    if operation.get("seconds") is not None and operation.get("started_at") is not None:
        return operation["started_at"] + operation["seconds"]
    return now


def inside(b, words, x, font):
    """Whether `words` fit inside bar `b`'s width."""
    return x(b["end"]) - x(b["start"]) >= len(words) * font * 0.6 + 6


def slowest_words(slowest):
    return f"slowest: {slowest['step']} {duration(slowest['end'] - slowest['start'])}"


def slowest_label(slowest, x, y, row, font):
    """`slowest: step 12.3s` beside the slowest bar (too narrow to hold it): after it if
    there is room, else before it."""
    words = slowest_words(slowest)
    after = x(slowest["end"]) + 4
    room = after + len(words) * font * 0.6 < WIDTH
    place = f'x="{number(after)}"' if room else f'x="{number(x(slowest["start"]) - 4)}" text-anchor="end"'
    return (f'<text class="slowest-label" data-host="{text(slowest["host"])}" data-step="{text(slowest["step"])}" '
            f'{place} y="{y + row - 5}" fill="#000" font-size="{font}" font-weight="bold">{text(words)}</text>')


def axis(start, span, x, y, font):
    """The time axis under the rows: a line and ticks at a round step, labelled from 0."""
    step = next((s for s in TICK_STEPS if span / s <= 8), span / 8)
    parts = [f'<g class="axis"><line x1="{LABELS}" y1="{y + 4}" x2="{WIDTH - MARGIN}" y2="{y + 4}" stroke="#555"/>']
    ticks = int(span // step) + 1
    for n in range(ticks):
        at = x(start + n * step)
        parts.append(f'<line class="tick" x1="{number(at)}" y1="{y + 4}" x2="{number(at)}" y2="{y + 9}" '
                     f'stroke="#555"/><text class="tick-label" x="{number(at)}" y="{y + 9 + font}" '
                     f'text-anchor="middle" fill="#555" font-size="{font}">{text(tick_text(n * step))}</text>')
    parts.append("</g>")
    return parts


def tick_text(seconds):
    if seconds < 60:
        return f"{seconds:g}s"
    return duration(seconds)


def grouped(hosts, waves):
    """[(wave name, [host, ...])] in wave order over `hosts` (their order kept within
    a wave); hosts in no wave last, in a group of their own."""
    placed, groups = set(), []
    for name, members in waves:
        in_wave = [h for h in hosts if h in set(members) and h not in placed]
        placed.update(in_wave)
        if in_wave:
            groups.append((name, in_wave))
    rest = [h for h in hosts if h not in placed]
    if rest:
        groups.append(("other hosts" if groups else "all hosts", rest))
    return groups


def inferred_waves(by_host):
    """Waves read from the steps' times (module doc; `by_host`: {host: its bars in the
    order they began}): [("wave N", [host, ...])]."""
    trips = {}  # host -> (start, end) of its go-live round trip
    for host, steps in by_host.items():
        first = next((i for i, b in enumerate(steps) if b["step"] == "swap"), None)
        if first is None:
            first = next((i for i, b in enumerate(steps) if b["step"] == "restart"), None)
        if first is None:
            continue
        trip = [steps[first]]
        for b in steps[first + 1:]:
            if b["step"] not in GO_LIVE_STEPS or b["step"] == trip[0]["step"]:
                break
            trip.append(b)
        trips[host] = (trip[0]["start"], max(b["end"] for b in trip))
    waves, wave_end = [], None
    for host in sorted(trips, key=lambda h: trips[h]):
        begins, ends = trips[host]
        if waves and begins < wave_end:
            waves[-1][1].append(host)
            wave_end = max(wave_end, ends)
        else:
            waves.append((f"wave {len(waves) + 1}", [host]))
            wave_end = ends
    return waves


_WAVES_LINE = re.compile(r"^(?:\[\s*[\d.]+s\] )?== waves: (.*)$")


def waves_from_log(lines):
    """The waves the rollout announced in an operation's log (fab.stages.go_live writes
    `== waves: canary: web1 | wave 1: web2, web3`, fab.waves.describe): [(name, [host,
    ...])], from the first such line in `lines` (texts, or (number, text) pairs), or []."""
    for line in lines:
        line = line[1] if isinstance(line, tuple) else line
        found = _WAVES_LINE.match(line)
        if found:
            waves = []
            for part in found.group(1).split(" | "):
                name, _, members = part.rpartition(": ")
                waves.append((name, [h for h in members.split(", ") if h]))
            return waves
    return []


# --- bar charts ---------------------------------------------------------------------


def bars_svg(points, label, width=480, height=140):
    """A small bar chart of `points` ([{"day": "YYYY-MM-DD", "deploys": n, "failed": m}],
    fab.dashboard.delivery's per_day): one bar per day, its failures stacked in red
    at its foot, a `<title>` on each; `label` names the chart."""
    if not points:
        return empty("bars", f"{label}: no data")
    top, bottom, left = 22, 22, 28
    plot_width, plot_height = width - left - 8, height - top - bottom
    highest = max(max(p["deploys"] for p in points), 1)
    slot = plot_width / len(points)
    body = [f'<text class="chart-label" x="{left}" y="14" fill="#222" font-size="12" font-weight="bold">'
            f'{text(label)}</text>',
            f'<text class="scale" x="{left - 4}" y="{top + 9}" text-anchor="end" fill="#555" '
            f'font-size="10">{highest}</text>',
            f'<line class="baseline" x1="{left}" y1="{top + plot_height}" x2="{width - 8}" '
            f'y2="{top + plot_height}" stroke="#555"/>']
    for index, point in enumerate(points):
        deploys, failed = point["deploys"], min(point.get("failed", 0), point["deploys"])
        x = left + index * slot + slot * 0.1
        tip = f"{point['day']}: {deploys} deploy(s), {failed} failed or rolled back"
        body.append(f'<g class="day" data-day="{text(point["day"])}"><title>{text(tip)}</title>')
        base = top + plot_height
        for cls, count in (("failed", failed), ("ok", deploys - failed)):
            if count:
                size = count / highest * plot_height
                body.append(f'<rect class="bar {cls}" x="{number(x)}" y="{number(base - size)}" '
                            f'width="{number(slot * 0.8)}" height="{number(size)}" fill="{OUTCOMES[cls][1]}"/>')
                base -= size
        body.append("</g>")
    ends = [(0, left, "start")] + ([(len(points) - 1, width - 8, "end")] if len(points) > 1 else [])
    for index, x, anchor in ends:
        body.append(f'<text class="day-label" x="{number(x)}" y="{height - 6}" text-anchor="{anchor}" fill="#555" '
                    f'font-size="10">{text(points[index]["day"])}</text>')
    return svg(width, height, body, "bars", label, points=len(points))

"""The tables people read: the end-of-task summary and the `releases` listing.

Built once here with rich, and shown both at a terminal (styled, boxed) and in
plain output (`styled=False`: no box, no colour, columns aligned by rich). Every
cell is a `Text`: a plain string in a rich table is read as markup, and a release
name or a host's words must never be.
"""
import datetime as dt

from rich import box
from rich.console import Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from fab import events
from fab import releases as rel

OUTCOME_STYLES = {events.OK: "green", events.SKIPPED: "dim", events.FAILED: "bold red", events.PUT_BACK: "yellow",
                  events.SUCCEEDED: "green", events.REFUSED: "yellow", events.INTERRUPTED: "yellow"}


def _table(styled, **options):
    return Table(box=box.SIMPLE_HEAD if styled else None, show_edge=False,
                 header_style="bold" if styled else "", pad_edge=False, **options)


def add_row(table, *cells):
    """Add a row whose strings are shown as they are (not parsed as rich markup)."""
    table.add_row(*(Text(cell) if isinstance(cell, str) else cell for cell in cells))


def short_commit(commit):
    return commit[:12] if commit else "-"


def summary_table(record, styled=True):
    """Per host: the release `current` points to after the task, its outcome, its seconds;
    under a title saying how the task ended and its release."""
    finished = record.finished
    outcome = finished.outcome if finished else "running"
    title = f"{record.task} {record.started.environment}: {outcome}"
    if finished:
        title += f" (exit {finished.exit_code}) in {finished.seconds:.1f}s"
    if record.release:
        title += f" · release {record.release.release} ({short_commit(record.release.commit)})"
    table = _table(styled)
    for column in ("host", "current", "outcome", "seconds"):
        table.add_column(column, justify="right" if column == "seconds" else "left")
    for host in record.hosts.values():
        add_row(table, host.name, current_text(host),
                Text(outcome_text(host), style=OUTCOME_STYLES.get(host.outcome, "") if styled else ""),
                f"{host.seconds:.1f}")
    # The title above the table, not in it: a table's title wraps at the table's width.
    return Group(Text(title, style=OUTCOME_STYLES.get(outcome, "") if styled else ""), table)


def current_text(host):
    """A HostRecord's release after the task, for people."""
    if not host.release_known:
        return "unknown"
    return host.release or "none"


def outcome_text(host):
    """A HostRecord's outcome, with the step that failed: `failed at health`,
    `put back (failed at health)`."""
    failed = host.failed_step
    if host.outcome == events.PUT_BACK:
        return f"{events.PUT_BACK} (failed at {failed.step})" if failed else events.PUT_BACK
    return f"failed at {failed.step}" if failed else host.outcome


def age(created_at, now):
    """'3d 4h', '5h 2m', '7m', '12s' since an ISO timestamp ('-' if unknown)."""
    if not created_at:
        return "-"
    seconds = max(0, int((now - dt.datetime.fromisoformat(created_at)).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{seconds}s"


def moment(timestamp):
    """An ISO timestamp to the minute, in UTC, for people ('-' if none)."""
    if not timestamp:
        return "-"
    return dt.datetime.fromisoformat(timestamp).astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def releases_tables(listed, now, styled=True):
    """One table per host from a ReleasesListed event, then a drift line if hosts disagree."""
    renderables = []
    for host, listing in listed.hosts.items():
        table = _table(styled)
        # "* " before the current release, as `releases` has always shown it.
        for column in ("  release", "status", "commit", "age", "keep until (UTC)", "marker"):
            table.add_column(column)
        for release in listing["releases"]:
            is_current = release["name"] == listing["current"]
            is_target = release["name"] == listing["rollback_target"]
            marker = "current" if is_current else "rollback target" if is_target else ""
            if release.get("why"):
                marker = f"{marker}; {release['why']}" if marker else release["why"]
            marker_style = ""
            if styled:
                marker_style = ("bold red" if listed.drift else "bold green") if is_current else "cyan"
            if is_current and listed.drift:
                marker += " (drift)"
            add_row(
                table,
                f"{'*' if is_current else ' '} {release['name']}",
                Text(release["status"], style=_status_style(release["status"]) if styled else ""),
                short_commit(release["commit"]),
                age(release["created_at"], now),
                moment(release["keep_until"]),
                Text(marker, style=marker_style),
            )
        if not listing["releases"]:
            add_row(table, "  (no releases)", "", "", "", "", "")
        renderables += [Text(host, style="bold" if styled else ""), Padding.indent(table, 2)]
    for host, why in listed.unreachable.items():
        renderables += [Text(host, style="bold" if styled else ""),
                        Padding.indent(Text(f"not read: {why}", style="bold red" if styled else ""), 2)]
    for role, found in listed.wheel_sets.items():
        if found["same"]:
            (shown, hosts), = found["sets"].items()
            if shown != "none":
                renderables.append(Text(f"wheels of {role}: one set on every host, {shown}"))
        else:
            sets = "; ".join(f"{shown} on {', '.join(hosts)}" for shown, hosts in found["sets"].items())
            renderables.append(Text(f"WHEELS DIFFER in {role}: {', '.join(found['differs'])} "
                                    f"run another set ({sets})", style="bold red" if styled else ""))
    if listed.drift:
        renderables.append(Text(f"DRIFT: hosts disagree on current: {listed.drift}",
                                style="bold red" if styled else ""))
    return renderables


def _status_style(status):
    return {rel.GOOD: "green", rel.FAILED: "red", rel.BUILDING: "yellow",
            rel.ROLLED_BACK: "magenta", rel.PRIVATE: "cyan", rel.UNREADABLE: "bold red"}.get(status, "")

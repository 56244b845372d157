"""How stored operations read: the history table, its JSON form, a log's header,
its per-host steps and its ending. Pure functions of row dicts (no database)."""
import datetime
import json

from fab.shown import shown_data


def stamp(epoch):
    """`2026-11-23 05:59:01` (UTC)."""
    if epoch is None:
        return ""
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def utc_text(epoch):
    return f"{stamp(epoch)} UTC"


def iso(epoch):
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat(timespec="seconds")


def duration(seconds):
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def elapsed(operation, now):
    """How long the operation ran: its recorded seconds, or up to now / its last heartbeat."""
    if operation["seconds"] is not None:
        return operation["seconds"]
    until = now if operation["outcome"] == "running" else operation["heartbeat_at"]
    return max(0.0, until - operation["started_at"])


def arguments_text(arguments):
    """`rev=v1.2,resume=True` from a task's arguments (defaults and empty values left out)."""
    if isinstance(arguments, str):
        arguments = json.loads(arguments or "{}")
    return ",".join(f"{key}={value}" for key, value in sorted(arguments.items())
                    if value not in ("", None, False, 0))


def command_text(operation):
    arguments = arguments_text(operation["arguments"])
    return f"fab {operation['environment']} {operation['task']}{':' + arguments if arguments else ''}"


HISTORY_COLUMNS = ("id", "when (UTC)", "who", "controller", "task", "release", "commit", "ref",
                   "outcome", "duration", "message", "error")
#: A message longer than this is cut in the table (`history:json=yes` and `deploy_log` show it whole).
TABLE_MESSAGE_WIDTH = 40


def cut(text, width):
    return text if len(text) <= width else text[:width - 3] + "..."


def history_table(operations, now):
    """The history as aligned text lines (header first); `operations` newest first."""
    rows = [HISTORY_COLUMNS]
    for op in operations:
        rows.append((str(op["id"]), stamp(op["started_at"]), op["performer"], op["controller"],
                     op["task"] + (":" + arguments_text(op["arguments"]) if arguments_text(op["arguments"]) else ""),
                     op["release"] or "", (op["commit"] or "")[:12], op["ref"] or "", op["outcome"],
                     duration(elapsed(op, now)), cut(op.get("message") or "", TABLE_MESSAGE_WIDTH), op["error"] or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(HISTORY_COLUMNS) - 1)]
    return [("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]).rstrip()
            for row in rows]


def history_json(operations, now):
    """The history for scripts: a JSON list, newest first (its text cleaned of control
    sequences, as every output is: a store's rows are data anyone may have written)."""
    return json.dumps(shown_data([{
        "id": op["id"], "environment": op["environment"], "task": op["task"],
        "arguments": json.loads(op["arguments"] or "{}"), "performer": op["performer"],
        "controller": op["controller"], "hosts": json.loads(op["hosts"] or "[]"),
        "started_at": iso(op["started_at"]), "finished_at": iso(op["finished_at"]),
        "seconds": round(elapsed(op, now), 3), "outcome": op["outcome"], "exit_code": op["exit_code"],
        "error": op["error"], "release": op["release"], "commit": op["commit"], "ref": op["ref"],
        "previous_release": op["previous_release"], "message": op.get("message"), "log_lines": op["log_lines"],
        "log_pruned_at": iso(op["log_pruned_at"]),
    } for op in operations]), indent=2)


def log_header(operation):
    release = ""
    if operation["release"]:
        release = f"; release {operation['release']} at {(operation['commit'] or '')[:12]}"
        if operation["ref"]:
            release += f" (ref {operation['ref']})"
    said = [f"message: {operation['message']}"] if operation.get("message") else []
    return [f"operation {operation['id']}: {command_text(operation)} by {operation['performer']} "
            f"on {operation['controller']}, started {utc_text(operation['started_at'])}{release}", *said]


def steps_table(steps, now, operation_outcome="running"):
    """Per host, each step in order: what ran, how long it took, what failed. A step
    still `running` in an operation that ended was cut off: it reads `interrupted`."""
    if not steps:
        return []
    lines = ["steps:"]
    for host in dict.fromkeys(step["host"] for step in steps):
        for step in (s for s in steps if s["host"] == host):
            outcome, seconds = step["outcome"], step["seconds"]
            if outcome == "running" and operation_outcome != "running":
                outcome = "interrupted"
            if seconds is None:
                seconds = None if outcome == "interrupted" else (step["finished_at"] or now) - step["started_at"]
            note = step["note"] or ""
            lines.append(f"  {host:<10} {step['step']:<12} {outcome:<11} {duration(seconds):>7}  {note}".rstrip())
    return lines


def log_footer(operation, now):
    outcome = operation["outcome"]
    text = f"{operation['task']} {outcome}"
    if operation["exit_code"] is not None:
        text += f" (exit {operation['exit_code']})"
    text += f" after {duration(elapsed(operation, now))}"
    if outcome == "running":
        text = f"{operation['task']} still running ({duration(elapsed(operation, now))} so far)"
    elif outcome == "interrupted" and operation["finished_at"] is None:
        text += f"; its controller stopped answering (last heartbeat {utc_text(operation['heartbeat_at'])})"
    if operation["error"]:
        text += f": {operation['error']}"
    return [text]


def pruned_note(operation, retention_days):
    if operation["log_pruned_at"] is None:
        return []
    return [f"(log text removed on {utc_text(operation['log_pruned_at'])} by the history retention "
            f"of {retention_days} days; steps and outcome kept)"]

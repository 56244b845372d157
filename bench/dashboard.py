"""The dashboard with years of history: a store of 20,000 operations and 2,000,000 log
lines, the reading functions timed on it, then (when fab.dashboard.app is there) the
real pages over HTTP from uvicorn on 127.0.0.1. No fleet needed.

    .venv/bin/python bench/dashboard.py [--url URL] [--operations N] [--lines N] [--runs N] [--keep]

The store is made by the migrations, then filled with SQLAlchemy Core bulk inserts in
large transactions (log chunks encoded by fab.history.chunks, as the recorder writes
them: a few lines per flush). Default: a SQLite file under /tmp, removed at the end
(--keep leaves it, and reuses it next time); --url postgresql://... fills an empty
PostgreSQL database instead. Targets (issue 21): the environments and history pages
<= 150 ms, an operation's page <= 300 ms. Figures are printed; nothing asserts on them.
"""
import argparse
import http.client
import importlib
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PROJECT)

import sqlalchemy as sa  # noqa: E402

from fab.history import chunks  # noqa: E402
from fab.history.schema import log_chunks, operations, received_bytes, steps  # noqa: E402
from fab.history.engine import writing  # noqa: E402
from fab.history.store import open_url  # noqa: E402

ENVIRONMENTS = {"prod": 8, "prod-eu": 6, "staging": 3, "qa": 2, "canary": 1}
#: (task, weight, log lines weight, steps per host)
TASKS = [
    ("deploy", 55, 10, ["code", "secrets", "shared", "venv", "build", "services", "check", "swap", "restart",
                        "health", "mark"]),
    ("hotfix_deploy", 5, 5, ["fetch", "hotfix", "restart", "health"]),
    ("rollback", 5, 4, ["swap", "restart", "health"]),
    ("restart_services", 10, 3, ["restart", "health"]),
    ("clean_releases", 8, 2, ["cleanup"]),
    ("check", 10, 2, ["check"]),
    ("freeze", 1, 1, []), ("unfreeze", 1, 1, []), ("unlock", 2, 1, []), ("releases", 3, 1, []),
]
OUTCOMES = [("succeeded", 86), ("failed", 9), ("interrupted", 3), ("paused", 1), ("refused", 1)]
PEOPLE = ["alice@laptop", "bob@desk", "carol@ci-runner-3", "dave@laptop", "ci@runner-1", "erin@mbp"]
YEARS = 2
BATCH = 20000


def generate(engine, count, total_lines, seed=21):
    """Fill the store; (seconds, operation rows, step rows, chunk rows)."""
    chooser = random.Random(seed)
    started = time.perf_counter()
    now = time.time()
    span = YEARS * 365 * 86400
    task_names = [t[0] for t in TASKS]
    task_by_name = {t[0]: t for t in TASKS}
    plan = []
    for number in range(count):
        environment = chooser.choices(list(ENVIRONMENTS), weights=[5, 3, 4, 2, 1])[0]
        task = chooser.choices(task_names, weights=[t[1] for t in TASKS])[0]
        outcome = chooser.choices([o for o, _ in OUTCOMES], weights=[w for _, w in OUTCOMES])[0]
        plan.append((number + 1, environment, task, outcome,
                     now - span + span * number / count + chooser.uniform(0, 60)))
    weights = [task_by_name[task][2] * chooser.uniform(0.5, 1.5) for _, _, task, _, _ in plan]
    scale = total_lines / sum(weights)
    line_counts = [max(1, int(weight * scale)) for weight in weights]
    line_counts[-1] += total_lines - sum(line_counts)

    counts = [0, 0, 0]
    pending = {"operations": [], "steps": [], "chunks": [], "received": []}
    releases = {}
    for (operation_id, environment, task, outcome, at), lines in zip(plan, line_counts):
        hosts = [f"web{n}" for n in range(1, ENVIRONMENTS[environment] + 1)]
        last = operation_id == count
        if last:  # the newest operation is a deploy still running on prod
            environment, task, outcome, at = "prod", "deploy", "running", now - 40
        seconds = chooser.uniform(20, 240) if task in ("deploy", "hotfix_deploy") else chooser.uniform(1, 30)
        release = previous = commit = subject = committed = None
        if task in ("deploy", "hotfix_deploy", "rollback"):
            previous = releases.get(environment)
            release = time.strftime("%Y-%m-%d_%H.%M.%S", time.gmtime(at)) if task == "deploy" else previous
            commit = f"{chooser.getrandbits(160):040x}"
            subject = f"Change {operation_id}: {chooser.choice(['fix', 'add', 'speed up', 'log'])} the orders page"
            committed = at - chooser.uniform(600, 3 * 86400)
            if outcome == "succeeded" and release:
                releases[environment] = release
        finished = None if outcome == "running" else at + seconds
        pending["operations"].append(dict(
            id=operation_id, environment=environment, task=task, arguments="{}" if task != "freeze"
            else '{"reason": "incident"}', performer=chooser.choice(PEOPLE), controller="bench", pid=1000,
            hosts="[" + ", ".join(f'"{h}"' for h in hosts) + "]", started_at=at,
            heartbeat_at=now if last else at + seconds, finished_at=finished, outcome=outcome,
            exit_code=None if last else (0 if outcome == "succeeded" else 1), seconds=None if last else seconds,
            error=None if outcome in ("succeeded", "running") else f"step 'check' failed on {hosts[-1]}: exit 1",
            release=release, commit=commit, ref="main" if commit else None, previous_release=previous,
            message=chooser.choice([None, None, "weekly release", "fix for INC-1234"]), commit_time=committed,
            commit_subject=subject, log_lines=lines))
        step_names = task_by_name[task][3]
        for index, host in enumerate(hosts):
            moment = at + index * 0.05
            for step in step_names:
                took = chooser.uniform(0.1, seconds / max(1, len(step_names)))
                pending["steps"].append(dict(
                    operation_id=operation_id, host=host, step=step, started_at=moment, finished_at=moment + took,
                    outcome="ok", note=f"{step} done", seconds=took, output=None))
                moment += took
            if task == "deploy":
                pending["received"].append(dict(operation_id=operation_id, host=host, source="controller",
                                                bytes=chooser.randint(10_000, 5_000_000)))
        first = 1
        while first <= lines:  # a flush every 0.5 s: a few lines, now and then a burst
            size = min(lines - first + 1, chooser.choice((3, 5, 8, 12, 20, 40, 150)))
            text = [f"[{(first + n) * 0.37:6.1f}s] {hosts[(first + n) % len(hosts)]:<8} "
                    f"{step_names[(first + n) % len(step_names)] if step_names else task}: "
                    f"line {first + n} of operation {operation_id} ok" for n in range(size)]
            data, compression = chunks.encode(text)
            pending["chunks"].append(dict(operation_id=operation_id, first_line=first, last_line=first + size - 1,
                                          data=data, compression=compression))
            first += size
        if len(pending["chunks"]) >= BATCH or last:
            counts = flush(engine, pending, counts)
    counts = flush(engine, pending, counts)
    if engine.dialect.name == "postgresql":
        with writing(engine) as connection:
            for table in (operations, steps, received_bytes, log_chunks):
                connection.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                           f"(SELECT max(id) FROM {table.name}))"))
            connection.execute(sa.text("ANALYZE"))
    else:
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
    return time.perf_counter() - started, *counts


def flush(engine, pending, counts):
    with writing(engine) as connection:
        for table, key in ((operations, "operations"), (steps, "steps"), (log_chunks, "chunks"),
                           (received_bytes, "received")):
            if pending[key]:
                connection.execute(table.insert(), pending[key])
    counts = [counts[0] + len(pending["operations"]), counts[1] + len(pending["steps"]),
              counts[2] + len(pending["chunks"])]
    for rows in pending.values():
        rows.clear()
    return counts


def timed(function, runs):
    """(median, p95) milliseconds of `runs` calls (after one warm-up call)."""
    function()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


def show(label, figures, target=None):
    median, p95 = figures
    verdict = "" if target is None else f"target <= {target} ms: {'ok' if p95 <= target else 'OVER'}"
    print(f"  {label:<52} median {median:7.1f} ms  p95 {p95:7.1f} ms  {verdict}")


def measure_reading(url, runs):
    from fab.dashboard import reading

    catalogue = reading.Catalogue([reading.Reader(url, list(ENVIRONMENTS))])
    reader = catalogue.readers[0]
    now = time.time()
    newest_deploy = reader.history({"environment": "prod", "task": "deploy", "outcome": "succeeded"}, limit=1)[0][0]
    running = reader.history({"environment": "prod"}, limit=1)[0][0]
    _, cursor = reader.history({}, limit=50)
    for _ in range(40):  # 40 pages deep
        _, cursor = reader.history({}, cursor, limit=50)
    print(f"reading functions ({runs} runs each):")
    show("environment_summaries (5 environments)", timed(lambda: reader.environment_summaries(now), runs), 150)
    show("history, first page", timed(lambda: reading.history(catalogue, {}), runs), 150)
    show("history, page 41 (keyset cursor)", timed(lambda: reader.history({}, cursor), runs), 150)
    show("history, environment+task+outcome filters",
         timed(lambda: reading.history(catalogue, {"environment": "qa", "task": "rollback", "outcome": "failed"}),
               runs), 150)
    show("history, performer prefix", timed(lambda: reading.history(catalogue, {"performer": "carol"}), runs), 150)
    show("distinct_values (filter menus)", timed(reader.distinct_values, runs), 150)
    show(f"operation (a deploy on {len(newest_deploy['hosts'])} hosts)",
         timed(lambda: reader.operation("prod", newest_deploy["id"], now), runs), 300)
    show("log_after (first 5000 lines of it)", timed(lambda: reader.log_after(newest_deploy["id"]), runs), 300)
    show("log_after (the running deploy, its last lines)",
         timed(lambda: reader.log_after(running["id"], max(0, running_lines(reader, running) - 5)), runs), 300)
    show("operations_in_window (prod, 30 days)",
         timed(lambda: reader.operations_in_window("prod", now - 30 * 86400, now), runs), 150)
    catalogue.close()
    return newest_deploy["id"]


def running_lines(reader, summary):
    return reader.operation(summary["environment"], summary["id"], time.time())["log_lines"]


def measure_http(url, operation_id, runs, workdir):
    try:
        importlib.import_module("fab.dashboard.app")
    except ImportError as error:
        print(f"HTTP: skipped (fab.dashboard.app is not importable here: {error})")
        return
    environments = os.path.join(workdir, "deploy", "environments")  # none: the store says which there are
    os.makedirs(environments, exist_ok=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serve = ("import uvicorn\nfrom fab.dashboard.app import create_app\nfrom fab.dashboard.reading import discover\n"
             f"uvicorn.run(create_app(discover), host='127.0.0.1', port={port}, log_level='warning')\n")
    server = subprocess.Popen([sys.executable, "-c", serve], cwd=workdir, stdin=subprocess.DEVNULL,
                              env={**os.environ, "PYTHONPATH": PROJECT, "FAB_HISTORY_URL": url,
                                   "DEPLOY_DIR": os.path.dirname(environments), "DEPLOY_ENVIRONMENTS": ""})
    try:
        connection = wait_for(port, server)
        print(f"HTTP from uvicorn on 127.0.0.1:{port} ({runs} requests each, one keep-alive connection):")
        for label, path, target in (("/ (environments)", "/", 150), ("/history", "/history", 150),
                                    (f"/operations/prod/{operation_id}", f"/operations/prod/{operation_id}", 300),
                                    ("/api/environments", "/api/environments", 150),
                                    ("/api/history", "/api/history", 150),
                                    ("/delivery?environment=prod&days=30 (no target)",
                                     "/delivery?environment=prod&days=30", None)):
            show(label, timed(lambda: get(connection, path), runs), target)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def get(connection, path):
    connection.request("GET", path)
    answer = connection.getresponse()
    body = answer.read()
    if answer.status != 200:
        raise SystemExit(f"GET {path}: {answer.status} {body[:300]!r}")
    return body


def wait_for(port, server, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the dashboard exited ({server.returncode}) before answering")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            get(connection, "/")
            return connection
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the dashboard did not answer on 127.0.0.1:{port} within {seconds}s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an empty PostgreSQL (or SQLite) store URL; default: a SQLite file in /tmp")
    parser.add_argument("--operations", type=int, default=20_000)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the SQLite store (and reuse it next time)")
    arguments = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="fab-bench-dashboard-")
    path = os.path.join(tempfile.gettempdir(), f"fab-bench-dashboard-{arguments.operations}-{arguments.lines}.sqlite")
    url = arguments.url or f"sqlite:///{path}"
    try:
        if arguments.url or not os.path.exists(path):
            store = open_url(url, "prod")
            seconds, made, step_rows, chunk_rows = generate(store.engine, arguments.operations, arguments.lines)
            store.engine.dispose()
            size = f", {os.path.getsize(path) / 1e6:.0f} MB" if not arguments.url else ""
            print(f"generated {made} operations, {step_rows} steps, {arguments.lines} log lines in {chunk_rows} "
                  f"chunks in {seconds:.1f}s{size}")
        else:
            print(f"reusing {path}")
        operation_id = measure_reading(url, arguments.runs)
        measure_http(url, operation_id, arguments.runs, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if not arguments.keep and not arguments.url:
            for leftover in (path, f"{path}-wal", f"{path}-shm"):
                if os.path.exists(leftover):
                    os.remove(leftover)


if __name__ == "__main__":
    main()

"""The dashboard's web app over a constructed SQLite store (tests/dashboard_store.py),
through Starlette's test client: pages and their JSON twins, escaping, secrets, errors,
and the log stream. Security headers, methods, the token and starting: test_dashboard_security.py."""
import json
import os
import re
import sqlite3
import time

import pytest
from markupsafe import escape

from fab.dashboard import pages
from fab.history.store import open_store
from fab.secrets import MASK
import dashboard_store as fixture
from dashboard_store import ENVIRONMENT, HOSTILE, HOSTILE_ENVIRONMENT, SECRET, client_for, every_address, every_answer


# --- pages and their JSON twins ------------------------------------------------


def test_every_page_and_its_json_twin_answer(client, ids):
    for page, api in every_address(ids):
        shown, data = client.get(page), client.get(api)
        assert shown.status_code == 200, page
        assert shown.headers["content-type"].startswith("text/html")
        assert data.status_code == 200, api
        assert data.headers["content-type"] == "application/json"


def test_environments_page_shows_what_its_twin_says(client, ids):
    data = client.get("/api/environments").json()
    page = client.get("/").text
    assert [env["environment"] for env in data["environments"]] == sorted([ENVIRONMENT, HOSTILE_ENVIRONMENT])
    assert 'table id="environments"' in page
    staging = next(env for env in data["environments"] if env["environment"] == ENVIRONMENT)
    assert staging["live"]["release"] == "2026-12-04_10.00.00"  # the rollback's: the last good one
    row = row_of(page, "data-environment", ENVIRONMENT)
    assert staging["live"]["release"] in cell(row, "release")
    assert staging["last"]["outcome"] in cell(row, "outcome")
    assert fixture.COMMIT[:12] in cell(row, "commit")
    assert staging["frozen"] and staging["running"] is None  # the interrupted one runs no more
    assert 'class="live"' not in row


def test_history_page_lists_the_operations_of_its_twin(client, ids):
    data = client.get("/api/history").json()
    page = client.get("/history").text
    assert [op["id"] for op in data["operations"]] == sorted(ids.values(), reverse=True)
    assert re.findall(r'data-operation="(\d+)"', page) == [str(op["id"]) for op in data["operations"]]
    interrupted = next(op for op in data["operations"] if op["id"] == ids["interrupted"])
    assert interrupted["outcome"] == "interrupted"
    assert interrupted["started_at"].endswith("+00:00") and isinstance(interrupted["started_at_epoch"], float)
    row = row_of(page, "data-operation", str(ids["failed"]))
    assert escape(f"why: {HOSTILE}") in cell(row, "message")


def test_history_filters_and_pages(client, ids):
    data = client.get("/api/history", params={"environment": ENVIRONMENT, "task": "deploy"}).json()
    assert {op["id"] for op in data["operations"]} == {ids["deploy"], ids["failed"], ids["interrupted"]}
    assert data["filters"] == {"environment": ENVIRONMENT, "task": "deploy", "outcome": None, "performer": None}
    assert client.get("/api/history", params={"outcome": "failed"}).json()["operations"][0]["id"] == ids["failed"]
    assert client.get("/api/history", params={"environment": "nowhere"}).json()["operations"] == []
    assert "deploy" in data["choices"]["task"]
    by_person = client.get("/api/history", params={"performer": HOSTILE}).json()["operations"]  # "alice" for alice@laptop
    assert len(by_person) == len(ids)
    assert f'value="{escape(HOSTILE)}"' in client.get("/history", params={"performer": HOSTILE}).text


def test_operation_page_shows_its_log_steps_and_timeline(client, ids):
    address = f"/operations/{ENVIRONMENT}/{ids['deploy']}"
    data = client.get("/api" + address).json()
    page = client.get(address).text
    assert data["log_lines"] == 3 and len(re.findall(r'<span class="line" data-n="\d+">', page)) == 3
    assert 'id="steps"' in page and '<div id="timeline"><svg' in page
    assert f'id="status" data-outcome="{data["outcome"]}"' in page
    assert [step["host"] for step in data["steps"]] == ["web1", "web1", "web2", "web2"]
    assert 'data-follow="yes"' not in page  # finished, and every line is on the page
    svg = client.get(address + "/timeline.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml") and 'class="timeline"' in svg.text


def test_delivery_page_shows_the_figures_of_its_twin(client):
    data = client.get("/api/delivery", params={"environment": ENVIRONMENT, "days": 7}).json()
    page = client.get("/delivery", params={"environment": ENVIRONMENT, "days": 7}).text
    figures = data["figures"]
    assert data["days"] == 7 and figures["deploys"] >= 2
    assert f'<dd id="deploys-per-day">{figures["deploys_per_day"]:.2f}</dd>' in page
    assert f'<dd id="change-failure-rate">{pages.percent(figures["change_failure_rate"])}' in page
    for name in ("time-to-restore", "lead-time"):
        assert f'<dd id="{name}">' in page


@pytest.mark.parametrize("days", ["0", "abc", "99999", "-3", "²", "1e3"])
def test_delivery_refuses_a_bad_window(client, days):
    assert client.get("/delivery", params={"days": days}).status_code == 400
    answer = client.get("/api/delivery", params={"days": days})
    assert answer.status_code == 400 and "days" in answer.json()["error"]


@pytest.mark.parametrize("address", ["/operations/nowhere/1", "/api/operations/nowhere/1",
                                     f"/operations/{ENVIRONMENT}/999999", "/operations/nowhere/1/log",
                                     "/operations/nowhere/1/timeline.svg", "/no/such/page",
                                     f"/operations/{ENVIRONMENT}/abc", f"/operations/{ENVIRONMENT}/{10 ** 30}",
                                     f"/api/operations/{ENVIRONMENT}/{10 ** 30}/log"])
def test_an_unknown_address_is_a_404_not_a_traceback(client, address):
    answer = client.get(address)
    assert answer.status_code == 404
    assert "Traceback" not in answer.text


def test_a_bad_history_cursor_is_a_400(client):
    assert client.get("/history", params={"before": "not-a-cursor"}).status_code == 400
    assert "before" in client.get("/api/history", params={"before": "not-a-cursor"}).json()["error"]


def test_a_store_that_cannot_be_read_is_a_503_in_one_line(tmp_path, monkeypatch):
    url, ids = fixture.build(tmp_path)
    (tmp_path / "deploy" / "environments").mkdir(parents=True)
    monkeypatch.setenv("FAB_HISTORY_URL", url)
    monkeypatch.setenv("DEPLOY_DIR", str(tmp_path / "deploy"))
    with client_for(dict(os.environ)) as client:
        assert client.get("/").status_code == 200  # the store is open
        with sqlite3.connect(tmp_path / "history.sqlite") as database:  # then someone breaks it
            database.execute("ALTER TABLE fab_operations RENAME TO gone")
        for address, kind in (("/", "text/html"), ("/api/history", "application/json")):
            answer = client.get(address)
            assert answer.status_code == 503 and answer.headers["content-type"].startswith(kind)
            assert "history store cannot be read" in answer.text and "Traceback" not in answer.text


# --- hostile text and secrets ----------------------------------------------------


def test_hostile_text_is_only_ever_shown_escaped(client, ids):
    for address, answer in every_answer(client, ids):
        if answer.headers["content-type"].startswith(("text/html", "image/svg+xml")):
            assert "<script>alert" not in answer.text, address
            assert '"onload=' not in answer.text, address
            assert "<b>" not in answer.text, address
    page = client.get(f"/operations/{ENVIRONMENT}/{ids['failed']}").text
    for text in (f"why: {HOSTILE}", f"migrate failed on web2: {HOSTILE}", f"Traceback {HOSTILE}",
                 f"{HOSTILE}@laptop", f"Fix {HOSTILE}"):  # message, error, host output, performer, subject
        assert escape(text) in page, text
    assert escape(HOSTILE_ENVIRONMENT) in client.get("/").text


def test_a_secret_the_store_holds_masked_stays_masked(client, ids):
    for address, answer in every_answer(client, ids):
        assert SECRET not in answer.text, address
    log = client.get(f"/api/operations/{ENVIRONMENT}/{ids['deploy']}/log").json()
    assert f"password {MASK}" in [line["text"] for line in log["lines"]]


# --- the log stream ----------------------------------------------------------------


def events_of(text):
    """[(event, id, data)] of a Server-Sent Events stream."""
    found = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        found.append((fields.get("event"), fields.get("id"), json.loads(fields.get("data", "null"))))
    return found


def test_the_stream_gives_the_lines_then_end(client, ids):
    answer = client.get(f"/operations/{ENVIRONMENT}/{ids['deploy']}/log")
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert events_of(answer.text) == [
        ("line", "1", {"n": 1, "text": f"deploy {HOSTILE}"}), ("line", "2", {"n": 2, "text": f"password {MASK}"}),
        ("line", "3", {"n": 3, "text": "done"}), ("end", None, {})]


def test_the_stream_resumes_after_the_last_event_id(client, ids):
    address = f"/operations/{ENVIRONMENT}/{ids['deploy']}/log"
    resumed = events_of(client.get(address, headers={"last-event-id": "2"}).text)
    assert resumed == [("line", "3", {"n": 3, "text": "done"}), ("end", None, {})]
    assert events_of(client.get(address + "?after=3").text) == [("end", None, {})]


def test_the_stream_of_an_operation_whose_holder_is_gone_ends(client, ids):
    events = events_of(client.get(f"/operations/{ENVIRONMENT}/{ids['interrupted']}/log").text)
    assert [event for event, _id, _data in events] == ["line", "line", "end"]


def test_a_running_operation_is_followed_live_until_it_ends(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/history.sqlite"
    history = open_store(url, "production", retry=True)
    running = fixture.operation(history, "production", "deploy", time.time(), None, "running", release="r1",
                                log=["one", "two"])
    (tmp_path / "deploy" / "environments").mkdir(parents=True)
    for name, value in {"FAB_HISTORY_URL": url, "DEPLOY_DIR": str(tmp_path / "deploy")}.items():
        monkeypatch.setenv(name, value)
    with client_for(dict(os.environ)) as client:
        environments = client.get("/").text
        assert '<span class="live">' in cell(row_of(environments, "data-environment", "production"), "state")
        assert f'data-running="production:{running}"' in environments  # live.js reloads when it changes
        page = client.get(f"/operations/production/{running}").text
        assert 'data-follow="yes"' in page and 'data-after="2"' in page
        received = []
        with client.stream("GET", f"/operations/production/{running}/log?after=1") as answer:
            for line in answer.iter_lines():
                received.append(line)
                if line == "id: 2":  # the stream waits for more: the deploy goes on, then ends
                    history.write_progress(running, 3, ["three"], [], {},
                                         {"outcome": "succeeded", "finished_at": time.time(), "seconds": 1.0})
        assert events_of("\n".join(received)) == [
            ("line", "2", {"n": 2, "text": "two"}), ("line", "3", {"n": 3, "text": "three"}), ("end", None, {})]


# --- pure parts ---------------------------------------------------------------------


def test_times_read_as_iso_with_epochs_where_computed():
    shown = pages.with_iso_times({"started_at": 0.0, "heartbeat_at": 60.0, "finished_at": None,
                                  "steps": [{"started_at": 1.5, "host": "web1"}], "seconds": 3.0})
    assert shown == {"started_at": "1970-01-01T00:00:00+00:00", "started_at_epoch": 0.0,
                     "heartbeat_at": "1970-01-01T00:01:00+00:00", "finished_at": None, "finished_at_epoch": None,
                     "steps": [{"started_at": "1970-01-01T00:00:01+00:00", "started_at_epoch": 1.5, "host": "web1"}],
                     "seconds": 3.0}


@pytest.mark.parametrize("last_event_id, after, expected", [
    (None, None, 0), ("7", None, 7), (None, "5", 5), ("7", "5", 7), ("x", "5", 5), ("-1", None, 0), ("²", None, 0)])
def test_where_a_stream_resumes(last_event_id, after, expected):
    assert pages.resume_after(last_event_id, after) == expected


# --- helpers ------------------------------------------------------------------------


def row_of(page, attribute, value):
    match = re.search(rf'<tr {attribute}="{re.escape(escape(value))}">(.*?)</tr>', page, re.S)
    assert match, (attribute, value)
    return match.group(1)


def cell(row, name):
    match = re.search(rf'<td class="{name}[^"]*">(.*?)</td>', row, re.S)
    assert match, name
    return match.group(1)

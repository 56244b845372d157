"""Gates (fab.gates): the JSON path, the threshold, rounds over a watch window on a
fake clock, and real HTTP and command gates on loopback; and the health probe's
consecutive server errors (fab/remote/probe.py) against a real local server."""
import contextlib
import http.server
import json
import subprocess
import sys
import threading

import pytest
from hypothesis import given, strategies as st
from pydantic import ValidationError

from fab import gates
from fab.hooks import HookContext
from fab.settings.rollout import CommandGate, HttpGate, Rollout
from fab.shell import REMOTE_SCRIPTS

PROMETHEUS = {"status": "success", "data": {"resultType": "vector",
                                            "result": [{"metric": {}, "value": [1733500000.1, "0.002"]}]}}


@pytest.mark.parametrize("path, expected", [
    ("data.result.0.value.1", "0.002"),
    ("data.result.-1.value.0", 1733500000.1),
    ("status", "success"),
])
def test_a_json_path_walks_keys_and_list_indexes(path, expected):
    assert gates.value_at(PROMETHEUS, path) == expected


@pytest.mark.parametrize("path, where", [
    ("data.result.1.value", "data.result.1"),
    ("data.nothing", "data.nothing"),
    ("status.0", "status.0"),
    ("data.result.x", "data.result.x"),
])
def test_a_json_path_that_leads_nowhere_says_where_it_stops(path, where):
    with pytest.raises(gates.NotFound, match=f"nothing at {where}$"):
        gates.value_at(PROMETHEUS, path)


def prometheus(rate):
    return json.dumps({"data": {"result": [{"value": [0, str(rate)]}]}})


@pytest.mark.parametrize("gate, status, body, failure", [
    (HttpGate(http="http://m/q"), 200, "", None),
    (HttpGate(http="http://m/q"), 503, "", "answered HTTP 503, expected 200"),
    (HttpGate(http="http://m/q", status=204), 204, "", None),
    (HttpGate(http="http://m/q", json_path="data.result.0.value.1", max=0.01), 200, prometheus(0.002), None),
    (HttpGate(http="http://m/q", json_path="data.result.0.value.1", max=0.01), 200, prometheus(0.01), None),
    (HttpGate(http="http://m/q", json_path="data.result.0.value.1", max=0.01), 200, prometheus(0.2),
     "data.result.0.value.1 = 0.2, above the max 0.01"),
    (HttpGate(http="http://m/q", json_path="data.result.0.value.1", min=100), 200, prometheus(99),
     "data.result.0.value.1 = 99, below the min 100"),
    (HttpGate(http="http://m/q", json_path="data.result.0.value.1", max=1), 200, prometheus("NaN"),
     "data.result.0.value.1 is NaN"),
    (HttpGate(http="http://m/q", json_path="data.result.0.value.1", max=1), 200, '{"data": {"result": []}}',
     "nothing at data.result.0 in its answer"),
    (HttpGate(http="http://m/q", json_path="data", max=1), 200, '{"data": "high"}', "no number at data"),
    (HttpGate(http="http://m/q", json_path="data", max=1), 200, "<html>", "no number at data"),
])
def test_an_http_gate_is_judged_on_its_status_then_its_number(gate, status, body, failure):
    found = gates.judge(gate, status, body)
    assert (found is None) if failure is None else (found is not None and failure in found)


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9),
       st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9))
def test_a_threshold_passes_exactly_the_numbers_at_or_under_it(number, limit):
    gate = HttpGate(http="http://m/q", json_path="v", max=limit)
    assert (gates.judge(gate, 200, json.dumps({"v": number})) is None) == (number <= limit)


@pytest.mark.parametrize("settings, message", [
    ({"http": "http://m/q", "max": 1}, "give json_path"),
    ({"http": "http://m/q", "json_path": "a.b"}, "needs a threshold"),
    ({"http": "ftp://m/q"}, "should match pattern"),
    ({"http": "http://m/q", "status": 42}, "greater than or equal to 100"),
])
def test_a_malformed_http_gate_is_refused(settings, message):
    with pytest.raises(ValidationError, match=message):
        HttpGate(**settings)


def test_gates_in_the_rollout_settings_are_told_apart_by_their_keys():
    rollout = Rollout(gates=[{"http": "http://m/q", "json_path": "a", "max": 0.5}, {"command": "true"}])
    assert [type(gate) for gate in rollout.gates] == [HttpGate, CommandGate]
    assert rollout.gate_interval == 5 and not rollout.pause


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def checks_at(clock, answers):
    """A check that records when it ran and answers from `answers` (then passes)."""
    asked = []

    def check():
        asked.append(clock.now)
        return answers.pop(0) if answers else None

    return check, asked


@pytest.mark.parametrize("seconds, interval, rounds_at", [
    (0, 5, [100.0]),  # no window: one round
    (10, 5, [100.0, 105.0, 110.0]),
    (12, 5, [100.0, 105.0, 110.0, 112.0]),  # the last round at the end of the window
    (3, 5, [100.0, 103.0]),
])
def test_the_gates_pass_every_round_over_the_window(seconds, interval, rounds_at):
    clock = FakeClock()
    check, asked = checks_at(clock, [])
    assert gates.watch(seconds, interval, check, clock, clock.sleep) is None
    assert asked == rounds_at


def test_the_first_failing_round_stops_the_watch():
    clock = FakeClock()
    check, asked = checks_at(clock, [None, None, "gate x: above the max"])
    assert gates.watch(60, 5, check, clock, clock.sleep) == "gate x: above the max"
    assert asked == [100.0, 105.0, 110.0]


@given(st.integers(0, 40), st.integers(1, 10), st.integers(0, 20))
def test_a_failure_at_any_round_within_the_window_fails_the_watch(seconds, interval, failing_round):
    clock = FakeClock()
    rounds = 1 + -(-seconds // interval)  # at the start, then every interval up to the end
    check, asked = checks_at(clock, [None] * failing_round + ["failed"])
    found = gates.watch(seconds, interval, check, clock, clock.sleep)
    assert found == ("failed" if failing_round < rounds else None)
    assert clock.now - 100 <= seconds


@contextlib.contextmanager
def served(answer):
    """A threaded HTTP server on loopback answering every GET with `answer()`:
    (status, body); yields its base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            status, body = answer()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Env:
    """What gates.first_failure reads of an environment."""

    def __init__(self, folder, *gate_settings):
        self.rollout = Rollout(gates=list(gate_settings))
        self.folder = str(folder)


CONTEXT = HookContext(environment="prod", task="deploy", performer="me@here", hosts=("web1",), release="r1")


def test_an_http_gate_asks_a_real_server(tmp_path):
    rate = [0.001]
    with served(lambda: (200, prometheus(rate[0]))) as base:
        env = Env(tmp_path, {"http": f"{base}/api/v1/query", "json_path": "data.result.0.value.1", "max": 0.01})
        assert gates.first_failure(env, CONTEXT) is None
        rate[0] = 0.25
        failure = gates.first_failure(env, CONTEXT)
    assert failure == (f"gate {base}/api/v1/query answers 200, data.result.0.value.1 max 0.01: "
                       "data.result.0.value.1 = 0.25, above the max 0.01")


def test_an_http_gate_that_gets_no_answer_fails(tmp_path):
    with served(lambda: (500, "{}")) as base:
        assert "answered HTTP 500, expected 200" in gates.first_failure(Env(tmp_path, {"http": base}), CONTEXT)
    failure = gates.first_failure(Env(tmp_path, {"http": base, "timeout": 1}), CONTEXT)  # closed now
    assert failure.startswith(f"gate {base} answers 200: no answer:")


def test_a_command_gate_runs_in_the_deploy_folder_with_the_hooks_context(tmp_path):
    (tmp_path / "ok").write_text("")
    passing = Env(tmp_path, {"command": 'test -e ok && test "$DEPLOY_RELEASE" = r1 && test "$DEPLOY_HOOK" = gate'})
    assert gates.first_failure(passing, CONTEXT) is None
    failing = Env(tmp_path, {"command": "echo too many errors; exit 3"})
    assert gates.first_failure(failing, CONTEXT) == "gate command echo too many errors; exit 3: exited 3: too many errors"
    slow = Env(tmp_path, {"command": "sleep 5", "timeout": 0.3})
    assert gates.first_failure(slow, CONTEXT) == "gate command sleep 5: took longer than 0.3s: stopped"


# --- the health probe's server errors in a row ----------------------------------------


def run_probe(base, **check):
    port = int(base.rsplit(":", 1)[1])
    checks = [{"service": "web", "address": "127.0.0.1", "port": port, "path": "/health", "expect_body": None,
               "version_path": None, "timeout": 20, "max_server_errors": 3, **check}]
    return subprocess.run([sys.executable, f"{REMOTE_SCRIPTS}/probe.py", json.dumps(checks)],
                          capture_output=True, text=True, timeout=60)


def seconds_said(stderr):
    return float(stderr.rsplit("after ", 1)[1].rstrip("s\n"))


def test_a_steady_server_error_fails_after_the_set_number_in_a_row():
    asked = []
    with served(lambda: asked.append(1) or (500, "broken")) as base:
        result = run_probe(base)
    assert result.returncode == 1
    assert f"{base}/health HTTP Error 500: Internal Server Error, 3 times in a row, after" in result.stderr
    assert seconds_said(result.stderr) < 5 and len(asked) == 3  # not the 20 s timeout


def test_a_server_error_between_successes_or_refusals_starts_the_count_again():
    answers = [500, 500, 404, 500, 500, 200]
    with served(lambda: (answers.pop(0), "ok")) as base:
        result = run_probe(base)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("count, error, expected", [
    (0, None, 0),
    (2, None, 0),
    (0, ConnectionRefusedError(111, "refused"), 0),
    (2, ConnectionRefusedError(111, "refused"), 0),
])
def test_only_server_errors_count_in_a_row(count, error, expected):
    from tests.test_parsing import probe_module

    assert probe_module().server_errors_in_a_row(count, error) == expected


@pytest.mark.parametrize("code, expected", [(500, 3), (503, 3), (404, 0), (499, 0)])
def test_http_errors_count_in_a_row_from_500(code, expected):
    import urllib.error

    from tests.test_parsing import probe_module

    error = urllib.error.HTTPError("http://h/health", code, "x", {}, None)
    assert probe_module().server_errors_in_a_row(2, error) == expected


def test_a_refused_connection_waits_out_the_timeout():
    with served(lambda: (200, "")) as base:
        pass  # closed: nothing listens there now
    result = run_probe(base, timeout=1)
    assert result.returncode == 1
    assert "after 1s" in result.stderr and "in a row" not in result.stderr

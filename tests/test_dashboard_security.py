"""The dashboard's safety: the security headers on every answer, no inline script or
style, read-only methods, the token (query, cookie, bearer; constant time), and the
start-up refusals (an exposed bind with no one checking, a port in use)."""
import html
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from fab.dashboard import security, serving
from fab.errors import UsageError
from dashboard_store import ENVIRONMENT, TOKEN, client_for, every_address, every_answer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- security headers and methods --------------------------------------------------


def test_every_answer_carries_the_security_headers(environ, ids):
    with client_for(environ) as client, client_for(environ, token=TOKEN) as guarded:
        answers = [*every_answer(client, ids), ("/static/dashboard.css", client.get("/static/dashboard.css")),
                   ("/static/live.js", client.get("/static/live.js")), ("404", client.get("/nowhere")),
                   ("405", client.post("/")), ("400", client.get("/delivery?days=x")),
                   ("401", guarded.get("/"))]
        for address, answer in answers:
            for name, value in security.SECURITY_HEADERS:
                assert answer.headers.get(name) == value, (address, name)
    assert "'unsafe-inline'" not in dict(security.SECURITY_HEADERS)["content-security-policy"]


def test_pages_have_no_inline_script_or_style(client, ids):
    for address, answer in every_answer(client, ids):
        if answer.headers["content-type"].startswith("text/html"):
            assert re.findall(r"<script(?![^>]*\bsrc=)", answer.text) == [], address
            assert "<style" not in answer.text and " style=" not in answer.text, address
            assert not re.search(r"\son[a-z]+=", answer.text), address


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_no_route_changes_anything(client, ids, method):
    for page, api in every_address(ids):
        for address in (page, api, f"/api/operations/{ENVIRONMENT}/{ids['deploy']}/log", "/static/live.js"):
            answer = client.request(method, address)
            assert answer.status_code == 405, (method, address)
            assert answer.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("host, answered", [
    ("127.0.0.1:8465", True), ("localhost:8465", True), ("[::1]:8465", True), ("127.0.0.1", True),
    ("evil.example:8465", False), ("127.0.0.1.evil.example", False), ("", False), ("0.0.0.0:8465", False)])
def test_on_loopback_only_a_loopback_host_is_answered(environ, host, answered):
    with client_for(environ, local_only=True) as client:
        answer = client.get("/api/environments", headers={"host": host})
    assert (answer.status_code == 200) is answered, answer.text
    assert answer.headers["x-content-type-options"] == "nosniff"


# --- the token ---------------------------------------------------------------------


def test_without_the_token_nothing_answers(guarded, ids):
    for address in ("/", "/api/environments", f"/operations/{ENVIRONMENT}/{ids['deploy']}/log", "/static/live.js"):
        answer = guarded.get(address)
        assert answer.status_code == 401 and answer.text.count("\n") == 1, address
    assert guarded.get("/", headers={"authorization": "Bearer wrong-token-wrong-token"}).status_code == 401
    guarded.cookies.set(security.COOKIE, "wrong")
    assert guarded.get("/").status_code == 401


def test_a_wrong_token_in_the_address_is_refused(guarded):
    answer = guarded.get("/?token=not-the-token-at-all", follow_redirects=False)
    assert answer.status_code == 401 and "set-cookie" not in answer.headers


def refresh_target(page):
    """Where a page that refreshes itself sends the browser."""
    found = re.search(r'<meta http-equiv="refresh" content="0; url=([^"]*)">', page)
    return found and html.unescape(found.group(1))


def test_the_token_in_the_address_becomes_a_cookie(guarded):
    answer = guarded.get(f"/history?task=deploy&token={TOKEN}", follow_redirects=False)
    assert answer.status_code == 200 and refresh_target(answer.text) == "/history?task=deploy"  # the token leaves
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{security.COOKIE}={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    assert answer.headers["cache-control"] == "no-store"
    assert guarded.get("/history?task=deploy").status_code == 200  # the client kept the cookie
    elsewhere = guarded.get(f"/operations/%C3%A9t%C3%A9%20x%22/1?a=%3Cb%3E&token={TOKEN}")
    assert refresh_target(elsewhere.text) == "/operations/%C3%A9t%C3%A9%20x%22/1?a=%3Cb%3E"


def test_the_api_takes_a_bearer_token(guarded):
    answer = guarded.get("/api/environments", headers={"authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and answer.json()["environments"]


@pytest.mark.parametrize("behind_proxy, forwarded, secure", [
    (False, "https", False),  # anyone may send the header: without a proxy it means nothing
    (True, "https", True),
    (True, "http", False),
])
def test_the_cookie_is_secure_when_the_browser_used_https(environ, behind_proxy, forwarded, secure):
    with client_for(environ, token=TOKEN, behind_proxy=behind_proxy) as client:
        answer = client.get(f"/?token={TOKEN}", headers={"x-forwarded-proto": forwarded}, follow_redirects=False)
    assert ("; Secure" in answer.headers["set-cookie"]) is secure


def test_the_token_is_compared_in_constant_time(monkeypatch):
    compared = []
    real = security.hmac.compare_digest
    monkeypatch.setattr(security.hmac, "compare_digest", lambda a, b: compared.append(1) or real(a, b))
    assert security.token_matches(TOKEN, TOKEN) and not security.token_matches("x" * 30, TOKEN)
    assert len(compared) == 2


# --- start-up checks ----------------------------------------------------------------


@pytest.mark.parametrize("bind, token, behind_proxy, refused", [
    ("127.0.0.1", None, False, False),
    ("127.0.0.9", None, False, False),
    ("::1", None, False, False),
    ("localhost", None, False, False),
    ("0.0.0.0", None, False, True),
    ("::", None, False, True),
    ("192.0.2.10", None, False, True),
    ("dashboard.example", None, False, True),
    ("0.0.0.0", TOKEN, False, False),
    ("0.0.0.0", None, True, False),
    ("127.0.0.1", "short", False, True),  # a token too short to keep a network out
    ("127.0.0.1", "spaces in the token, x", False, True),
])
def test_who_may_read_it_beyond_loopback(bind, token, behind_proxy, refused):
    if refused:
        with pytest.raises(UsageError):
            security.check_exposure(bind, token, behind_proxy)
    else:
        security.check_exposure(bind, token, behind_proxy)


def test_a_port_in_use_is_one_line():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        with pytest.raises(UsageError, match="in use"):
            serving.listening_socket("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()


@pytest.mark.parametrize("command", [
    [".venv/bin/fab", "dashboard:bind=0.0.0.0"],
    [sys.executable, "-m", "fab.dashboard", "--bind", "0.0.0.0"],
])
def test_an_exposed_bind_without_a_token_refuses_to_start(command):
    environ = {key: value for key, value in os.environ.items() if key != security.TOKEN_VARIABLE}
    result = subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "FAB_DASHBOARD_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_fab_dashboard_serves_until_interrupted(environ):
    """`fab dashboard:port=N` answers on 127.0.0.1, and Ctrl-C ends it cleanly."""
    port = free_port()
    server = subprocess.Popen([".venv/bin/fab", f"dashboard:port={port}"], cwd=ROOT, env=environ,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/environments", timeout=2) as answer:
                    assert answer.status == 200 and ENVIRONMENT in json.load(answer)["environments"][0]["environment"]
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.communicate(timeout=5)
                time.sleep(0.1)
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=20)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0, err
    assert f"http://127.0.0.1:{port}/" in out and "Traceback" not in err


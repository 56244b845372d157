"""`fab <env> check`, the preflight: the judgement (pure), the facts script run here
on this machine and parsed, and on the real fleet a code root supervisord does not
include and a port another process holds, each one line naming its fix."""
import json
import os
import socket
import subprocess
import textwrap
import time

import pytest

from conftest import assert_ok
from fab import preflight, shell
from fab.operations import preflight as facts_of
from fab.operations.preflight import CheckFacts, Read

# --- the pure parts -----------------------------------------------------------------


@pytest.mark.parametrize("command, expected", [
    ("supervisorctl", None),
    ("/opt/bin/supervisorctl -c ~/supervisor/supervisord.conf", "~/supervisor/supervisord.conf"),
    ("supervisorctl --configuration /etc/s.conf", "/etc/s.conf"),
    ("supervisorctl --configuration=/etc/s.conf", "/etc/s.conf"),
    ("supervisorctl -c/etc/s.conf", "/etc/s.conf"),
    ("sudo supervisorctl -s unix:///x.sock", None),
    ("supervisorctl -c 'unclosed", None),
])
def test_supervisor_config_file_read_from_the_command(command, expected):
    assert facts_of.supervisor_config_file(command) == expected


def read(now=1000.0, **facts):
    return Read(CheckFacts(clock=now, **facts), now - 0.05, now + 0.05)


def test_a_ready_host_has_no_problem(env):
    assert preflight.problems(env, "web1", read(python="3.11.2", venv_tool="virtualenv", git="git 2.39",
                                                 supervisor_config="/s.conf", included=True, free_kib=10**7,
                                                 release_kib=5000, writable=True)) == []


@pytest.mark.parametrize("facts, check, words", [
    ({"python_error": "No such file"}, "python", ["does not run (No such file)", "python:"]),
    ({"venv_tool_error": "not found"}, "venv", ["virtualenv", "uv:"]),
    ({"git": ""}, "git", ["git is not installed", "install git"]),
    ({"supervisord_down": "unix:///x.sock no such file"}, "supervisord", ["does not answer", "start supervisord"]),
    ({"supervisor_config": "/home/d/s.conf", "included": False}, "include",
     ["does not include /srv/app/current/services/supervisor/*.conf", "[include] in /home/d/s.conf",
      "supervisorctl update"]),
    ({"supervisor_config": ""}, "include", ["config file is not found", "-c <file>"]),
    ({"writable": False, "writable_dir": "/srv"}, "code_root", ["cannot write /srv", "create /srv/app"]),
    ({"free_kib": 50 * 1024, "release_kib": 80 * 1024}, "disk",
     ["50 MiB free", "current release takes 80 MiB", "clean_releases"]),
    ({"free_kib": 50 * 1024}, "disk", ["no release yet, a deploy needs 100 MiB"]),
    ({"proxy_dir_writable": False, "proxy_dir": "/srv/app/shared"}, "proxy", ["proxy's config directory"]),
    ({"ports": {8000: ("other", "42", "python3 -m http.server")}}, "port",
     ["port 8000 of web is held by pid 42 (python3 -m http.server)", "another port"]),
    ({"ports": {8000: ("other", None, "(a process of another user)")}}, "port", ["held by a process of another user"]),
])
def test_each_problem_is_one_line_with_its_fix(env, facts, check, words):
    env = env.model_copy(update={"code_root": "/srv/app"})
    found = preflight.problems(env, "web1", read(**facts))
    assert [problem.check for problem in found] == [check]
    line = found[0].line()
    assert line.startswith("web1: ") and "; fix: " in line and "\n" not in line
    for word in words:
        assert word in line


def test_a_port_held_by_this_environment_is_no_problem(env):
    assert preflight.problems(env, "web1", read(ports={8000: ("ours", "7", "")})) == []


@pytest.mark.parametrize("offset, round_trip, skewed", [
    (0, 0.1, False), (4.9, 0.1, False), (-7, 0.1, True), (7, 0.1, True), (7, 6.0, False),
])
def test_clock_skew_beyond_the_round_trip(env, offset, round_trip, skewed):
    facts = CheckFacts(clock=1000.0 + offset)
    found = preflight.problems(env, "web1", Read(facts, 1000.0 - round_trip / 2, 1000.0 + round_trip / 2))
    assert [problem.check for problem in found] == (["clock"] if skewed else [])
    if skewed:
        assert ("ahead of" if offset > 0 else "behind") in found[0].problem


def test_the_verdict_names_an_unreachable_host_first_in_fleet_order(env):
    found = preflight.verdict(env, {"web2": read(git="")}, {"web1": "cannot connect: refused"})
    assert [(problem.host, problem.check) for problem in found] == [("web1", "ssh"), ("web2", "git")]
    assert "ssh web1" in found[0].fix


@pytest.mark.parametrize("services, address, expected", [
    ({}, "10.0.0.1", []),
])
def test_listening_pairs_without_services(services, address, expected):
    assert facts_of.listening(services, address) == expected


def test_listening_pairs_honour_bind(env):
    web = env.services["web"]
    assert facts_of.listening({"web": web}, "10.0.0.1") == [f"{web.port} 10.0.0.1"]
    for bind, where in (("0.0.0.0:9000", ""), ("127.0.0.5:9000", "127.0.0.5"), ("[::]:9000", "")):
        assert facts_of.listening({"web": web.model_copy(update={"bind": bind})}, "h") == [f"{web.port} {where}"]
    assert facts_of.listening({"web": web.model_copy(update={"bind": "unix:/run/x.sock"})}, "h") == []


def test_a_check_only_looks_and_is_no_operation_of_the_history():
    from fab.runner import records

    assert not records("check", {}) and records("push_secrets", {})


# --- the facts script, run here ------------------------------------------------------


def run_check_script(*args):
    result = subprocess.run(["bash", "-c", shell.remote_script("check"), "check", *args],
                            capture_output=True, text=True, timeout=60, check=True)
    return result.stdout


def test_the_facts_script_reads_a_host_and_parses(tmp_path):
    code_root = tmp_path / "www" / "app"
    conf = tmp_path / "supervisord.conf"
    conf.write_text(textwrap.dedent(f"""\
        [supervisord]
        logfile=x
        [include]
        files = other/*.conf
            {tmp_path}/www/*/current/services/supervisor/*.conf
        [program:x]
        command=true
        """))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        output = run_check_script(
            str(code_root), "python3", "python3 -c 'import sys'", "",
            "echo 123 #", str(conf), f"{code_root}/current/services/supervisor/*.conf", f"{code_root}/shared/proxy",
            f"{code_root}/current", f"{code_root}/current/python_env", f"{code_root}/venvs", f"{port} 127.0.0.1")
        elsewhere = run_check_script(str(code_root), *[""] * 10, f"{port} 127.0.0.99")
    assert facts_of.parse(elsewhere).ports[port][0] == "free"  # a listener on another address
    facts = facts_of.parse(output)
    assert facts.python and facts.python_error is None
    assert facts.venv_tool == "virtualenv" and facts.git
    assert facts.supervisord_down is None and facts.supervisor_config == str(conf) and facts.included is True
    assert facts.writable is True and facts.writable_dir == str(tmp_path)
    assert facts.proxy_dir_writable is True and facts.free_kib > 0 and facts.release_kib == 0
    assert abs(facts.clock - time.time()) < 30
    # This test's own socket: not under the code root, so another program's.
    state, pid, said = facts.ports[port]
    assert (state, pid) == ("other", str(os.getpid())) and "python" in said
    assert not os.path.exists(code_root)  # it writes nothing


def test_the_facts_script_says_what_is_missing(tmp_path):
    conf = tmp_path / "supervisord.conf"
    conf.write_text("[include]\nfiles = /elsewhere/*/current/services/supervisor/*.conf\n")
    output = run_check_script(
        str(tmp_path / "app"), "/no/python", "/no/virtualenv", "", "exit 2; #", f"/no/such.conf:{conf}",
        f"{tmp_path}/app/current/services/supervisor/*.conf", "", f"{tmp_path}/app/current", "", "")
    facts = facts_of.parse(output)
    assert facts.python_error and facts.venv_tool_error and facts.git is not None  # git: this machine's
    assert facts.supervisord_down is not None and facts.included is False
    assert facts.proxy_dir_writable is None and facts.ports == {}


def test_parse_ignores_what_the_script_never_prints():
    facts = facts_of.parse("clock soon\nport x other 1 y\nport 80 stolen 1 y\ndisk many 12\nnoise\n"
                           "git-missing\nsupervisor-config-missing\nwritable no /srv\nport 81 other - (a user)\n")
    assert facts.clock is None and facts.free_kib is None and facts.release_kib == 12
    assert facts.git == "" and facts.supervisor_config == "" and (facts.writable, facts.writable_dir) == (False, "/srv")
    assert facts.ports == {81: ("other", None, "(a user)")}


def test_the_current_release_is_measured_with_its_virtualenv(tmp_path):
    root = tmp_path / "app"
    (root / "releases" / "r1").mkdir(parents=True)
    (root / "releases" / "r1" / "code.py").write_bytes(b"x" * 300_000)
    (root / "venvs" / "k1").mkdir(parents=True)
    (root / "venvs" / "k1" / "lib.so").write_bytes(b"y" * 600_000)
    (root / "releases" / "r1" / "python_env").symlink_to(root / "venvs" / "k1")
    (root / "current").symlink_to("releases/r1")
    output = run_check_script(str(root), "", "", "", "", "", "", "", f"{root}/current",
                              f"{root}/current/python_env", f"{root}/venvs")
    assert 850 < facts_of.parse(output).release_kib < 1200


@pytest.mark.parametrize("glob, included", [
    ("*/current/services/supervisor/*.conf", True),  # relative to the config's directory
    ("%(here)s/www/*/current/services/supervisor/*.conf", True),
    ("*.conf", False),  # `*` crosses no `/`
    ("www/app/current/services/supervisor/web.conf", False),
])
def test_include_globs_are_matched_as_supervisord_does(tmp_path, glob, included):
    conf = tmp_path / "supervisord.conf"
    conf.write_text(f"[include]\nfiles={glob}\n")
    target = "www" if "www" in glob else ""
    root = tmp_path / target / "app" if target else tmp_path / "app"
    output = run_check_script(str(root), "", "", "", "echo 1 #", str(conf),
                              f"{root}/current/services/supervisor/*.conf", "", "", "", "")
    assert facts_of.parse(output).included is included


def test_the_check_script_passes_shellcheck():
    path = os.path.join(shell.REMOTE_SCRIPTS, "check.sh")
    subprocess.run(["shellcheck", "-s", "bash", path], check=True)


# --- on the fleet ------------------------------------------------------------------------


def test_check_names_the_file_to_include_and_a_port_another_process_holds(deploy_env):
    env = deploy_env
    ready = env.fab("check")
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert "no problem found" in ready.stdout

    # A code root supervisord does not include, and web2's port taken by a stranger.
    env.write_config(code_root="~/elsewhere/fabtest")
    env.remote("web2", f"nohup python3 -m http.server {env.port} --bind {env.spec.hosts['web2']} "
                       ">/dev/null 2>&1 & echo $! > ~/stranger.pid")
    try:
        for _ in range(100):
            if f":{env.port}" in env.remote("web2", f"ss -Hltn 'sport = :{env.port}'", check=False):
                break
        result = env.fab("check", environ={"FAB_JSON": "-"})
        plan = env.fab("deploy:plan=yes", environ={"FAB_JSON": "-"})
    finally:
        env.remote("web2", "kill $(cat ~/stranger.pid); rm -f ~/stranger.pid", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    problems = {(p["host"], p["check"]): p for p in doc["problems"]}
    conf = os.path.join(env.spec.home("web1"), "supervisor", "supervisord.conf")
    for host in ("web1", "web2", "pillow1"):
        include = problems[(host, "include")]
        assert "elsewhere/fabtest/current/services/supervisor/*.conf" in include["problem"]
        assert os.path.join(env.spec.home(host), "supervisor", "supervisord.conf") in include["fix"]
    assert conf in problems[("web1", "include")]["fix"]
    port = problems[("web2", "port")]
    assert f"port {env.port} of web is held by pid" in port["problem"] and "http.server" in port["problem"]
    assert ("web1", "port") not in problems
    assert doc["outcome"] == "failed" and doc["exit_code"] == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("problem: ")]
    assert len(lines) == len(doc["problems"])
    # The plan shows the same problems, read in its own round trip per host.
    assert json.loads(assert_ok(plan).stdout)["plan"]["problems"] == doc["problems"]
    assert "problem: web2: port" in plan.stderr


def test_a_deployed_fleet_is_ready_its_ports_held_by_its_own_programs(deployed_env):
    env = deployed_env.env
    result = assert_ok(env.fab("check"))
    assert "ready: 3 hosts checked" in result.stdout and "problem" not in result.stdout.replace("no problem", "")
    plan = assert_ok(env.fab("deploy:plan=yes", environ={"FAB_JSON": "-"}))
    assert json.loads(plan.stdout)["plan"]["problems"] == []

"""fab/remote/supervisor.sh, portservice.sh and upstream.sh run here (bash, ss, no SSH):
a fake supervisorctl answers the supervisor script; a small TCP server with a worker
plays a port service and a proxy."""
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import types

import pytest

from fab import steps
from fab.config import load_environment
from fab.operations import portservice, supervisor
from fab.operations import proxy as proxy_ops
from fab.paths import Paths


def run_script(name, *args, cwd=None):
    return subprocess.run(["bash", "-c", portservice.script(name), name, *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=60)


# --- supervisor.sh against a fake supervisorctl -------------------------------------

FAKE_CTL = """\
#!/bin/bash
# A fake supervisorctl: logs its arguments, answers from files beside it.
here=$(dirname "$0")
if [ "$1" = -c ]; then echo "config $2" >> "$here/calls"; shift 2; fi
echo "$*" >> "$here/calls"
case $1 in
  status) cat "$here/status" ;;
  reread) cat "$here/reread" 2>/dev/null || echo "No config updates to processes" ;;
  signal) [ ! -e "$here/signal-fails" ] || { echo "ERROR (not running)"; exit 1; } ;;
  update) [ ! -e "$here/update-fails" ] || { echo "error: <class 'OSError'>" >&2; exit 2; } ;;
esac
"""


class FakeCtl:
    def __init__(self, directory):
        self.directory = directory
        self.path = directory / "supervisorctl"
        self.path.write_text(FAKE_CTL)
        self.path.chmod(0o755)
        self.status()

    def status(self, **states):
        (self.directory / "status").write_text(
            "".join(f"{program:<20} {state:<8} pid 1, uptime 0:00:01\n" for program, state in states.items()))

    def reread(self, text):
        (self.directory / "reread").write_text(text)

    def calls(self):
        path = self.directory / "calls"
        return [line for line in path.read_text().splitlines() if line != "status"] if path.exists() else []


@pytest.fixture
def ctl(tmp_path):
    directory = tmp_path / "ctl"
    directory.mkdir()
    return FakeCtl(directory)


def test_restart_applies_changes_and_restarts_only_what_update_left_alone(ctl, tmp_path):
    ctl.status(p1="RUNNING", p2="RUNNING", p3="RUNNING", other="FATAL")
    ctl.reread("p1: changed\np9: available\np4: disappeared\n")
    heard = tmp_path / "heard"
    items = ["before", "web", f"pwd > {heard}; echo before >> {heard}",
             "restart", "p1", "restart", "p2", "hup", "p3", "keep", "p4", "after", "web", f"echo after >> {heard}"]
    done = run_script("supervisor", "restart", ctl.path, tmp_path, 1, *items)
    assert done.returncode == 1 and "not RUNNING after 1s: p4" in done.stderr  # p4 is not in status
    ctl.status(p1="RUNNING", p2="RUNNING", p3="RUNNING", p4="RUNNING", other="FATAL")
    (ctl.directory / "calls").unlink()
    heard.unlink()
    done = run_script("supervisor", "restart", ctl.path, tmp_path, 5, *items)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "running p1 p2 p3 p4\n"  # stdout carries the result only
    assert ctl.calls() == ["reread", "update", "restart p2", "signal HUP p3"]
    assert heard.read_text().split() == [str(tmp_path), "before", "after"]


def test_the_supervisorctl_command_is_shell_text_with_its_own_words(ctl, tmp_path):
    ctl.status(p1="RUNNING")
    done = run_script("supervisor", "restart", f"{ctl.path} -c ~/'two words.conf'", tmp_path, 5, "keep", "p1")
    assert done.returncode == 0, done.stderr
    assert ctl.calls()[0] == f"config {os.path.expanduser('~')}/two words.conf"


@pytest.mark.parametrize("states,message", [
    ({"p1": "RUNNING", "p2": "FATAL"}, "gave up starting (FATAL): p2"),
    ({"p1": "STARTING", "p2": "BACKOFF"}, "not RUNNING after 1s: p1 p2"),
])
def test_restart_fails_on_a_fatal_program_at_once_or_after_its_timeout(ctl, tmp_path, states, message):
    ctl.status(**states)
    started = time.monotonic()
    done = run_script("supervisor", "restart", ctl.path, tmp_path, 1, "restart", "p1", "restart", "p2")
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1] == message
    assert "pid 1, uptime" in done.stderr  # the status it gave up on, shown with the step
    assert time.monotonic() - started < (1 if "FATAL" in message else 3)


def test_a_program_that_becomes_running_is_waited_for(ctl, tmp_path):
    ctl.status(p1="STARTING")
    waiting = subprocess.Popen(["bash", "-c", portservice.script("supervisor"), "supervisor",
                                "restart", str(ctl.path), str(tmp_path), "10", "keep", "p1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    assert waiting.poll() is None
    ctl.status(p1="RUNNING")
    out, err = waiting.communicate(timeout=10)
    assert waiting.returncode == 0 and out == "running p1\n", err


def test_a_failing_supervisorctl_stops_the_restart_with_its_own_status_and_words(ctl, tmp_path):
    (ctl.directory / "update-fails").touch()
    done = run_script("supervisor", "restart", ctl.path, tmp_path, 5, "restart", "p1")
    assert (done.returncode, done.stdout, done.stderr) == (2, "", "error: <class 'OSError'>\n")
    assert ctl.calls() == ["reread", "update"]


def test_a_failing_hook_stops_the_restart_and_is_named(ctl, tmp_path):
    ctl.status(p1="RUNNING")
    done = run_script("supervisor", "restart", ctl.path, tmp_path, 5,
                      "before", "web", "echo 'restart blocked' >&2; false", "restart", "p1")
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["restart blocked", "before hook of web failed"]
    assert ctl.calls() == []


def test_reload_in_place_signals_without_reread_and_starts_a_stopped_program(ctl, tmp_path):
    done = run_script("supervisor", "reload", ctl.path, tmp_path, "reload", "p1", "", "reload", "p2", free_port())
    assert done.returncode == 0 and done.stdout == "reloaded p1 p2\n", done.stderr
    assert ctl.calls() == ["signal HUP p1", "signal HUP p2"]  # nothing listens on p2's port
    (ctl.directory / "signal-fails").touch()
    (ctl.directory / "calls").unlink()
    done = run_script("supervisor", "reload", ctl.path, tmp_path, "reload", "p1", "")
    assert done.returncode == 0 and ctl.calls() == ["signal HUP p1", "start p1"]


def test_start_waits_until_steady_and_stop_prints_the_status(ctl, tmp_path):
    ctl.status(p1="RUNNING", p2="RUNNING")
    started = time.monotonic()
    done = run_script("supervisor", "start", ctl.path, 5, 1, "p1", "p2")
    assert done.returncode == 0 and done.stdout == "running p1 p2\n", done.stderr
    assert time.monotonic() - started >= 1 and ctl.calls() == ["start p1 p2"]
    ctl.status(p1="STOPPED", p2="EXITED")
    done = run_script("supervisor", "stop", ctl.path, "p1", "p2")
    assert supervisor.parse_status(done.stdout) == {"p1": "STOPPED", "p2": "EXITED"}


# --- a port service: portservice.sh and upstream.sh --------------------------------

# A master that listens and forks a worker sharing its socket (as gunicorn and nginx
# do); SIGHUP is a reload, counted in ./reloads.
SERVER = textwrap.dedent("""
    import os, signal, socket, sys, time
    # Ready for a reload before anything listens: a HUP must never find the default action.
    signal.signal(signal.SIGHUP, lambda *_: open("reloads", "a").write("reload\\n"))
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(sys.argv[1])))
    listener.listen()
    if os.fork() == 0:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        while True:
            time.sleep(1)
    while True:
        time.sleep(1)
""")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def service(tmp_path):
    """(directory, port, the start command); stops what the test started."""
    (tmp_path / "server.py").write_text(SERVER)
    started = []
    port = free_port()
    yield tmp_path, port, f"{sys.executable} server.py {port}", started
    for pid in started:
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)  # the master and its worker (setsid)
        except ProcessLookupError:
            pass


def start_or_reload(directory, port, start, reload="kill -HUP \"$pid\"", before="", after="", timeout=10):
    return run_script("portservice", "svc", directory, directory / "log" / "svc.out", port, timeout, start, "",
                      reload, before, after)


def test_the_port_service_is_started_then_reloaded_by_its_master_pid(service):
    directory, port, start, started = service
    hooks = "echo $PWD >> hooks"
    done = start_or_reload(directory, port, start, before=hooks, after="echo after >> hooks")
    assert done.returncode == 0, done.stderr
    did, pid = done.stdout.split()
    started.append(int(pid))
    assert did == "started"
    deadline = time.monotonic() + 5
    while True:  # the master forks its worker just after it listens
        workers = subprocess.run(["ps", "-o", "pid=", "--ppid", pid], capture_output=True, text=True).stdout.split()
        if workers or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(workers) == 1  # both listen; the pid found is the master's

    done = start_or_reload(directory, port, start, reload='kill -HUP "$pid"; echo "$pid" > reloaded-pid')
    assert (done.returncode, done.stdout) == (0, f"reloaded {pid}\n"), done.stderr
    assert (directory / "reloaded-pid").read_text().strip() == pid
    deadline = time.monotonic() + 5
    reloads = directory / "reloads"
    # The handler creates the file, then writes: wait for the line, not for the file.
    while not (reloads.exists() and reloads.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert reloads.read_text() == "reload\n"

    done = start_or_reload(directory, port, start, reload="")
    assert (done.returncode, done.stdout) == (0, f"running {pid}\n")
    assert (directory / "hooks").read_text().split() == [str(directory), "after"]
    assert (directory / "log").is_dir()


def test_a_start_that_never_listens_fails_after_its_timeout(service):
    directory, port, _, _ = service
    done = start_or_reload(directory, port, "sleep 0.1", timeout=1)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"nothing listens on port {port} after 1s"


def test_a_failing_reload_command_fails_the_script(service):
    directory, port, start, started = service
    done = start_or_reload(directory, port, start)
    started.append(int(done.stdout.split()[1]))
    failed = start_or_reload(directory, port, start, reload="echo 'no config' >&2; false; echo never")
    assert failed.returncode == 1 and failed.stderr == "no config\n" and failed.stdout == ""


def test_the_upstream_list_is_written_and_a_proxy_reloaded_only_if_it_runs(service):
    directory, port, start, started = service
    upstream = directory / "shared" / "proxy" / "up.conf"
    reload = 'echo "$pid" >> reloaded'
    done = run_script("upstream", upstream, "upstream x {\n}\n", port, reload, cwd=directory)
    assert (done.returncode, done.stdout) == (0, "written\n"), done.stderr
    assert upstream.read_text() == "upstream x {\n}\n" and not (directory / "reloaded").exists()

    pid = start_or_reload(directory, port, start).stdout.split()[1]
    started.append(int(pid))
    done = run_script("upstream", upstream, "upstream y {\n}\n", port, reload, cwd=directory)
    assert (done.returncode, done.stdout) == (0, f"reloaded {pid}\n"), done.stderr
    assert upstream.read_text() == "upstream y {\n}\n"
    assert (directory / "reloaded").read_text().strip() == pid
    done = run_script("upstream", upstream, "upstream z {\n}\n", port, "", cwd=directory)  # write only
    assert done.stdout == "written\n" and (directory / "reloaded").read_text().strip() == pid
    assert os.listdir(upstream.parent) == ["up.conf"]


# --- the restart step: the commands the operations build, composed as rollout does --

ENVIRONMENT = """
app: {{repo: /srv/app.git, branch: main}}
code_root: {root}
roles:
  webworkers: [web1]
  proxy: [web1]
supervisorctl: {ctl}
services:
  web: {{role: webworkers, template: supervisor/gunicorn.conf.j2, port: 8000,
        before: "echo web-before >> {{log}}/hooks", restart: reload}}
  pillow: {{role: webworkers, template: supervisor/pillow.conf.j2}}
  edge: {{role: proxy, control: port, port: {port}, start: "{start}", reload: "kill -HUP {{pid}}",
         after: "echo edge-after >> {{log}}/hooks", balances: web, daemonizes: false}}
"""


@pytest.fixture
def web1(tmp_path, ctl, service):
    directory, port, start, started = service
    root = tmp_path / "www"
    (root / "releases" / "r1").mkdir(parents=True)
    (root / "current").symlink_to("releases/r1")
    (root / "releases" / "r1" / "server.py").write_text(SERVER)
    (root / "log").mkdir()
    (tmp_path / "prod.yml").write_text(ENVIRONMENT.format(
        root=root, ctl=ctl.path, port=port, start=f"{sys.executable} server.py {{port}}"))
    env = load_environment("prod", str(tmp_path))
    host = types.SimpleNamespace(name="web1", address="127.0.0.1", env=env, paths=Paths(str(root)))
    return host, started


def run_step(step):
    """The step run as a host runs its batch: (outcomes, failed step, output)."""
    done = subprocess.run(["bash", "-c", steps.compose([step])], capture_output=True, text=True, timeout=60)
    outcomes, failed = steps.parse([step], done.stdout)
    return outcomes, failed, done.stderr


def restart_step(host, **restart):
    edge = host.env.services["edge"]
    return steps.reporting_step("restart", [
        supervisor.restart(host, **restart),
        proxy_ops.upstream_script(host, "edge", edge, [("10.0.0.1", 8000)], reload=False),
        portservice.start_or_reload(host, "edge", edge),
    ], nothing="nothing to restart")


def test_the_restart_step_says_what_each_command_did(web1, ctl):
    host, started = web1
    ctl.status(**{"prod-web": "RUNNING", "prod-pillow": "RUNNING"})
    outcomes, failed, err = run_step(restart_step(host, mode="all"))
    assert failed is None, err
    note = outcomes[0].note
    assert note.startswith("running: prod-web, prod-pillow; edge: started pid "), note
    started.append(int(note.rsplit(" ", 1)[1]))
    assert ctl.calls() == ["reread", "update", "restart prod-web", "restart prod-pillow"]
    log = host.paths.log
    assert open(f"{log}/hooks").read().split() == ["web-before", "edge-after"]
    assert os.path.exists(host.paths.proxy_upstream("prod-edge"))

    outcomes, failed, err = run_step(restart_step(host, mode="all", reloads={"prod-web", "prod-pillow"}))
    assert failed is None, err
    assert outcomes[0].note == f"reloaded in place: prod-web, prod-pillow; edge: reloaded pid {started[0]}"


def test_a_failing_command_fails_the_step_with_its_own_message(web1, ctl):
    host, _ = web1
    ctl.status(**{"prod-web": "FATAL"})
    outcomes, failed, err = run_step(restart_step(host, mode="changed", timeout=5))
    assert (outcomes, failed) == ([], "restart")
    assert err.strip().splitlines()[-1] == "gave up starting (FATAL): prod-web"
    assert not os.path.exists(host.paths.proxy_upstream("prod-edge"))  # it stopped there


def test_a_step_with_nothing_to_run_says_so():
    outcomes, failed, _ = run_step(steps.reporting_step("restart", [], nothing="nothing to restart"))
    assert outcomes[0].note == "nothing to restart"

"""Fixtures that more than one test module uses, registered as a pytest plugin in
tests/conftest.py (`pytest_plugins`), so no test module imports another's fixtures:

    env         a three-host `prod` environment, loaded from a file (no fleet)
    tools       a stub virtualenv and uv that log every install (no fleet)
    go_signal   a check that holds a deploy's hosts until the test says go (GoSignal)
    faulty_env  the fleet's test environment with the fault matrix's hooks
                (tests/test_faults.py says how faults are timed)

tests/dashboard_store.py and tests/browser.py are plugins too (the dashboard's fixtures).
"""
import contextlib
import os
import stat
import time
import types
import uuid

import pytest

from conftest import assert_ok
from fab.config import load_environment


# --- an environment (tests/test_stages.py, test_plan.py, test_preflight.py, test_rotation.py) ----


@pytest.fixture
def env(tmp_path):
    (tmp_path / "prod.yml").write_text("""
app: {repo: /srv/app.git}
code_root: ~/www
roles:
  webworkers: [web1, web2, web3]
rollout: {canary: 1, batch: 1, failure_limit: 1}
services:
  web: {role: webworkers, template: supervisor/gunicorn.conf.j2, port: 8000, restart: reload}
  worker: {role: webworkers, template: supervisor/pillow.conf.j2}
""")
    return load_environment("prod", str(tmp_path))


# --- virtualenv and uv stubs (tests/test_venv_script.py, test_wheels.py) -----------------


def stub(path, body):
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.fixture
def tools(tmp_path):
    """A stub virtualenv and uv: each makes the venv's directory (its last argument),
    and every install is logged, the venv's pip as "pip <args>", uv as "uv <args>"."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    installs = tmp_path / "installs"
    pip = f'#!/bin/bash\necho "pip $*" >> "{installs}"\n'
    virtualenv_stub = stub(bin_dir / "virtualenv", f"""venv=${{*: -1}}
mkdir -p "$venv/bin"
printf %s '{pip}' > "$venv/bin/pip"
chmod +x "$venv/bin/pip"
""")
    uv_stub = stub(bin_dir / "uv", f"""if [ "$1" = venv ]; then mkdir -p "${{*: -1}}"; else echo "uv $*" >> "{installs}"; fi
""")
    return types.SimpleNamespace(virtualenv=virtualenv_stub, uv=uv_stub, installs=installs)


# --- holding a deploy at a known point (tests/test_history.py, test_dashboard_browser.py) ---


class GoSignal:
    """A pre-swap check that holds every host until the test says go (bounded), so a deploy
    can be watched, followed or killed at a known point."""

    def __init__(self):
        self.path = f"/tmp/fab-test-go-{uuid.uuid4().hex}"  # the hosts' users can see /tmp

    def check(self):
        return (f"for i in $(seq 1200); do [ -e {self.path} ] && exit 0; sleep 0.1; done; "
                "echo 'never told to go' >&2; exit 1")

    def go(self):
        with open(self.path, "w"):
            pass

    def waiting(self):
        """Whether a check still runs anywhere on this machine (the hosts' processes are
        local): a process whose command line names the signal file."""
        needle = self.path.encode()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    if needle in handle.read():
                        return True
            except OSError:
                continue
        return False

    def remove(self):
        if os.path.exists(self.path):
            os.remove(self.path)

    def close(self):
        """Let whatever still waits go (bounded), then remove the signal file."""
        self.go()
        deadline = time.monotonic() + 30
        while self.waiting() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.remove()


@pytest.fixture
def go_signal():
    signal_ = GoSignal()
    yield signal_
    signal_.close()


# --- the fault matrix's environment (tests/test_faults.py, test_history.py, test_lock_loss.py) -


SLOW_BUILD = ("if [ -e ~/fault-slow-build ]; then touch ~/fault-build-started; "
              "for i in $(seq 300); do [ -e ~/fault-slow-build ] || break; sleep 0.1; done; fi")
SLOW_RESTART = ("if [ -e ~/fault-slow-restart ]; then touch ~/fault-restart-started; "
                "for i in $(seq 300); do [ -e ~/fault-slow-restart ] || break; sleep 0.1; done; fi")

# A fault marker holds the commit it targets, so the release a failed deploy is
# put back on (an older commit) runs normally while the marker is still there.
FAULTY_APP_PRELUDE = '''import os as _os
import sys as _sys


def _fault(name):
    here = _os.path.dirname(_os.path.realpath(__file__))
    try:
        with open(_os.path.expanduser("~/" + name)) as marker, open(_os.path.join(here, "REVISION")) as rev:
            return marker.read().strip() == rev.read().strip()
    except OSError:
        return False


if _fault("fault-crash"):
    _sys.exit("fault injected: the app exits at start")
'''


FAULTY_CONFIG = dict(
    with_proxy=True,
    build_commands=[SLOW_BUILD],
    service_settings={"web": {"before": SLOW_RESTART,
                              "health_check": {"path": "/health", "version_path": "/version", "timeout": 4}}},
)


@pytest.fixture
def faulty_env(deploy_env):
    """The test environment with the fault hooks, behind the proxy, in waves
    (canary web1 | web2 + pillow1 | proxy1), one good release deployed."""
    env = deploy_env
    env.write_config(**FAULTY_CONFIG, rollout={"canary": ["web1"], "batch": 2})
    app_path = os.path.join(env.spec.app_workdir, "app.py")
    with open(app_path) as handle:
        original = handle.read()
    unhealthy = original.replace(
        'if path == "/health":\n        status, body, kind = "200 OK", b"ok\\n", "text/plain"',
        'if path == "/health" and _fault("fault-unhealthy"):\n'
        '        status, body, kind = "503 Service Unavailable", b"fault\\n", "text/plain"\n'
        '    elif path == "/health":\n        status, body, kind = "200 OK", b"ok\\n", "text/plain"')
    assert unhealthy != original
    env.commit("app.py", FAULTY_APP_PRELUDE + unhealthy, "app with fault hooks")
    try:
        assert_ok(env.fab("deploy"))
        yield env
    finally:
        for host in env.spec.hosts:
            for marker in ("fault-slow-build", "fault-build-started", "fault-slow-restart",
                           "fault-restart-started", "fault-crash", "fault-unhealthy"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(env.spec.home(host), marker))
        env.commit("app.py", original, "app without fault hooks")

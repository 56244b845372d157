"""Fixtures for tests on a real local fleet: sshd hosts on 127.0.<run id>.21-24, each
with its own unix user and supervisord, a real git repository for the sample app.

The fleet lives for the test session (one per pytest-xdist worker, each named by its
own run id) and is destroyed at the end even when tests fail; each test gets its own
environment (code root, program names, port), which is removed from every host
afterwards, except the tests that only read a deployed fleet: they share one deploy
(`deployed_env`). Tests that need no hosts use none of this and run without root.
"""
import concurrent.futures
import contextlib
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import urllib.request
import uuid

import hypothesis
import pytest

from fab import PROJECT_ROOT, sandbox

# No property test times its examples (hypothesis's default: 200 ms each). The project
# measures speed in bench/, never by a timed assertion in a test, and on a loaded CI
# machine (four workers and their fleets on two cores) an example that merely waited
# for a core failed its test.
hypothesis.settings.register_profile("project", deadline=None)
hypothesis.settings.load_profile("project")

#: Fixtures several test modules use, in modules of their own (no test module imports
#: another's fixtures): shared_fixtures (env, tools, go_signal, faulty_env), the
#: dashboard's store and clients, and a real browser.
pytest_plugins = ["shared_fixtures", "dashboard_store", "browser"]

def test_fleet_spec(run_id):
    """The test fleet of run `run_id` (FAB_TEST_FLEET, default 0): its own root, users
    and loopback addresses, so two runs on one machine never touch each other's hosts."""
    suffix = str(run_id) if run_id else ""
    return sandbox.FleetSpec(
        root=f"/srv/fab-test-fleet{suffix}",
        user_prefix=f"fabtest{suffix}",
        hosts={name: f"127.0.{run_id}.{21 + index}"
               for index, name in enumerate(("web1", "web2", "pillow1", "proxy1"))},
        sshd_log_level="VERBOSE",  # every session logged: tests count a task's remote commands (sshd_sessions)
    )


def run_id():
    """FAB_TEST_FLEET (default 0, at most 39); each pytest-xdist worker gets a fleet of its
    own above it, 40 apart per worker, so runs with neighbouring ids never share a fleet."""
    base = int(os.environ.get("FAB_TEST_FLEET", "0"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return base if not worker else 100 + base + 40 * int(worker.removeprefix("gw"))


RUN_ID = run_id()
TEST_FLEET = test_fleet_spec(RUN_ID)
FAB = os.path.join(os.path.dirname(sys.executable), "fab")


@pytest.fixture(scope="session")
def fleet():
    if os.geteuid() != 0:
        pytest.skip("the test fleet needs root (it creates users and runs sshd)")
    sandbox.destroy(TEST_FLEET)  # whatever a crashed earlier run left behind
    try:
        sandbox.up(TEST_FLEET)
        yield TEST_FLEET
    finally:
        sandbox.destroy(TEST_FLEET)


class DeployEnv:
    """One environment on the test fleet, driven through the real `fab` command."""

    def __init__(self, spec, directory, name, port):
        self.spec = spec
        self.directory = directory
        self.name = name
        self.port = port
        self.code_root_rel = f"www/{name}"
        self.proxy_port = port + 1000

    # -- configuration -------------------------------------------------------

    def write_config(self, with_proxy=False, service_settings=None, **overrides):
        """The environment file; `with_proxy` adds proxy1 running nginx in front of the web
        hosts; `service_settings` updates services' settings ({"web": {"restart": "reload"}})."""
        config = {
            "app": {"repo": self.spec.app_repo, "branch": "main"},
            "code_root": f"~/{self.code_root_rel}",
            "ssh_config": self.spec.ssh_config,
            "roles": {"webworkers": ["web1", "web2"], "pillowtop": ["pillow1"]},
            "python": "/usr/bin/python3",
            "virtualenv": f"{sandbox.tools.TOOLS}/bin/virtualenv",
            "requirements": ["requirements.txt"],
            "pip_args": ["--no-index", "--find-links", sandbox.tools.WHEELHOUSE],
            "keep_releases": 3,
            "supervisorctl": f"{sandbox.tools.TOOLS}/bin/supervisorctl -c ~/supervisor/supervisord.conf",
            "services": {
                "web": {
                    "role": "webworkers",
                    "template": "supervisor/gunicorn.conf.j2",
                    "port": self.port,
                    "workers": 1,
                    "health_check": {"path": "/health", "version_path": "/version", "timeout": 20},
                },
                "pillow": {"role": "pillowtop", "template": "supervisor/pillow.conf.j2"},
            },
        }
        if with_proxy:
            config["roles"]["proxy"] = ["proxy1"]
            config["services"]["proxy"] = {
                "role": "proxy",
                "control": "port",
                "port": self.proxy_port,
                "template": "nginx/proxy.conf.j2",
                "balances": "web",
                "before": "mkdir -p {shared}/proxy/tmp && /usr/sbin/nginx -t -q -c {conf} -e {log}/{program}-error.log",
                "start": "/usr/sbin/nginx -c {conf} -e {log}/{program}-error.log",
                "reload": "kill -HUP {pid}",
                "health_check": {"path": "/health", "timeout": 20},
            }
        for name, settings in (service_settings or {}).items():
            config["services"][name].update(settings)
        config.update(overrides)
        self.hosts = sorted({h for hosts in config["roles"].values() for h in hosts})
        path = os.path.join(self.directory, f"{self.name}.yml")
        with open(path, "w") as handle:
            json.dump(config, handle, indent=2)  # JSON is YAML
        return path

    # -- driving the deployer ------------------------------------------------

    def fab(self, *args, timeout=300, environ=None):
        """Run `fab <env> <args>` as a user would, non-interactively (CI=true);
        `environ` sets environment variables (FAB_JSON=...; None removes one)."""
        return run_fab(self.name, *args, environments=self.directory, timeout=timeout, environ=environ)

    def commit(self, path, content, message="change"):
        return sandbox.tools.commit_app_change(self.spec, path, content, message)

    @contextlib.contextmanager
    def unhealthy_app(self, status):
        """Commit an app whose /health answers `status`; commit the healthy app back after."""
        path = os.path.join(self.spec.app_workdir, "app.py")
        with open(path) as handle:
            app = handle.read()
        broken = app.replace('status, body, kind = "200 OK", b"ok\\n", "text/plain"',
                             f'status, body, kind = "{status}", b"broken\\n", "text/plain"')
        assert broken != app
        commit = self.commit("app.py", broken, f"/health answers {status}")
        try:
            yield commit
        finally:
            self.commit("app.py", app, "repair /health")

    def head(self):
        return sandbox.tools.git("rev-parse", "HEAD", cwd=self.spec.app_workdir)

    @contextlib.contextmanager
    def lock_held_by_another(self, record):
        """Another deployer holding this environment's lock (its owner `record`) while the
        block runs: the lock script run over ssh on web1 as a deployer runs it, its
        connection kept open. Yields that ssh process."""
        from fab import shell
        from fab.operations import lock
        from fab.paths import Paths

        # Through step.sh, as the deployer runs it: killing the ssh below ends it on
        # the host too (run bare, lock.sh outlived it and held the lock for later tests).
        holder = subprocess.Popen(
            ["ssh", "-F", self.spec.ssh_config, "web1",
             shell.step_command(shell.remote_script("lock"),
                                lock.lock_arguments(Paths(self.code_root("web1")), record))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().startswith("acquired ")
            yield holder
        finally:
            holder.kill()
            holder.wait()

    # -- looking at the hosts, as a user would -------------------------------

    def remote(self, host, command, check=True):
        result = subprocess.run(
            ["ssh", "-F", self.spec.ssh_config, host, command],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{host}: {command!r} failed: {result.stderr}")
        return result.stdout.strip()

    def code_root(self, host):
        return os.path.join(self.spec.home(host), self.code_root_rel)

    def current(self, host):
        """The release name `current` points to on `host` (None if there is none)."""
        link = os.path.join(self.code_root(host), "current")
        return os.path.basename(os.readlink(link)) if os.path.islink(link) else None

    def releases(self, host):
        directory = os.path.join(self.code_root(host), "releases")
        return sorted(os.listdir(directory)) if os.path.isdir(directory) else []

    def meta(self, host, release):
        path = os.path.join(self.code_root(host), "releases", release, ".release", "meta.json")
        with open(path) as handle:
            return json.load(handle)

    def version(self, host, port=None):
        """What the app on a web host answers at /version, over HTTP (on `port`, default
        the web service's)."""
        address = self.spec.hosts[host]
        with urllib.request.urlopen(f"http://{address}:{port or self.port}/version", timeout=10) as response:
            return json.loads(response.read().decode())

    def program_status(self, host):
        out = self.remote(host, f"{sandbox.tools.TOOLS}/bin/supervisorctl -c ~/supervisor/supervisord.conf status", check=False)
        return {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}

    def remove_from_hosts(self):
        """Stop what this environment started on every host and delete its files
        (on every host at once: each host's cleanup is its own)."""
        hosts = [host for host in self.spec.hosts if self.left_on(host)]
        if hosts:
            with concurrent.futures.ThreadPoolExecutor(max_workers=len(hosts)) as pool:
                list(pool.map(self._remove_from_host, hosts))

    def left_on(self, host):
        """Whether this environment may have left anything on `host` (read from its home,
        a directory on this machine): a file in its code root other than the reused
        venvs and git cache, a pip config, or a listener on one of its ports. Without
        a `current` no supervisor program of it runs: the last cleanup updated supervisord."""
        home = self.spec.home(host)
        root = self.code_root(host)
        kept = {"venvs", "git-cache"}
        if os.path.isdir(root) and set(os.listdir(root)) - kept:
            return True
        if os.path.lexists(os.path.join(home, ".config", "pip")):
            return True
        address = self.spec.hosts[host]
        listening = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=False).stdout
        ports = {f"{address}:{port}" for port in (self.port, self.proxy_port, self.port + 2000)}
        return any(word in ports for line in listening.splitlines() for word in line.split())

    def _remove_from_host(self, host):
        self.remote(host, textwrap.dedent(f"""
                for port in {self.proxy_port} {self.port + 2000}; do
                  for pid in $(ss -Hltnp "sport = :$port" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
                    kill "$pid" 2>/dev/null || true
                  done
                done
                if [ -d ~/{self.code_root_rel} ]; then
                  find ~/{self.code_root_rel} -mindepth 1 -maxdepth 1 ! -name venvs ! -name git-cache -exec rm -rf {{}} +
                fi
                rm -rf ~/.config/pip
                {sandbox.tools.TOOLS}/bin/supervisorctl -c ~/supervisor/supervisord.conf update >/dev/null
            """), check=False)


#: XDG_CACHE_HOME of every `fab` the tests run: the controller's cache
#: (fab.precedence.controller_cache) is the session's own, never the user's ~/.cache.
CONTROLLER_CACHE = {}


@pytest.fixture(scope="session", autouse=True)
def controller_cache(tmp_path_factory):
    CONTROLLER_CACHE["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("controller-cache"))
    return CONTROLLER_CACHE["XDG_CACHE_HOME"]


@contextlib.contextmanager
def environment_of_its_own(spec, directory, name, port):
    """A DeployEnv with its own code root, git cache and venvs on every host, removed whole after."""
    os.makedirs(directory, exist_ok=True)
    env = DeployEnv(spec, directory, name, port)
    try:
        yield env
    finally:
        env.remove_from_hosts()
        for host in spec.hosts:
            shutil.rmtree(env.code_root(host), ignore_errors=True)


def run_fab(*args, environments=None, timeout=300, environ=None):
    """`fab <args>`; `environ` sets variables (None as a value removes one)."""
    env = {**os.environ, "CI": "true", **CONTROLLER_CACHE}
    if environments:
        env["DEPLOY_ENVIRONMENTS"] = environments
    for name, value in (environ or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(
        [FAB, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL,
    )


ENV_NAME, ENV_PORT = "fabtest", 8100


@pytest.fixture
def deploy_env(fleet, tmp_path, baseline):
    """A fresh environment on the fleet. Every test uses the same name (so the
    hosts' virtualenvs and git caches are reused across tests, as across real
    deploys), but starts with no release, no current and no programs."""
    baseline.remove()  # the shared deployed baseline, if the test before left it
    env = DeployEnv(fleet, str(tmp_path), ENV_NAME, ENV_PORT)
    env.write_config()
    try:
        yield env
    finally:
        env.remove_from_hosts()


class Baseline:
    """One deploy of the test environment (the sample app, from no release at all) that
    the tests which only read a deployed fleet share instead of each deploying again.

    It stays on the hosts after such a test, for the next one; a test that deploys for
    itself (`deploy_env`) removes it first. It is deployed again if a test that read
    it failed, or if the hosts no longer show it."""

    def __init__(self, spec, directory):
        self.env = DeployEnv(spec, directory, ENV_NAME, ENV_PORT)
        self.on_hosts = False
        self.result = self.commit = self.release = None

    def intact(self):
        return self.on_hosts and all(self.env.current(host) == self.release for host in self.env.hosts)

    def ensure(self):
        if self.intact():
            return self
        self.remove()
        self.env.write_config(manage={"role": "webworkers", "command": "python_env/bin/python manage.py"})
        self.commit = self.env.head()
        self.on_hosts = True  # whatever happens next, something may be on the hosts
        self.result = assert_ok(self.env.fab("deploy"))
        currents = {self.env.current(host) for host in self.env.hosts}
        assert len(currents) == 1 and None not in currents, currents
        self.release = currents.pop()
        return self

    def remove(self):
        if self.on_hosts:
            self.env.remove_from_hosts()
            self.on_hosts = False
            self.result = self.commit = self.release = None


@pytest.fixture(scope="session")
def baseline(fleet, tmp_path_factory):
    found = Baseline(fleet, str(tmp_path_factory.mktemp("baseline")))
    try:
        yield found
    finally:
        found.remove()


@pytest.fixture
def deployed_env(baseline, request):
    """The shared deployed baseline (see Baseline), for a test that only reads the fleet:
    `.env` is its environment, `.result` its deploy's `fab` run, `.commit` and `.release`
    what it deployed. Tests using it run one after the other in one pytest-xdist worker."""
    failed_before = request.session.testsfailed
    yield baseline.ensure()
    if request.session.testsfailed != failed_before:
        baseline.remove()  # the test may have left the hosts in any state


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Tests on the fleet carry the `fleet` mark (`-m "not fleet"`: no root, no hosts), and
    those sharing the deployed baseline one xdist group, so one worker deploys it once."""
    for item in items:
        if {"fleet", "hk_fleet"} & set(item.fixturenames) and not item.get_closest_marker("fleet"):
            item.add_marker(pytest.mark.fleet)
        if "deployed_env" in item.fixturenames:
            item.add_marker(pytest.mark.xdist_group("deployed-baseline"))


def pytest_terminal_summary(terminalreporter, config):
    """Where the browser tests' screenshots are (CI keeps that folder, nothing else)."""
    from browser import report_artifacts

    report_artifacts(terminalreporter, config)


def sshd_log_sizes(spec, hosts):
    """Where each host's sshd log ends now: sshd_sessions counts from there."""
    return {host: os.path.getsize(sshd_log(spec, host)) for host in hosts}


def sshd_sessions(spec, since):
    """{host: (remote commands, SFTP sessions)} its sshd logged since `since` (sshd_log_sizes)."""
    counts = {}
    for host, offset in since.items():
        with open(sshd_log(spec, host), errors="replace") as handle:
            handle.seek(offset)
            text = handle.read()
        counts[host] = (text.count("Starting session: command"), text.count("Starting session: subsystem 'sftp'"))
    return counts


def sshd_log(spec, host):
    return os.path.join(spec.host_dir(host), "sshd", "sshd.log")


def assert_ok(result):
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def assert_one_line_error(result, *fragments):
    """A user error: non-zero exit, one line on stderr, no traceback."""
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# --- the history store ---------------------------------------------------------


@pytest.fixture(autouse=True)
def history_url(tmp_path, monkeypatch):
    """Every test records into its own SQLite file (never the user's ~/.local/share):
    FAB_HISTORY_URL is inherited by every `fab` the test runs."""
    url = f"sqlite:///{tmp_path}/history.sqlite"
    monkeypatch.setenv("FAB_HISTORY_URL", url)
    return url


class Postgres:
    """A throwaway PostgreSQL cluster: its own data directory, a unix socket in it,
    no TCP, trust authentication, run by an unprivileged user."""

    def __init__(self, bin_dir, data_dir, user):
        self.bin_dir, self.data_dir, self.user = bin_dir, data_dir, user

    def run(self, program, *args):
        command = [os.path.join(self.bin_dir, program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)

    def start(self):
        self.run("initdb", "-D", self.data_dir, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                 "--locale=C", "--no-sync")
        self.start_server()

    def start_server(self):
        """Start the cluster's server (again, after `stop`: a store going down and back)."""
        self.run("pg_ctl", "-D", self.data_dir, "-l", os.path.join(self.data_dir, "server.log"),
                 "-w", "-t", "60", "-o",
                 f"-k {self.data_dir} -c listen_addresses='' -c fsync=off -c max_connections=100",
                 "start")

    def stop(self):
        """Stop the cluster started on our data directory (and only it)."""
        if os.path.exists(os.path.join(self.data_dir, "postmaster.pid")):
            subprocess.run(
                (["runuser", "-u", self.user, "--"] if os.geteuid() == 0 else [])
                + [os.path.join(self.bin_dir, "pg_ctl"), "-D", self.data_dir, "-m", "immediate", "-w", "stop"],
                capture_output=True, timeout=60, stdin=subprocess.DEVNULL)

    def create_database(self):
        name = f"history_{uuid.uuid4().hex[:12]}"
        self.run("createdb", "-h", self.data_dir, "-U", "postgres", name)
        return name

    def url(self, database, password=None):
        secret = f":{password}" if password else ""
        return f"postgresql://postgres{secret}@/{database}?host={self.data_dir}"


def postgres_bin_dir():
    """The newest PostgreSQL server binaries from the Debian packages (scripts/bootstrap.sh)."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        return None
    return os.path.dirname(max(found, key=lambda path: int(path.split("/")[4])))


@pytest.fixture(scope="session")
def postgres():
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.fail("PostgreSQL is not installed: run scripts/bootstrap.sh (it installs `postgresql`)")
    run_id = os.environ.get("FAB_TEST_FLEET", "0")
    data_dir = tempfile.mkdtemp(prefix=f"fab-test-pg{run_id}-")
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        shutil.chown(data_dir, user, user)
    cluster = Postgres(bin_dir, data_dir, user)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def pg_url(postgres):
    """The URL of a new, empty database of its own on the test cluster."""
    return postgres.url(postgres.create_database())

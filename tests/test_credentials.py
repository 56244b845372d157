"""Credentials never reach a command line or a file others can read, on any host.

A deploy from `http://deployer:TOKEN@127.0.0.1:<port>/app.git` (git's smart HTTP
protocol by `git http-backend`, Basic auth) with `pip_args: [--index-url, http://pypi:PASSWORD@.../simple]`
(a PEP 503 index of the sandbox's wheels), both served on loopback by a server
that refuses any request without the credentials, so the deploy only succeeds if
git and pip really got them. While it runs, every process's argv on the machine
(the hosts are local users; the controller is here too) is sampled from /proc.
"""
import base64
import contextlib
import http.server
import os
import secrets as random_secrets
import stat
import subprocess
import threading
import time

import pytest

from conftest import assert_ok, environment_of_its_own
from package_index import answer, index_response
from package_index import serving as serving_server
from fab import sandbox
from fab.operations import credentials


TOKEN = "ghp_" + random_secrets.token_hex(16)
INDEX_PASSWORD = "idx-" + random_secrets.token_hex(16)
MULTI_LINE = "multi-line-secret-one\nmulti-line-secret-two"
QUOTED = "quoted-secret-value"


class CredentialServer(http.server.ThreadingHTTPServer):
    """git's smart HTTP protocol for one bare repository (/app.git/...) and a PEP 503
    index of a wheelhouse (/simple/<project>/, /files/<wheel>), each behind its own
    Basic credentials. `requests` records (path, authorized) of every request."""

    daemon_threads = True

    def __init__(self, repo, wheelhouse):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.repo, self.wheelhouse = repo, wheelhouse
        self.requests = []

    @property
    def port(self):
        return self.server_address[1]


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_HEAD(self):  # uv asks a wheel's size first
        self.do_GET(head=True)

    def do_POST(self):
        self.do_GET()

    def do_GET(self, head=False):
        path = self.path.split("?", 1)[0]
        wanted = ("deployer", TOKEN) if path.startswith("/app.git/") else ("pypi", INDEX_PASSWORD)
        expected = "Basic " + base64.b64encode(":".join(wanted).encode()).decode()
        authorized = self.headers.get("Authorization") == expected
        self.server.requests.append((path, authorized))
        if not authorized:
            return answer(self, 401, [("WWW-Authenticate", 'Basic realm="test"')], b"")
        answer(self, *(self._git() if path.startswith("/app.git/") else self._index(path)), head=head)

    def _git(self):
        """git's smart HTTP protocol, by `git http-backend` (a CGI program)."""
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        request = self.rfile.read(length) if length else b""
        environ = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": os.path.dirname(self.server.repo),
                   "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path, "QUERY_STRING": query,
                   "REQUEST_METHOD": self.command, "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                   "CONTENT_LENGTH": str(length), "REMOTE_USER": "deployer", "REMOTE_ADDR": "127.0.0.1",
                   "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                   "GIT_PROTOCOL": self.headers.get("Git-Protocol", "")}
        result = subprocess.run(["git", "http-backend"], input=request, env=environ, capture_output=True,
                                timeout=60)
        head, _, body = result.stdout.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(": ")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value))
        return status, headers, body

    def _index(self, path):
        """A PEP 503 index of the wheelhouse."""
        return index_response(self.server.wheelhouse, path)


@contextlib.contextmanager
def serving(tmp_path, spec):
    """The credential server on a copy of the sample app's repository, in a thread."""
    repo = str(tmp_path / "served" / "app.git")
    subprocess.run(["git", "clone", "--quiet", "--bare", spec.app_repo, repo], check=True)
    with serving_server(CredentialServer(os.path.realpath(repo), sandbox.tools.WHEELHOUSE)) as server:
        yield server


class ArgvSampler:
    """Reads every process's argv (/proc/<pid>/cmdline, as root) until stopped, at most
    every `interval` seconds and for at most `limit` seconds; keeps those holding a secret."""

    def __init__(self, secrets, interval=0.02, limit=600):
        self.secrets = [s.encode() for s in secrets]
        self.interval, self.limit = interval, limit
        self.found, self.sweeps = [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as handle:
                        argv = handle.read()
                except OSError:
                    continue  # it ended
                if any(secret in argv for secret in self.secrets) and len(self.found) < 20:
                    self.found.append(argv.replace(b"\0", b" ")[:300])
            self.sweeps += 1
            self._stop.wait(self.interval)


def readable_by_others_holding(top, secrets):
    """Files under `top` that any user may read (mode o+r) and that hold one of `secrets`."""
    return files_holding(top, secrets, readable_by_others=True)


def files_holding(top, secrets, readable_by_others=False):
    """Files under `top` (only those any user may read: mode o+r) that hold one of `secrets`."""
    found = []
    for folder, _, files in os.walk(top):
        for name in files:
            path = os.path.join(folder, name)
            try:
                status = os.lstat(path)
                if not stat.S_ISREG(status.st_mode) or status.st_size > 5 << 20:
                    continue
                if readable_by_others and not status.st_mode & stat.S_IROTH:
                    continue
                with open(path, "rb") as handle:
                    content = handle.read()
            except OSError:
                continue
            if any(secret.encode() in content for secret in secrets):
                found.append(path)
    return found


@pytest.fixture
def creds_env(fleet, tmp_path):
    """An environment of its own (own code root, git cache and venvs), removed whole after."""
    with environment_of_its_own(fleet, str(tmp_path / "environments"), "fabcreds", 8160) as env:
        yield env


@pytest.mark.parametrize("builder, fetch", [("virtualenv + pip", "controller"), ("uv", "hosts"),
                                            ("store", "controller"), ("builder host", "controller")])
def test_a_token_and_an_index_password_reach_no_argv_and_no_readable_file(creds_env, tmp_path, builder, fetch):
    """With app.fetch: controller (the default) the token never reaches a host at all:
    the controller fetches and sends bundles; with hosts, only their 0600 file holds it.
    virtualenv + pip, uv: each host installs from the index (wheels.build: each_host)
    with the password in its netrc file. store: the controller alone asks the index
    (wheels.build: once): the hosts get no credentials at all. builder host: web2 builds
    the wheels (wheels.where: builder), the password in a netrc of its throwaway 0700
    build directory, gone with it; the hosts install from their stores."""
    built_once = builder in ("store", "builder host")
    env = creds_env
    controller_cache = {"XDG_CACHE_HOME": str(tmp_path / "controller-cache")}
    (tmp_path / "secrets.env").write_text(f"MULTI='{MULTI_LINE}'\nQUOTED=\"{QUOTED}\"\n")
    with serving(tmp_path, env.spec) as server:
        repo = f"http://deployer:{TOKEN}@127.0.0.1:{server.port}/app.git"
        env.write_config(
            app={"repo": repo, "branch": "main", "fetch": fetch},
            pip_args=["--index-url", f"http://pypi:{INDEX_PASSWORD}@127.0.0.1:{server.port}/simple"],
            secrets={"file": str(tmp_path / "secrets.env")},
            wheels={"build": "once", "where": "builder", "builder": "web2"} if builder == "builder host" else
                   {"build": "once" if builder == "store" else "each_host"},
            manage={"role": "webworkers", "command": "python_env/bin/python manage.py"},
            **({"uv": os.path.join(sandbox.tools.TOOLS, "bin", "uv")} if builder == "uv" else {}))
        # An older deployer's clone on web1 kept the URL, token included, in its config (0644).
        cache = f"$HOME/{env.code_root_rel}/git-cache"
        env.remote("web1", f"git clone --quiet --mirror {env.spec.app_repo} {cache} && "
                           f"git --git-dir={cache} config remote.origin.url {repo}")

        with ArgvSampler([TOKEN, INDEX_PASSWORD]) as sampler:
            planned = env.fab("deploy:plan=yes", environ=controller_cache)  # the controller reads the commits
            deployed = env.fab("deploy", environ=controller_cache)
        assert_ok(planned)
        assert_ok(deployed)
        made = "from store" if built_once else f"with {builder}"
        assert deployed.stdout.count(made) == len(env.hosts), deployed.stdout
        assert (": wheels built on web2" in deployed.stdout) == (builder == "builder host"), deployed.stdout

        assert sampler.found == [], sampler.found
        assert sampler.sweeps > 10  # it looked all along the deploy
        # The server refused every request without the credentials: git and pip had them.
        assert ("/app.git/info/refs", True) in server.requests
        assert any(path.startswith("/simple/gunicorn") and ok for path, ok in server.requests), server.requests
        releases = {env.current(host) for host in env.hosts}
        assert len(releases) == 1 and None not in releases
        assert env.version("web1")["release"].endswith("/" + releases.pop())

        for host in env.hosts:
            assert readable_by_others_holding(env.spec.home(host), [TOKEN, INDEX_PASSWORD]) == [], host
            for kept in (".deploy-credentials", ".deploy-netrc"):
                if built_once:  # no host needs the repository or the index (the builder's netrc is gone)
                    assert not os.path.exists(os.path.join(env.code_root(host), kept))
                    assert files_holding(env.spec.home(host), [INDEX_PASSWORD]) == [], host
                    continue
                assert stat.S_IMODE(os.stat(os.path.join(env.code_root(host), kept)).st_mode) == 0o600
            if fetch == "controller":
                assert files_holding(env.spec.home(host), [TOKEN]) == [], host
        with open(os.path.join(env.code_root("web1"), "git-cache", "config")) as handle:
            config = handle.read()
        if fetch == "hosts":
            assert f"url = http://127.0.0.1:{server.port}/app.git\n" in config
        else:  # bundles need no remote: the one an older clone kept (with the token) is gone
            assert "url =" not in config

        # What supervisorctl and manage print is masked like the rest: each line of a
        # multi-line secret, a value the secrets file quotes.
        line_two = MULTI_LINE.splitlines()[1]
        ctl = env.fab(f"supervisorctl:status {line_two}")
        managed = assert_ok(env.fab(f"manage:echo {QUOTED} {MULTI_LINE.splitlines()[0]}"))
        assert "***: ERROR (no such process)" in ctl.stdout, ctl.stdout + ctl.stderr
        assert managed.stdout.count("***") == 2, managed.stdout
    for output in (planned.stdout, planned.stderr, deployed.stdout, deployed.stderr, ctl.stdout, ctl.stderr, managed.stdout, managed.stderr):
        for secret in (TOKEN, INDEX_PASSWORD, QUOTED, *MULTI_LINE.splitlines()):
            assert secret not in output, output


def test_no_step_script_carries_a_credential():
    """The scripts that run git and pip name no credential: git asks the helper, pip
    and uv read the netrc file."""
    from types import SimpleNamespace

    from fab.operations import code, virtualenv
    from fab.paths import Paths

    env = SimpleNamespace(
        app=SimpleNamespace(repo=f"https://ci:{TOKEN}@git.example.com/app.git", fetch="hosts"),
        pip_args=["--no-cache-dir", "-i", f"https://pypi:{INDEX_PASSWORD}@pypi.example.com/simple",
                  f"--extra-index-url=https://{TOKEN}@more.example.com/simple",
                  "--extra-index-url", "https://public.example.com/simple", "--find-links", "/srv/wheels"],
        requirements=["requirements.txt"], python="/usr/bin/python3", virtualenv="virtualenv", uv="uv",
        topology=SimpleNamespace(runs_app=lambda name: True),
        wheels=SimpleNamespace(build="each_host"),  # hosts install from the index themselves
    )
    paths = Paths("/home/deploy/www/app")
    host = SimpleNamespace(name="web1", env=env, paths=paths, state=SimpleNamespace(venvs={}))
    scripts = [code.checkout(host, "20260101T000000Z", "a" * 40).body, virtualenv.ensure(host, "r").body]
    for script in scripts:
        assert TOKEN not in script and INDEX_PASSWORD not in script
        assert "set -a; . /home/deploy/www/app/.deploy-credentials; set +a" in script
    assert "https://git.example.com/app.git" in scripts[0]
    assert ("--no-cache-dir -i https://pypi.example.com/simple --extra-index-url=https://more.example.com/simple "
            "--extra-index-url https://public.example.com/simple --find-links /srv/wheels") in scripts[1]
    assert credentials.variables_text(host) == (
        f"FAB_GIT_PASSWORD={TOKEN}\nFAB_GIT_USERNAME=ci\nNETRC=/home/deploy/www/app/.deploy-netrc\n")
    proxy = SimpleNamespace(name="proxy1", env=SimpleNamespace(**{**vars(env), "topology": SimpleNamespace(
        runs_app=lambda name: name != "proxy1")}), paths=paths)
    assert credentials.index_logins(proxy) == {}  # it installs no packages: no index credentials
    assert credentials.variables_text(proxy) == f"FAB_GIT_PASSWORD={TOKEN}\nFAB_GIT_USERNAME=ci\n"
    assert credentials.load_line(proxy).splitlines() == [  # an earlier deploy's netrc goes
        "set -a; . /home/deploy/www/app/.deploy-credentials; set +a",
        'for fab_stale in /home/deploy/www/app/.deploy-netrc; do if [ -e "$fab_stale" ]; then rm -f "$fab_stale"; fi; done']
    assert credentials.netrc_text(credentials.split_pip_args(env.pip_args)[1]) == (
        f'machine more.example.com login {TOKEN} password ""\n'
        f"machine pypi.example.com login pypi password {INDEX_PASSWORD}\n")


def test_without_credentials_a_step_removes_those_an_earlier_deploy_left(tmp_path):
    import subprocess
    from types import SimpleNamespace

    from fab.paths import Paths

    paths = Paths(str(tmp_path))
    for left in (paths.credentials_file, paths.netrc_file):
        open(left, "w").write("FAB_GIT_PASSWORD=old\n")
    env = SimpleNamespace(app=SimpleNamespace(repo="/srv/app.git", fetch="hosts"), pip_args=["--no-index"])
    line = credentials.load_line(SimpleNamespace(env=env, paths=paths))
    subprocess.run(["bash", "-ec", line], check=True, timeout=30)
    assert not os.path.exists(paths.credentials_file) and not os.path.exists(paths.netrc_file)


@pytest.mark.parametrize("url, public, user, password", [
    ("https://ci:t0ken-xyz@git.example.com/app.git", "https://git.example.com/app.git", "ci", "t0ken-xyz"),
    ("https://ghp_tokentoken@github.com/me/app.git", "https://github.com/me/app.git", "ghp_tokentoken", ""),
    ("https://ci:p%40ss%2Fw0rd@h:8443/a.git", "https://h:8443/a.git", "ci", "p@ss/w0rd"),
    ("ssh://git@github.com/me/app.git", "ssh://git@github.com/me/app.git", None, None),
    ("git@github.com:me/app.git", "git@github.com:me/app.git", None, None),
    ("/srv/repos/app.git", "/srv/repos/app.git", None, None),
])
def test_a_url_splits_into_what_may_be_shown_and_its_credentials(url, public, user, password):
    assert credentials.split_url(url) == (public, user, password)


@pytest.mark.parametrize("pip_args, problem", [
    (["-i", "https://u:secretpw@h/simple", "--extra-index-url", "https://v:otherpw@h/more"],
     "two URLs on h carry different credentials"),
    (["-i", "https://u:secret%20pw@h/simple"], "hold a space or a quote"),
])
def test_credentials_a_netrc_file_cannot_hold_are_refused(pip_args, problem):
    with pytest.raises(ValueError, match=problem):
        credentials.split_pip_args(pip_args)
    assert credentials.split_pip_args(["--no-index", "--find-links", "/w"]) == (["--no-index", "--find-links", "/w"], {})

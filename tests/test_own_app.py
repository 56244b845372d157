"""A Django project deployed as its own team would: from its own repository, with the
deployer installed by pip, its environment and templates in its own `deploy/` folder.

Set up once for the module (as the README's "Deploying your own app" says):
`django-admin startproject mysite` (Django from a throwaway venv), a few lines of
settings read from the environment, the deployer installed from this checkout
with pip into a venv of its own, and a wheelhouse with Django and gunicorn that
the hosts install from (they have no network). Everything is checked from
outside: over HTTP, in the hosts' files, in what `fab` printed.
"""
import concurrent.futures
import glob
import json
import os
import secrets as random_secrets
import sqlite3
import subprocess
import sys
import time
import urllib.request
import zipfile

import pytest

from conftest import PROJECT_ROOT, DeployEnv, assert_ok, assert_one_line_error
from fab import BUILTIN_DIR, sandbox

# One pytest-xdist worker runs every test of this module: its project is set up once.
pytestmark = [pytest.mark.fleet, pytest.mark.xdist_group("own-app")]

DJANGO = "Django==5.2.19"
GUNICORN = "gunicorn==23.0.0"
WEB_PORT = 8300  # the proxy listens on WEB_PORT + 1000 (DeployEnv's convention)
SLOW_MARKER = "sleep 317"  # a too-slow predeploy command, recognisable in `ps`

SETTINGS = '''

# --- Deployment: what the servers give the app (added by its team) -----------
import os

_dotenv = BASE_DIR / ".env"  # a linked file: shared/.env on each host
if _dotenv.exists():
    for _line in _dotenv.read_text().splitlines():
        _name, _, _value = _line.partition("=")
        if _name.strip() and not _name.startswith("#"):
            os.environ.setdefault(_name.strip(), _value.strip())

SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]  # a secret: never in git
DEBUG = False
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost").split(",")
DATABASES["default"]["NAME"] = os.environ["DJANGO_DATABASE"]
STATIC_ROOT = BASE_DIR / "static"
MEDIA_ROOT = BASE_DIR / "media"  # a linked dir: uploads outlive releases
'''


class MySite:
    """The Django project's repository, its deploy folder, and `fab` as its team runs it."""

    def __init__(self, spec, root, fab, wheelhouse):
        self.spec = spec
        self.root = root  # the app's working tree; deploy/ and fabfile.py are in it
        self.fab_command = fab
        self.wheelhouse = wheelhouse
        self.repo = os.path.join(spec.root, "mysite.git")
        self.database = os.path.join(spec.root, "mysite-db", "db.sqlite3")
        self.secret_key = "django-" + random_secrets.token_urlsafe(32)
        self.hosts = DeployEnv(spec, os.path.join(root, "deploy", "environments"), "mysite", WEB_PORT)
        self.outputs = []  # everything every `fab` run printed

    @property
    def deploy_dir(self):
        return os.path.join(self.root, "deploy")

    def write_environment(self, **overrides):
        """deploy/environments/production.yml (JSON is YAML)."""
        config = {
            "app": {"repo": self.repo, "branch": "main"},
            "code_root": "~/www/mysite",
            "ssh_config": self.spec.ssh_config,
            "roles": {"webworkers": ["web1", "web2"], "proxy": ["proxy1"]},
            "python": "/usr/bin/python3",
            "virtualenv": f"{sandbox.tools.TOOLS}/bin/virtualenv",
            "pip_args": ["--no-index", "--find-links", self.wheelhouse],
            "supervisorctl": f"{sandbox.tools.TOOLS}/bin/supervisorctl -c ~/supervisor/supervisord.conf",
            "linked_files": [".env"],
            "linked_dirs": ["media"],
            "shared_files_from": "shared",
            "secrets": {"file": "secrets/production.env"},
            "build_commands": ["python manage.py collectstatic --noinput"],
            "predeploy": {"commands": ["python manage.py check"], "role": "webworkers", "timeout": 120},
            "migrate": {"command": "python manage.py migrate --noinput", "role": "webworkers"},
            "manage": {"role": "webworkers", "command": "python manage.py"},
            "hooks": {"after_swap": ["env | grep ^DEPLOY_ | sort > after_swap.env"]},
            "rollout": {"canary": ["web1"], "batch": 2},
            "services": {
                "web": {
                    "role": "webworkers",
                    "template": "supervisor/gunicorn.conf.j2",  # the built-in one
                    "wsgi": "mysite.wsgi:application",
                    "port": WEB_PORT,
                    "workers": 2,
                    "timeout": 20,
                    "environment": {"DJANGO_SETTINGS_MODULE": "mysite.settings"},
                    "health_check": {"path": "/admin/login/", "expect_body": "Django", "timeout": 30},
                },
                "proxy": {
                    "role": "proxy",
                    "control": "port",
                    "port": self.hosts.proxy_port,
                    "template": "nginx/proxy.conf.j2",  # the team's own, in deploy/templates/
                    "balances": "web",
                    "before": "mkdir -p {shared}/proxy/tmp && /usr/sbin/nginx -t -q -c {conf} -e {log}/{program}-error.log",
                    "start": "/usr/sbin/nginx -c {conf} -e {log}/{program}-error.log",
                    "reload": "kill -HUP {pid}",
                    "health_check": {"path": "/admin/login/", "timeout": 30},
                },
            },
        }
        config.update(overrides)
        with open(os.path.join(self.deploy_dir, "environments", "production.yml"), "w") as handle:
            json.dump(config, handle, indent=2)

    def fab(self, *args, json_file=None):
        """`fab production <args>` in the app's repository, with the installed deployer."""
        environ = {k: v for k, v in os.environ.items() if not k.startswith("DEPLOY_")}
        environ.update(CI="true", **({"FAB_JSON": json_file} if json_file else {}))
        result = subprocess.run(
            [self.fab_command, "production", *args], cwd=self.root, env=environ,
            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
        self.outputs.append(result.stdout + result.stderr)
        if json_file and os.path.exists(json_file):
            with open(json_file) as handle:
                self.outputs.append(handle.read())
        return result

    def commit(self, path, content, message):
        full = os.path.join(self.root, path)
        with open(full, "a") as handle:
            handle.write(content)
        git("add", path, cwd=self.root)
        git("commit", "-q", "-m", message, cwd=self.root)
        git("push", "-q", "origin", "HEAD:main", cwd=self.root)
        subprocess.run(["chmod", "-R", "a+rX", self.repo], check=True)
        return git("rev-parse", "HEAD", cwd=self.root)

    # -- looking from outside ----------------------------------------------------

    def currents(self):
        return {host: self.hosts.current(host) for host in ("web1", "web2", "proxy1")}

    def in_current(self, host, *parts):
        return os.path.join(self.hosts.code_root(host), "current", *parts)

    def get(self, address, port, path="/admin/login/"):
        with urllib.request.urlopen(f"http://{address}:{port}{path}", timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()

    def leftover_processes(self):
        """{host: [command lines]} of processes on the hosts other than their daemons
        (supervisord, the gunicorn programs, nginx, sshd sessions)."""
        found = {}
        for host in self.spec.hosts:
            uid = int(subprocess.run(["id", "-u", self.spec.user(host)], capture_output=True,
                                     text=True, check=True).stdout)
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    if os.stat(f"/proc/{pid}").st_uid != uid:
                        continue
                    with open(f"/proc/{pid}/cmdline", "rb") as handle:
                        words = handle.read().decode(errors="replace").split("\0")
                except OSError:
                    continue
                programs = [os.path.basename(word) for word in words[:2]]
                if (words[0] and not words[0].startswith(("nginx:", "sshd:"))
                        and not {"supervisord", "gunicorn"} & set(programs)):
                    found.setdefault(host, []).append(" ".join(words)[:200])
        return found

    def wait_for_no_leftover_processes(self):
        """Poll (bounded) until only the hosts' daemons run; return what is left."""
        left = self.leftover_processes()
        for _ in range(100):
            if not left:
                break
            time.sleep(0.1)
            left = self.leftover_processes()
        return left


def git(*args, cwd):
    return sandbox.tools.git(*args, cwd=cwd)


def run(*command, cwd=None):
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def mysite(fleet, tmp_path_factory):
    """A fresh Django project with its own deploy folder and the deployer pip-installed."""
    work = tmp_path_factory.mktemp("own-app")
    wheelhouse = os.path.join(fleet.root, "mysite-wheelhouse")
    deployer = str(work / "deployer-venv")

    def installed_deployer():
        """The deployer, installed with pip as a user would (not from this checkout's tree)."""
        run(sys.executable, "-m", "venv", deployer)
        run(f"{deployer}/bin/pip", "install", "-q", PROJECT_ROOT)

    # The deployer's install, mostly waiting on the network, goes on meanwhile.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        deployer_installed = pool.submit(installed_deployer)
        # Django's and gunicorn's wheels (and what they need), for the hosts.
        run(sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "-d", wheelhouse, DJANGO, GUNICORN)
        run("chmod", "-R", "a+rX", wheelhouse)
        # Django from those same wheels, unpacked, to create the project (`django-admin`
        # is `python -m django`): no venv and no install of its own.
        tools = str(work / "django-lib")
        for wheel in glob.glob(os.path.join(wheelhouse, "*.whl")):
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(tools)
        root = str(work / "mysite")
        os.makedirs(root)
        subprocess.run([sys.executable, "-m", "django", "startproject", "mysite", root], check=True,
                       capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONPATH": tools})
        deployer_installed.result()
    with open(os.path.join(root, "mysite", "settings.py"), "a") as handle:
        handle.write(SETTINGS)
    with open(os.path.join(root, "requirements.txt"), "w") as handle:
        handle.write(f"{DJANGO}\n{GUNICORN}\n")
    with open(os.path.join(root, "fabfile.py"), "w") as handle:
        handle.write("from fab.tasks import *  # noqa: F401,F403 - the deployer's tasks\n")
    with open(os.path.join(root, ".gitignore"), "w") as handle:
        handle.write("deploy/secrets/\ndeploy/shared/\n__pycache__/\n")

    site = MySite(fleet, root, os.path.join(deployer, "bin", "fab"), wheelhouse)
    for folder in ("environments", "templates/nginx", "secrets", "shared"):
        os.makedirs(os.path.join(site.deploy_dir, folder))
    with open(os.path.join(BUILTIN_DIR, "templates", "nginx", "proxy.conf.j2")) as handle:
        proxy = handle.read()
    own_proxy = proxy.replace("        location / {", '        add_header X-Mysite-Proxy "own template";\n'
                                                     "        location / {")
    assert own_proxy != proxy
    with open(os.path.join(site.deploy_dir, "templates", "nginx", "proxy.conf.j2"), "w") as handle:
        handle.write(own_proxy)
    with open(os.path.join(site.deploy_dir, "secrets", "production.env"), "w") as handle:
        handle.write(f"# kept out of git\nDJANGO_SECRET_KEY={site.secret_key}\n")
    with open(os.path.join(site.deploy_dir, "shared", ".env"), "w") as handle:
        handle.write(f"DJANGO_ALLOWED_HOSTS=*\nDJANGO_DATABASE={site.database}\n")
    site.write_environment()
    # One database for the whole fleet, as a database server would be.
    os.makedirs(os.path.dirname(site.database))
    os.chmod(os.path.dirname(site.database), 0o1777)

    git("init", "-q", "-b", "main", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "django-admin startproject mysite", cwd=root)
    git("clone", "-q", "--bare", root, site.repo, cwd=root)
    git("remote", "add", "origin", site.repo, cwd=root)
    run("chmod", "-R", "a+rX", site.repo)
    try:
        yield site
    finally:
        site.hosts.remove_from_hosts()
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(site.spec.hosts)) as pool:
            list(pool.map(lambda host: site.hosts.remote(host, "rm -rf ~/www/mysite", check=False), site.spec.hosts))


def deployed(site):
    """Make sure a release is live (for tests run on their own)."""
    if not site.hosts.current("web1"):
        assert_ok(site.fab("deploy"))
    return site.currents()


def test_a_django_project_deploys_from_its_own_repository(mysite, tmp_path):
    site = mysite
    summary = str(tmp_path / "deploy.json")
    result = assert_ok(site.fab("deploy", json_file=summary))
    first = site.currents()
    assert len(set(first.values())) == 1 and None not in first.values(), first

    # Both web hosts serve the Django app, and so does the proxy, through the team's template.
    for host in ("web1", "web2"):
        status, _, body = site.get(site.spec.hosts[host], WEB_PORT)
        assert status == 200 and "Django" in body
    status, headers, body = site.get(site.spec.hosts["proxy1"], site.hosts.proxy_port)
    assert status == 200 and "Django" in body and headers.get("X-Mysite-Proxy") == "own template"

    # The migration ran once (on web1), into the one database, before any host swapped.
    with open(summary) as handle:
        report = json.load(handle)
    steps = {host: {s["step"]: s for s in data["steps"]} for host, data in report["hosts"].items()}
    assert steps["web1"]["migrate"]["outcome"] == "ok" and "migrate" not in steps["web2"]
    first_swap = min(s["swap"]["started_at"] for s in steps.values())
    assert steps["web1"]["migrate"]["finished_at"] < first_swap
    with sqlite3.connect(site.database) as db:
        tables = {row[0] for row in db.execute("select name from sqlite_master where type='table'")}
        applied = db.execute("select count(*) from django_migrations").fetchone()[0]
    assert {"auth_user", "django_session", "django_migrations"} <= tables and applied > 0

    # Static files collected in every web host's release; .env and media/ are shared.
    for host in ("web1", "web2"):
        assert os.path.isfile(site.in_current(host, "static", "admin", "css", "base.css"))
        assert os.path.islink(site.in_current(host, ".env")) and os.path.islink(site.in_current(host, "media"))
    secrets_file = os.path.join(site.hosts.code_root("web1"), "shared", "secrets.env")
    assert oct(os.stat(secrets_file).st_mode & 0o777) == "0o600"
    upload = site.in_current("web2", "media", "avatar.txt")
    with open(upload, "w") as handle:
        handle.write("uploaded by a user\n")
    with open(site.in_current("web1", ".env")) as handle:
        dotenv = handle.read()

    # A second deploy: new code, same shared data; hooks got the deploy's context.
    commit = site.commit("mysite/urls.py", "# second release\n", "second release")
    assert_ok(site.fab("deploy"))
    second = site.currents()
    assert set(second.values()) != set(first.values())
    with open(os.path.join(site.deploy_dir, "after_swap.env")) as handle:
        context = dict(line.split("=", 1) for line in handle.read().splitlines())
    assert context["DEPLOY_RELEASE"] == second["web1"] and context["DEPLOY_COMMIT"] == commit
    assert context["DEPLOY_PREVIOUS_RELEASE"] == first["web1"] and context["DEPLOY_REF"] == "main"
    assert context["DEPLOY_ENVIRONMENT"] == "production" and context["DEPLOY_HOSTS"] == "web1,web2,proxy1"
    assert "@" in context["DEPLOY_PERFORMER"]

    def shared_data_intact():
        with open(upload) as handle:
            assert handle.read() == "uploaded by a user\n"
        with open(site.in_current("web1", ".env")) as handle:
            assert handle.read() == dotenv
        assert site.get(site.spec.hosts["proxy1"], site.hosts.proxy_port)[0] == 200

    shared_data_intact()
    assert_ok(site.fab("rollback"))
    assert site.currents() == first
    shared_data_intact()

    # Management commands get the secrets too; their output is masked like the rest.
    shown = assert_ok(site.fab(
        "manage", "--command", "shell -c 'import os; print(\"key: \" + os.environ[\"DJANGO_SECRET_KEY\"])'"))
    assert "key: ***" in shown.stdout
    everywhere = assert_ok(site.fab("manage:check,all_hosts=yes"))
    assert "--- web1" in everywhere.stdout and "--- web2" in everywhere.stdout
    for output in site.outputs:
        assert site.secret_key not in output
    assert "Traceback" not in result.stderr


def test_preindex_views_prepares_a_release_the_next_deploy_goes_live_with(mysite):
    site = mysite
    deployed(site)
    commit = site.commit("mysite/urls.py", "# prepared ahead\n", "prepared ahead")
    before = site.currents()
    prepared = assert_ok(site.fab("preindex_views"))
    assert site.currents() == before  # nothing went live
    release = next(r for r in site.hosts.releases("web1") if r not in before.values()
                   and site.hosts.meta("web1", r)["commit"] == commit)
    assert site.hosts.meta("web1", release)["status"] == "prepared"
    assert "predeploy" in prepared.stdout

    result = assert_ok(site.fab("deploy"))
    assert site.currents() == {host: release for host in before}
    assert "prepared earlier by preindex_views" in result.stdout
    for step in ("code", "virtualenv", "build", "predeploy"):
        assert any(step in line and "skipped (already done)" in line for line in result.stdout.splitlines()), step


def test_a_missing_linked_file_stops_the_deploy_before_any_swap(mysite):
    site = mysite
    before = deployed(site)
    site.write_environment(shared_files_from=None)
    os.remove(os.path.join(site.hosts.code_root("web2"), "shared", ".env"))
    try:
        site.commit("mysite/urls.py", "# needs .env\n", "needs .env")
        result = site.fab("deploy")
        line = assert_one_line_error(result, "web2", ".env is missing")
        assert "web1" not in line
        assert site.currents() == before
        assert site.wait_for_no_leftover_processes() == {}
    finally:
        site.write_environment()
    assert_ok(site.fab("deploy:resume=yes"))  # shared_files_from puts .env back
    assert os.path.isfile(os.path.join(site.hosts.code_root("web2"), "shared", ".env"))


def test_a_too_slow_predeploy_command_is_stopped_and_nothing_swaps(mysite):
    site = mysite
    before = deployed(site)
    site.write_environment(predeploy={"commands": [SLOW_MARKER], "role": "webworkers", "timeout": 2})
    try:
        site.commit("mysite/urls.py", "# slow to prepare\n", "slow to prepare")
        result = site.fab("deploy")
        assert_one_line_error(result, "predeploy", "web1", "timed out after 2s")
        assert site.currents() == before
        assert site.wait_for_no_leftover_processes() == {}
    finally:
        site.write_environment()
    for output in site.outputs:
        assert site.secret_key not in output

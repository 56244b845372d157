"""The settings of an environment file (`<deploy folder>/environments/<env>.yml`): its schema.

Pydantic models, strict (an unknown or misspelt setting is an error) and frozen;
each validator checks one setting or how settings refer to each other. Finding,
reading and checking a file against this schema is `fab.config`'s job.
"""
import functools
import os
import posixpath
import re
from typing import Dict, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from fab import templates
from fab.folders import NAME as _NAME
from fab.paths import IN_RELEASE, VENV_LINK
from fab.topology import Topology


_ENV_VAR = r"^[A-Za-z_][A-Za-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: app.fetch: where a commit's objects come from on the hosts.
FETCH_CONTROLLER, FETCH_HOSTS = "controller", "hosts"


class AppConfig(_Strict):
    repo: str = Field(min_length=1, description="git URL or path the controller (or, with fetch: hosts, each host) "
                                                "fetches from")
    branch: str = Field(default="main", min_length=1)
    #: controller: the controller fetches the commit and sends each host a git bundle of
    #: what its cache lacks (hosts need no access to the repository, nor credentials);
    #: hosts: every host fetches from the repository itself.
    fetch: Literal["controller", "hosts"] = FETCH_CONTROLLER


class HealthCheck(_Strict):
    #: HTTP path that must answer 200; None checks only that the port accepts connections.
    path: Optional[str] = "/health"
    #: If set, the body of `path` must contain this text.
    expect_body: Optional[str] = None
    #: Also ask this path for JSON {"commit", "release"} and require the new ones
    #: (catches an app server still running old code after the swap).
    version_path: Optional[str] = None
    #: Seconds to keep retrying before the check fails.
    timeout: float = Field(default=30.0, gt=0)
    #: Server errors (HTTP 5xx) in a row after which the check fails at once instead
    #: of waiting out `timeout` (a refused connection, an app starting, still waits).
    max_server_errors: int = Field(default=3, ge=1)


class Service(_Strict):
    role: str
    #: supervisor: a program rendered from `template` and run by supervisord.
    #: port: pbdeploy-style, "running" means something listens on `port`.
    control: Literal["supervisor", "port"] = "supervisor"
    template: Optional[str] = Field(default=None, description="Jinja2 template under templates/")
    port: Optional[int] = Field(default=None, ge=1, le=65535)
    workers: Union[int, Literal["auto"]] = 2
    #: rolling: drained from the proxies that balance it, then restarted.
    #: reload: when only the code changed (same virtualenv, same rendered config),
    #: reloaded in place with SIGHUP, not drained (gunicorn starts new workers on
    #: the new code while the old ones finish their requests); otherwise as rolling.
    restart: Literal["rolling", "reload"] = "rolling"
    #: For a proxy: the service whose hosts it balances (drained while they restart).
    balances: Optional[str] = None
    start: Optional[str] = None
    reload: Optional[str] = None
    daemonizes: bool = True
    before: Optional[str] = None
    after: Optional[str] = None
    health_check: Optional[HealthCheck] = None
    #: For the stock gunicorn template: the WSGI application, e.g. mysite.wsgi:application.
    wsgi: str = Field(default="app:application", pattern=r"^[A-Za-z_][\w.]*(:[A-Za-z_][\w.()]*)?$")
    #: Where the app server listens; default: the host's address and `port`.
    bind: Optional[str] = Field(default=None, pattern=r"^\S+$")
    #: Seconds a worker may take on one request before the app server restarts it.
    timeout: int = Field(default=30, ge=1)
    #: Environment variables of the service's programs (not secret: see `secrets`).
    environment: Dict[str, str] = {}
    #: Whether the service runs the app's code (the release's virtualenv). Default:
    #: yes for supervisor programs, no for port-controlled ones (an nginx proxy).
    #: A host whose services all run none gets no virtualenv and no build commands
    #: (fab.topology.Topology.runs_app).
    app: Optional[bool] = None

    @field_validator("environment")
    @classmethod
    def _variable_names(cls, variables):
        for name in variables:
            if not re.match(_ENV_VAR, name):
                raise ValueError(f"invalid environment variable name {name!r}")
        return variables

    @field_validator("workers")
    @classmethod
    def _workers_positive(cls, value):
        if isinstance(value, int) and value < 1:
            raise ValueError("must be at least 1 or 'auto'")
        return value

    @model_validator(mode="after")
    def _consistent(self):
        if self.health_check is not None and self.port is None:
            raise ValueError("a health_check needs a port")
        if self.control == "supervisor" and not self.template:
            raise ValueError("a supervisor service needs a template")
        if self.control == "port" and (self.port is None or not self.start):
            raise ValueError("a port-controlled service needs a port and a start command")
        if not self.runs_app and any(VENV_LINK in (command or "") for command in (self.start, self.reload,
                                                                                   self.before, self.after)):
            raise ValueError(f"its commands use the release's virtualenv ({VENV_LINK}) but it runs no app code "
                             "(a port service's default): set app: true")
        return self

    @property
    def runs_app(self):
        """Whether the service runs the app's code: `app`, or by default whether supervisor runs it."""
        return self.control == "supervisor" if self.app is None else self.app

    def workers_for(self, cpus):
        """Worker processes on a host with `cpus` CPUs (`auto`: 2 per CPU + 1)."""
        return 2 * cpus + 1 if self.workers == "auto" else self.workers


_SIZE = r"^(\d+|\d+(\.\d+)?%)$"


class HttpGate(_Strict):
    """A gate asked over HTTP from the deployer's machine: `http` must answer `status`,
    and with `json_path` (dotted keys and list indexes, e.g. a Prometheus query's
    data.result.0.value.1) the number found there must lie within `min`..`max`."""

    http: str = Field(pattern=r"^https?://\S+$", description="the URL asked")
    status: int = Field(default=200, ge=100, le=599)
    json_path: Optional[str] = Field(default=None, pattern=r"^[^.\s]+(\.[^.\s]+)*$")
    max: Optional[float] = None
    min: Optional[float] = None
    #: Seconds one request may take.
    timeout: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _threshold_needs_path(self):
        if (self.max is not None or self.min is not None) and not self.json_path:
            raise ValueError("max and min compare the number at json_path: give json_path")
        if self.json_path and self.max is None and self.min is None:
            raise ValueError("json_path needs a threshold: max, min or both")
        return self


class CommandGate(_Strict):
    """A gate run on the deployer's machine in the deploy folder, with the hooks'
    DEPLOY_* variables: it passes when it exits 0."""

    command: str = Field(min_length=1)
    #: Seconds it may take (longer fails the gate).
    timeout: float = Field(default=30.0, gt=0)


class Rollout(_Strict):
    """How a release goes live: a canary wave, then waves of `batch` hosts."""

    #: Host names, or how many hosts (web hosts first) go live first, alone.
    canary: Union[int, List[str]] = 1
    #: Hosts per wave after the canary: a number or a percentage of all hosts.
    batch: Union[int, str] = "25%"
    #: How many hosts may fail (a number or a percentage) while the rollout goes
    #: on; failed hosts are put back on their previous release. The canary may not fail.
    failure_limit: Union[int, str] = 0
    #: Seconds the canary's health checks (and the gates, after every wave but the
    #: last) must keep passing before the next wave.
    canary_watch: float = Field(default=0, ge=0)
    #: Checks from the deployer's machine (fab.gates): each must pass at every round,
    #: for `canary_watch` seconds after the canary and between waves; a failure puts
    #: every started wave back, as a failed canary does.
    gates: List[Union[HttpGate, CommandGate]] = []
    #: Seconds between two rounds of the gates.
    gate_interval: float = Field(default=5.0, gt=0)
    #: Stop after the canary (the release marked paused) until `deploy:resume=yes`
    #: continues with the other waves or `rollback` gives it up.
    pause: bool = False

    @field_validator("batch", "failure_limit")
    @classmethod
    def _size(cls, value, info):
        if isinstance(value, bool) or not re.match(_SIZE, str(value)):
            raise ValueError("must be a whole number or a percentage such as 25%")
        if info.field_name == "batch" and str(value).rstrip("%") in ("0", "0.0"):
            raise ValueError("must be at least 1 host")
        if str(value).endswith("%") and float(str(value)[:-1]) > 100:
            raise ValueError("a percentage may not exceed 100%")
        return value

    @field_validator("canary")
    @classmethod
    def _canary(cls, value):
        if isinstance(value, int) and (isinstance(value, bool) or value < 0):
            raise ValueError("must be a number of hosts (0 or more) or a list of host names")
        return value


class Manage(_Strict):
    role: str
    #: Run in the current release; the user's command's words are appended, quoted.
    command: str = f"{VENV_LINK}/bin/python manage.py"


class TransferSettings(_Strict):
    """How artifacts (bundles, wheels) reach the hosts (fab.transfer)."""

    #: Hosts pass artifacts on to each other (each serves what it has, over HTTP, on
    #: `ports`), so the controller sends each one once; false: it sends to every host.
    peers: bool = True
    #: Ports a serving host may listen on: the hosts must reach each other on them.
    ports: str = Field(default="47300-47399", pattern=r"^[0-9]{4,5}-[0-9]{4,5}$")
    #: Receivers one host sends to at once.
    fanout: int = Field(default=3, ge=1, le=32)
    #: Seconds a host's server waits for a request before it exits on its own.
    idle_timeout: float = Field(default=300.0, gt=0)

    @field_validator("ports")
    @classmethod
    def _port_range(cls, value):
        first, last = (int(port) for port in value.split("-"))
        if not 1024 <= first <= last <= 65535:
            raise ValueError(f"{value!r} is not a range of ports from 1024 to 65535 (START-END)")
        return value


class HistorySettings(_Strict):
    """Where this environment's operations are recorded (fab/history). `history: <url>`
    is short for `history: {url: <url>}`; FAB_HISTORY_URL overrides both."""

    url: Optional[str] = Field(default=None, min_length=1, description="sqlite:/// or postgresql:// URL")
    #: The name of an environment variable holding the URL (keeps a password out of the file).
    url_env: Optional[str] = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    #: Days of log text kept; older operations keep their summary rows and steps.
    retention_days: int = Field(default=90, ge=1)
    #: Seconds without a heartbeat after which a running operation reads as
    #: interrupted and its claim may be taken over.
    stale_seconds: float = Field(default=60.0, ge=15)

    @model_validator(mode="after")
    def _one_source(self):
        if self.url and self.url_env:
            raise ValueError("give url or url_env, not both")
        return self

class Wheels(_Strict):
    """How the hosts get the app's packages (README › The wheel store)."""

    #: once: wheels are built once per venv key (on the controller or one builder
    #: host), sent to the hosts that lack them and installed with no index.
    #: each_host: every host installs from the index in pip_args itself.
    build: Literal["once", "each_host"] = "once"
    #: The host that builds wheels the controller cannot make for the hosts'
    #: platform (default: the first host that needs the venv).
    builder: Optional[str] = Field(default=None, pattern=_NAME)
    #: auto: the controller when its python matches the hosts' (or binary wheels
    #: for their platform can be downloaded), else the builder host.
    where: Literal["auto", "controller", "builder"] = "auto"


class OnRole(_Strict):
    """Commands run in a new release before the swap, on the hosts of one role."""

    role: str
    #: true: on the role's first host only (e.g. a database migration); false: on each.
    once: bool = True
    #: Seconds the commands may take; past that they are stopped and the deploy aborts.
    timeout: float = Field(default=600.0, gt=0)


class Migrate(OnRole):
    command: str = Field(min_length=1)


class Predeploy(OnRole):
    commands: List[str] = Field(min_length=1)


class Secrets(_Strict):
    #: A local file of KEY=value lines (kept out of git), relative to the deploy folder.
    file: Optional[str] = None
    #: Names of variables taken from the deployer's own environment (e.g. set by CI).
    environment: List[str] = []

    @field_validator("environment")
    @classmethod
    def _variable_names(cls, names):
        for name in names:
            if not re.match(_ENV_VAR, name):
                raise ValueError(f"invalid environment variable name {name!r}")
        return names


#: In the order a deploy runs them (before_restart/after_restart: the restarting tasks').
HOOK_POINTS = ("before_build", "after_build", "before_migrate", "before_swap", "after_swap",
               "before_restart", "after_restart")


class Hooks(_Strict):
    """Commands run on the deployer's machine around a task's stages, in the deploy
    folder, with the deploy's context as DEPLOY_* environment variables."""

    before_build: List[str] = []
    after_build: List[str] = []
    #: Before `migrate` (the last point before anything a deploy cannot simply undo: an approval gate).
    before_migrate: List[str] = []
    before_swap: List[str] = []
    after_swap: List[str] = []
    before_restart: List[str] = []
    after_restart: List[str] = []
    #: After a deploy, rollback or hotfix_deploy failed (and put its hosts back).
    on_failure: List[str] = []
    #: After a rollback went live everywhere (after its after_swap).
    after_rollback: List[str] = []
    #: Seconds one hook command may take.
    timeout: float = Field(default=300.0, gt=0)

    def commands(self, point):
        return getattr(self, point)


#: What a webhook may be told about (fab.notify).
NOTIFY_EVENTS = ("started", "succeeded", "failed", "rolled_back", "frozen", "unfrozen")


class Webhook(_Strict):
    """A receiver told about the environment's deploys (fab.notify)."""

    #: http(s) URL; its credentials, path and query are masked in every output.
    url: str
    #: json: the generic payload (README: Notifications); slack: an incoming webhook's {"text"}.
    kind: Literal["json", "slack"] = "json"
    events: List[Literal[NOTIFY_EVENTS]] = list(NOTIFY_EVENTS)
    #: Seconds one attempt may take; also the most a task waits for it at its end.
    timeout: float = Field(default=5.0, gt=0, le=60)
    #: Attempts after the first when the receiver cannot be reached or answers 5xx or 429.
    retries: int = Field(default=2, ge=0, le=10)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url):
        if not re.match(r"^https?://[^/\s?#]+", url):
            raise ValueError("must be an http:// or https:// URL")  # never echoed: it may hold a token
        return url

    @field_validator("events")
    @classmethod
    def _some_events(cls, events):
        if not events:
            raise ValueError("at least one event (or leave it out for all)")
        if len(set(events)) != len(events):
            raise ValueError("an event is listed twice")
        return events


def _linked_path(value):
    """A path inside the release (and inside shared/): relative, no `..`, not ours."""
    normal = posixpath.normpath(value)
    if (not value or value.startswith(("/", "~")) or normal in (".", "..") or normal.startswith("../")
            or "/../" in f"/{value}/" or "\n" in value):
        raise ValueError(f"{value!r} must be a relative path inside the release")
    if normal.split("/")[0] in IN_RELEASE:  # the deployer's own parts of a release
        raise ValueError(f"{value!r} is the deployer's own part of a release")
    return normal


#: Directories that hold other things than one app's deploys: a code root may be
#: inside one of them (/srv/app, /var/www/app), never one of them itself.
_SHARED_DIRECTORIES = {
    "/usr/local", "/usr/share", "/var/lib", "/var/log", "/var/tmp",
    "/var/www", "/var/cache", "/var/opt", "/var/spool", "/var/mail", "/opt/local",
}
#: System directories nothing of a deploy belongs in, at any depth.
_SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run", "/sbin",
                 "/sys", "/usr/bin", "/usr/lib", "/usr/sbin")
_HOME_PARENTS = ("home", "Users")


def _own_directory(code_root):
    """`code_root`, if it is a directory the deployer may fill on its own (releases/,
    shared/, current, log/): not /, a top-level or shared system directory, a user's
    home or a dot-directory in it (~/.ssh), and without `..`. ValueError otherwise."""
    parts = code_root.split("/")
    if ".." in parts:
        raise ValueError(f"{code_root!r} must not contain '..'")
    normal = posixpath.normpath(code_root.replace("~", "/~", 1) if code_root.startswith("~") else code_root)
    words = [word for word in normal.split("/") if word]
    in_home = (words[1:] if words[:1] == ["~"] else
               words[2:] if len(words) >= 2 and words[0] in _HOME_PARENTS else
               words[1:] if words[:1] == ["root"] else None)
    shared = (len(words) <= 1 or normal in _SHARED_DIRECTORIES
              or any(normal == tree or normal.startswith(tree + "/") for tree in _SYSTEM_TREES))
    if shared or in_home == [] or (in_home and in_home[0].startswith(".")):
        raise ValueError(
            f"{code_root!r} is not a directory of its own (a system directory, a home, or a "
            "directory other programs use): name one for this app, e.g. ~/www/<app> or /srv/<app>")
    return code_root


class Environment(_Strict):
    name: str = Field(pattern=_NAME)
    app: AppConfig
    code_root: str = Field(min_length=1)
    ssh_config: Optional[str] = None
    roles: Dict[str, List[str]]
    python: str = "python3"
    virtualenv: str = "virtualenv"
    #: uv on the hosts (a command): where a host has it, virtualenvs are built with
    #: `uv venv` + `uv pip install` (much faster); elsewhere with virtualenv + pip.
    uv: Optional[str] = Field(default=None, pattern=r"^\S+$")
    requirements: List[str] = ["requirements.txt"]
    pip_args: List[str] = []
    build_commands: List[str] = []
    checks: List[str] = []
    keep_releases: int = Field(default=3, ge=1)
    #: A successful rollback freezes the environment ("rolled back: <message>"), so
    #: continuous delivery cannot redeploy the bad commit until someone unfreezes.
    rollback_freezes: bool = False
    supervisorctl: str = "supervisorctl"
    services: Dict[str, Service] = {}
    manage: Optional[Manage] = None
    pillow_role: str = "pillowtop"
    rollout: Rollout = Rollout()
    command_timeout: float = Field(default=600.0, gt=0)
    #: SSH connections opening at once, at most (like Kamal's 30); every host still
    #: works in parallel once connected.
    ssh_concurrency: int = Field(default=30, ge=1)
    #: zlib on every SSH connection (OpenSSH's `Compression yes`): the remote scripts every
    #: command carries shrink about fourfold, so the controller's upload to a large fleet
    #: is mostly the artifacts themselves. Off: a fast network and a busy controller CPU.
    ssh_compression: bool = True
    history: HistorySettings = HistorySettings()
    wheels: Wheels = Wheels()
    transfer: TransferSettings = TransferSettings()

    @field_validator("history", mode="before")
    @classmethod
    def _history_url_shorthand(cls, value):
        return {"url": value} if isinstance(value, str) else value

    #: Kept in <code_root>/shared/ and linked into every release before its build.
    linked_files: List[str] = []
    linked_dirs: List[str] = []
    #: A local folder (relative to the deploy folder): a linked file missing on a
    #: host is uploaded from here. Without it, a missing linked file stops the deploy.
    shared_files_from: Optional[str] = None
    secrets: Optional[Secrets] = None
    migrate: Optional[Migrate] = None
    predeploy: Optional[Predeploy] = None
    hooks: Hooks = Hooks()
    notify: List[Webhook] = []
    #: The page proxies answer in maintenance (fab <env> maintenance:on): a Jinja2
    #: template under templates/, given `message` and `environment`; default a stock page.
    maintenance_template: Optional[str] = None
    #: The Retry-After (seconds) of the proxies' 503 answers in maintenance.
    maintenance_retry_after: int = Field(default=300, ge=0)
    #: The deploy folder this environment was read from (set on load, not a setting).
    folder: str = ""
    _secret_values: Dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("linked_files", "linked_dirs")
    @classmethod
    def _linked_paths(cls, paths):
        normal = [_linked_path(p) for p in paths]
        if len(set(normal)) != len(normal):
            raise ValueError("a path is listed twice")
        return normal

    @field_validator("roles")
    @classmethod
    def _roles_have_hosts(cls, roles):
        if not roles:
            raise ValueError("at least one role with hosts is required")
        for role, hosts in roles.items():
            if not re.match(_NAME, role):
                raise ValueError(f"invalid role name {role!r}")
            if not hosts:
                raise ValueError(f"role {role!r} has no hosts")
            for host in hosts:
                if not re.match(_NAME, host):
                    raise ValueError(f"invalid host name {host!r} in role {role!r}")
        return roles

    @field_validator("code_root")
    @classmethod
    def _code_root_is_rooted(cls, value):
        if not (value.startswith("/") or value == "~" or value.startswith("~/")):
            raise ValueError("must be absolute or start with ~/")
        return _own_directory(value.rstrip("/") or "/")

    @field_validator("services")
    @classmethod
    def _service_names(cls, services):
        for name in services:
            if not re.match(_NAME, name):
                raise ValueError(f"invalid service name {name!r}")
        return services

    @model_validator(mode="after")
    def _references_exist(self):
        known = ", ".join(sorted(self.roles))
        for name, service in self.services.items():
            if service.role not in self.roles:
                raise ValueError(f"service {name!r} runs on unknown role {service.role!r} (roles: {known})")
            if service.balances is not None:
                target = self.services.get(service.balances)
                if target is None or target.port is None or target.control != "supervisor":
                    raise ValueError(
                        f"service {name!r} balances {service.balances!r}, which is not a "
                        "supervisor service with a port"
                    )
        if isinstance(self.rollout.canary, list):
            unknown = [h for h in self.rollout.canary if h not in self.hosts]
            if unknown:
                raise ValueError(f"rollout.canary names unknown host(s) {', '.join(unknown)} "
                                 f"(hosts: {', '.join(self.hosts)})")
        if self.wheels.builder and self.wheels.builder not in self.hosts:
            raise ValueError(f"wheels.builder names unknown host {self.wheels.builder} "
                             f"(hosts: {', '.join(self.hosts)})")
        for setting in ("manage", "migrate", "predeploy"):
            value = getattr(self, setting)
            if value and value.role not in self.roles:
                raise ValueError(f"{setting} runs on unknown role {value.role!r} (roles: {known})")
        both = set(self.linked_files) & set(self.linked_dirs)
        if both:
            raise ValueError(f"{', '.join(sorted(both))} is both a linked file and a linked dir")
        linked = [*self.linked_dirs, *self.linked_files]
        nested = next(((inner, outer) for inner in linked for outer in linked if inner.startswith(outer + "/")), None)
        if nested:
            raise ValueError("linked path {} is inside linked path {} (in shared/ through it already)".format(*nested))
        return self

    @property
    def hosts(self):
        """Every host once, in the order the roles first name them."""
        return self.topology.hosts

    @functools.cached_property
    def topology(self):
        """Which services, programs and balancers sit on which hosts (fab.topology), made
        once: the settings it is made from are frozen."""
        return Topology.of(self)

    def local_path(self, path):
        """A path an environment file names on the deployer's machine: `~` expanded,
        relative to the environment's deploy folder."""
        path = os.path.expanduser(path)
        return path if os.path.isabs(path) else os.path.join(self.folder, path)

    def ssh_config_path(self):
        return self.local_path(self.ssh_config) if self.ssh_config else None

    @property
    def template_dirs(self):
        """Where its templates are found, first match wins: its own, then the built-in ones."""
        return [os.path.join(self.folder, "templates"), templates.BUILTIN_TEMPLATES]

    @property
    def secret_values(self):
        """{name: value} of the environment's secrets, read on load (never printed)."""
        return dict(self._secret_values)

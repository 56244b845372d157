"""What runs on the hosts (fab.settings): the services and their health checks, the
management command, the secrets the programs are given.
"""
import re
from typing import Dict, List, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from fab.paths import VENV_LINK
from fab.settings.base import ENV_VAR_NAME, Strict


class HealthCheck(Strict):
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


class Service(Strict):
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
            if not re.match(ENV_VAR_NAME, name):
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


class Manage(Strict):
    role: str
    #: Run in the current release; the user's command's words are appended, quoted.
    command: str = f"{VENV_LINK}/bin/python manage.py"


class Secrets(Strict):
    #: A local file of KEY=value lines (kept out of git), relative to the deploy folder.
    file: Optional[str] = None
    #: Names of variables taken from the deployer's own environment (e.g. set by CI).
    environment: List[str] = []

    @field_validator("environment")
    @classmethod
    def _variable_names(cls, names):
        for name in names:
            if not re.match(ENV_VAR_NAME, name):
                raise ValueError(f"invalid environment variable name {name!r}")
        return names

"""The settings of an environment file (`<deploy folder>/environments/<env>.yml`): its schema.

Pydantic models, strict (an unknown or misspelt setting is an error) and frozen;
each validator checks one setting or how settings refer to each other. Finding,
reading and checking a file against this schema is `fab.config`'s job.

`Environment` is here, the models of its parts beside it, by concept: build (the app,
transfer, wheels, migrate, predeploy), services (services, health checks, manage,
secrets), rollout (waves and gates), team (history, hooks, webhooks) and layout (the
code root and linked paths allowed).
"""
import functools
import os
import re
from typing import Dict, List, Optional

from pydantic import Field, PrivateAttr, field_validator, model_validator

from fab import templates
from fab.folders import NAME as _NAME
from fab.settings.base import Strict
from fab.settings.build import AppConfig, Migrate, Predeploy, TransferSettings, Wheels
from fab.settings.layout import linked_path, own_directory
from fab.settings.rollout import Rollout
from fab.settings.services import Manage, Secrets, Service
from fab.settings.team import HistorySettings, Hooks, Webhook
from fab.topology import Topology


class Environment(Strict):
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
        normal = [linked_path(p) for p in paths]
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
        return own_directory(value.rstrip("/") or "/")

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

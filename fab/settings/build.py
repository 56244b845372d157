"""How a release is made (fab.settings): the app's repository and where hosts get its
commits, how artifacts and wheels reach the hosts, the commands run in a new release
before the swap (migrate, predeploy).
"""
from typing import List, Literal, Optional

from pydantic import Field, field_validator

from fab.folders import NAME as _NAME
from fab.settings.base import Strict


#: app.fetch: where a commit's objects come from on the hosts.
FETCH_CONTROLLER, FETCH_HOSTS = "controller", "hosts"


class AppConfig(Strict):
    repo: str = Field(min_length=1, description="git URL or path the controller (or, with fetch: hosts, each host) "
                                                "fetches from")
    branch: str = Field(default="main", min_length=1)
    #: controller: the controller fetches the commit and sends each host a git bundle of
    #: what its cache lacks (hosts need no access to the repository, nor credentials);
    #: hosts: every host fetches from the repository itself.
    fetch: Literal["controller", "hosts"] = FETCH_CONTROLLER


class TransferSettings(Strict):
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


class Wheels(Strict):
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


class OnRole(Strict):
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

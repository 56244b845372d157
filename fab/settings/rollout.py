"""How a release goes live (fab.settings): the waves, the failure limit, the canary's
watch and the gates asked between waves.
"""
import re
from typing import List, Optional, Union

from pydantic import Field, field_validator, model_validator

from fab.settings.base import Strict


_SIZE = r"^(\d+|\d+(\.\d+)?%)$"


class HttpGate(Strict):
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


class CommandGate(Strict):
    """A gate run on the deployer's machine in the deploy folder, with the hooks'
    DEPLOY_* variables: it passes when it exits 0."""

    command: str = Field(min_length=1)
    #: Seconds it may take (longer fails the gate).
    timeout: float = Field(default=30.0, gt=0)


class Rollout(Strict):
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

"""What the team is told and adds around a task (fab.settings): the history store that
records it, the hooks run on the deployer's machine, the webhooks notified.
"""
import re
from typing import List, Literal, Optional

from pydantic import Field, field_validator, model_validator

from fab.settings.base import Strict


class HistorySettings(Strict):
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


#: In the order a deploy runs them (before_restart/after_restart: the restarting tasks').
HOOK_POINTS = ("before_build", "after_build", "before_migrate", "before_swap", "after_swap",
               "before_restart", "after_restart")


class Hooks(Strict):
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


class Webhook(Strict):
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

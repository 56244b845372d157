"""Notifications: the environment's webhooks (`notify:`) told when a task starts and ends.

A deploy, rollback or hotfix_deploy is watched from its event stream (a
`TaskWatch` subscribes for its run, fab.runner): `started` once the task has
chosen its release (fab.events.TaskContext), then `succeeded` (`rolled_back`
for a rollback) or `failed` (with the error line and the failing hosts) when it
ends. `frozen` and `unfrozen` are sent by whoever freezes (`send`).

Each webhook has its own sender thread, so a slow receiver delays neither the
task nor the other receivers: an attempt lasts at most the webhook's `timeout`,
a failed attempt (no answer, a 5xx or 429) is tried again up to `retries`
times, and at its end the task waits at most the longest `timeout` for what is
still being sent. What did not get through is one warning line per webhook; a
notification never fails a task. Payloads are masked like every output; the
webhooks' URLs (their credentials, and all after the scheme, where tokens live)
are registered as secrets when the environment loads (`url_secrets`).
"""
import base64
import dataclasses
import datetime as dt
import json
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from fab import events, hooks
from fab.events import stream
from fab.outputs.record import TaskRecord
from fab.secrets import credentials_in, safe_to_show
from fab.shown import shown_data

#: The tasks whose runs are notified (and whose failures run `on_failure` hooks).
NOTIFIED_TASKS = ("deploy", "rollback", "hotfix_deploy")
#: The JSON payload's `format`: bumped when a field changes meaning or goes away.
FORMAT_VERSION = 1
#: Seconds between attempts at one notification (doubling, at most RETRY_PAUSE_MAX).
RETRY_PAUSE, RETRY_PAUSE_MAX = 0.2, 1.0


# --- what is sent ---------------------------------------------------------------------


def event_after(task, outcome, started_sent):
    """The event that tells how a task ended (`outcome`: fab.events'), or None: a
    rollback that went live is `rolled_back`, any other success `succeeded`; a
    failure or an interrupt `failed`, and so is a refusal once `started` was sent
    (a receiver sees an end for every start); a refusal before that tells nothing."""
    if outcome == events.SUCCEEDED:
        return "rolled_back" if task == "rollback" else "succeeded"
    if outcome == events.REFUSED and not started_sent:
        return None
    return "failed"


def payload(event, context, controller, duration=None, at=None):
    """The generic JSON payload (README: Notifications): `context` is a
    fab.hooks.HookContext (its `error` and `failed_hosts` set for `failed`)."""
    return {
        "format": FORMAT_VERSION,
        "event": event,
        "environment": context.environment,
        "task": context.task,
        "release": context.release or None,
        "commit": context.commit or None,
        "ref": context.ref or None,
        "previous_release": context.previous_release or None,
        "performer": context.performer,
        "hosts": list(context.hosts),
        "message": context.message or None,
        "error": context.error or None,
        "failed_hosts": list(context.failed_hosts),
        "duration": round(duration, 3) if duration is not None else None,
        "controller": controller,
        "at": dt.datetime.fromtimestamp(time.time() if at is None else at, dt.timezone.utc)
                         .isoformat(timespec="milliseconds"),
    }


_SLACK_ICONS = {"started": ":arrow_forward:", "succeeded": ":white_check_mark:", "failed": ":x:",
                "rolled_back": ":leftwards_arrow_with_hook:", "frozen": ":snowflake:", "unfrozen": ":sunny:"}


def slack_text(data):
    """One line (and the message, quoted) for a Slack-compatible incoming webhook, from `payload`'s data."""
    release = f" of {data['release']}" if data["release"] else ""
    commit = f" ({data['commit'][:12]}{', ' + data['ref'] if data['ref'] else ''})" if data["commit"] else ""
    took = f" in {data['duration']:.0f}s" if data["duration"] is not None else ""
    what = {
        "started": f"{data['task']}{release}{commit} started",
        "succeeded": f"{data['task']}{release}{commit} succeeded{took}",
        "rolled_back": f"rolled back to {data['release']}{commit}{took}",
        "failed": f"{data['task']}{release}{commit} failed{took}"
                  + (f" on {', '.join(data['failed_hosts'])}" if data["failed_hosts"] else "")
                  + (f": {data['error']}" if data["error"] else ""),
        "frozen": "frozen", "unfrozen": "unfrozen",
    }[data["event"]]
    text = f"{_SLACK_ICONS[data['event']]} *{data['environment']}*: {what} by {data['performer']}"
    if data["message"]:
        text += "\n> " + data["message"].replace("\n", "\n> ")
    # Slack reads &, < and > as its own markup.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n&gt; ", "\n> ")


def body(kind, data):
    """The bytes POSTed to a webhook of `kind` (json or slack), secrets masked."""
    data = shown_data(data, safe_to_show)
    document = {"text": slack_text(data)} if kind == "slack" else data
    return json.dumps(document).encode()


# --- sending --------------------------------------------------------------------------


class NotDelivered(Exception):
    """One attempt failed; `retry` says whether another might succeed."""

    def __init__(self, why, retry=True):
        super().__init__(why)
        self.retry = retry


def post(url, data, timeout):
    """POST `data` (JSON bytes) to `url` within `timeout` seconds per socket wait;
    NotDelivered saying why (never the URL). A URL's user:password is sent as basic auth."""
    parts = urllib.parse.urlsplit(url)
    headers = {"Content-Type": "application/json", "User-Agent": "fab-deploy"}
    if parts.username is not None:
        login = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(login.encode()).decode()
        url = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(65536)
    except urllib.error.HTTPError as error:
        raise NotDelivered(f"HTTP {error.code}", retry=error.code >= 500 or error.code == 429) from None
    except urllib.error.URLError as error:
        reason = error.reason
        raise NotDelivered("no answer within {:g}s".format(timeout) if isinstance(reason, TimeoutError)
                           else getattr(reason, "strerror", None) or str(reason)) from None
    except TimeoutError:
        raise NotDelivered(f"no answer within {timeout:g}s") from None
    except OSError as error:
        raise NotDelivered(error.strerror or type(error).__name__) from None


def deliver(webhook, data, send=post, pause=time.sleep):
    """Send `data` to `webhook` with its retries; None once delivered, else why not
    (the last attempt's reason, and how many attempts)."""
    attempts = 1 + webhook.retries
    for attempt in range(attempts):
        try:
            send(webhook.url, data, webhook.timeout)
            return None
        except NotDelivered as error:
            if not error.retry or attempt == attempts - 1:
                return f"{error} (after {attempt + 1} attempt{'s' if attempt else ''})"
        pause(min(RETRY_PAUSE * 2 ** attempt, RETRY_PAUSE_MAX))
    return None  # not reached: the last attempt returns


class Sender:
    """One webhook's notifications, sent in order by a thread of its own."""

    def __init__(self, webhook, number, send=post):
        self.webhook = webhook
        self.number = number  # its place in `notify:`, from 1: the URL shows masked
        self._send = send
        self._queue = queue.Queue()
        self._thread = None
        self.undelivered = []  # (event, why)

    def post(self, event, data):
        if event not in self.webhook.events:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
            self._thread.start()
        self._queue.put((event, body(self.webhook.kind, data)))

    def _run(self):
        while True:
            event, data = self._queue.get()
            try:
                why = deliver(self.webhook, data, self._send)
                if why:
                    self.undelivered.append((event, why))
            finally:
                self._queue.task_done()

    def wait(self, deadline):
        """Wait until everything is sent or `deadline` (time.monotonic()); what is left
        is given up (the daemon thread dies with the process) and counted undelivered."""
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return self._queue.unfinished_tasks
                self._queue.all_tasks_done.wait(left)
        return 0

    def problem(self, pending, waited):
        """The one warning line for this webhook (`pending` notifications still unsent
        after `waited` seconds), or None if all got through."""
        unsent = "1 notification" if pending == 1 else f"{pending} notifications"
        failed = [*(f"{event}: {why}" for event, why in self.undelivered),
                  *([f"{unsent} still unsent after waiting {waited:g}s"] if pending else [])]
        if not failed:
            return None
        return (f"notification to {self.webhook.kind} webhook {self.number} ({self.webhook.url}) failed: "
                f"{'; '.join(failed)}; the task is not affected")


class Senders:
    """The environment's webhooks, each with its Sender."""

    def __init__(self, webhooks, send=post):
        self._senders = [Sender(webhook, number, send) for number, webhook in enumerate(webhooks, 1)]
        self._closed = False

    def post(self, event, data):
        for sender in self._senders:
            sender.post(event, data)

    def close(self):
        """Wait at most the longest timeout for what is still being sent, then say once
        per webhook what did not get through (a warning on the event stream)."""
        if self._closed:
            return
        self._closed = True
        longest = max((sender.webhook.timeout for sender in self._senders), default=0)
        deadline = time.monotonic() + longest
        pending = [sender.wait(deadline) for sender in self._senders]
        for sender, left in zip(self._senders, pending):
            line = sender.problem(left, longest)
            if line:
                stream.warning(line)


def send(env, event, context, duration=None):
    """Tell `env`'s webhooks about `event` (e.g. "frozen", "unfrozen") with `context` (a
    fab.hooks.HookContext); waits at most their timeout, and warns about what did not
    get through. For tasks that are not watched (freeze, unfreeze)."""
    from fab.identity import controller_name

    senders = Senders(env.notify)
    senders.post(event, payload(event, context, controller_name(), duration))
    senders.close()


# --- watching a task ------------------------------------------------------------------


class TaskWatch:
    """A notified task's run, folded from its event stream: its context for the
    notifications and the `on_failure` hooks, and the hosts where a step failed.
    Subscribe it for the task's run; the runner calls `ended` before TaskFinished."""

    name = "notifications"

    def __init__(self, env, send=post):
        self.env = env
        self.senders = Senders(env.notify, send)
        self._record = None
        self._context = None  # the task's TaskContext, once published
        self.started_sent = False

    def __call__(self, event):
        self._record = TaskRecord.folded(self._record, event)
        if isinstance(event, events.TaskContext) and self._record and self._context is None:
            self._context = hooks.HookContext(**{**event.context, "hosts": tuple(event.context["hosts"])})
            self.senders.post("started", payload("started", self._context, self._record.started.controller))
            self.started_sent = True

    def context(self, error=""):
        """The task's fab.hooks.HookContext (from its TaskStarted until it chose its
        release); with `error`, also the failure's line and failed hosts."""
        started = self._record.started
        context = self._context or hooks.HookContext(
            environment=started.environment, task=started.task, performer=started.performer,
            hosts=tuple(started.hosts))
        if error:
            context = dataclasses.replace(context, error=error, failed_hosts=self.failed_hosts())
        return context

    def failed_hosts(self):
        return tuple(host.name for host in self._record.hosts.values() if host.failed_step)

    def ended(self, outcome, error, seconds):
        """The task ended with `outcome` (fab.events'): send the event that says so."""
        event = event_after(self._record.task, outcome, self.started_sent)
        if event:
            self.senders.post(event, payload(event, self.context(error), self._record.started.controller, seconds))

    def close(self):
        self.senders.close()


def watch(env, task, arguments):
    """A TaskWatch for a run of `task`, or None if it is not notified (a plan is not)."""
    if env is None or task not in NOTIFIED_TASKS or arguments.get("plan"):
        return None
    return TaskWatch(env)


# --- masking the URLs -----------------------------------------------------------------


def url_secrets(url):
    """The parts of a webhook URL to mask in every output: its credentials, and the rest
    after the scheme as one piece (webhooks keep their tokens in the path or the query,
    Slack's /services/T.../B.../<token>; one piece, so that a path such as /hooks does
    not mask the word wherever it appears). The URL then shows as `https://***`."""
    parts = urllib.parse.urlsplit(url)
    rest = parts.netloc.rpartition("@")[2] + parts.path + (f"?{parts.query}" if parts.query else "")
    return [*credentials_in(url), rest]

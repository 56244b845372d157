"""Gates: checks on the deployer's machine that must keep passing after the canary
(and between waves) before the next wave goes live, as scap's canary error-rate
check and Argo Rollouts' metric analysis do.

A gate is `rollout.gates` in the environment file: an HTTP check (a URL that
must answer a status, optionally with a number at a JSON path within a
threshold: a Prometheus query's error rate) or a command (exit 0 passes), run
in the deploy folder with the hooks' DEPLOY_* variables. Every gate must pass
at every round, every `gate_interval` seconds, for `canary_watch` seconds
(at least one round). The first failure is one line, and fails the wave.

`judge`, `value_at` and `watch` are pure (the clock is given); `first_failure`
asks the gates.
"""
import json
import os
import time
import urllib.error
import urllib.request

from fab import hooks
from fab.secrets import mask


class NotFound(ValueError):
    """A JSON path that leads nowhere in the document."""


def value_at(document, path):
    """The value at dotted `path` in `document`: dict keys, and list indexes as
    numbers ("data.result.0.value.1"). NotFound saying where it stops."""
    found = document
    walked = []
    for key in path.split("."):
        walked.append(key)
        if isinstance(found, dict) and key in found:
            found = found[key]
        elif isinstance(found, list) and key.lstrip("-").isdigit() and -len(found) <= int(key) < len(found):
            found = found[int(key)]
        else:
            raise NotFound(f"nothing at {'.'.join(walked)}")
    return found


def judge(gate, status, body):
    """Why an HTTP gate's answer (`status`, `body` text) fails it, or None if it passes."""
    if status != gate.status:
        return f"answered HTTP {status}, expected {gate.status}"
    if not gate.json_path:
        return None
    try:
        found = value_at(json.loads(body), gate.json_path)
        number = float(found)
    except NotFound as error:
        return f"{error} in its answer"
    except (TypeError, ValueError):
        return f"no number at {gate.json_path} in its answer"
    if number != number:  # NaN: a query over no samples
        return f"{gate.json_path} is NaN"
    if gate.max is not None and number > gate.max:
        return f"{gate.json_path} = {number:g}, above the max {gate.max:g}"
    if gate.min is not None and number < gate.min:
        return f"{gate.json_path} = {number:g}, below the min {gate.min:g}"
    return None


def describe(gate):
    """A gate in a few words (URLs masked: they may carry tokens)."""
    if hasattr(gate, "command"):
        return f"command {gate.command}"
    limits = [f"max {gate.max:g}" if gate.max is not None else "", f"min {gate.min:g}" if gate.min is not None else ""]
    threshold = f", {gate.json_path} {' '.join(word for word in limits if word)}" if gate.json_path else ""
    return f"{mask(gate.http)} answers {gate.status}{threshold}"


def ask_http(gate):
    """Why the HTTP gate fails now, or None."""
    try:
        with urllib.request.urlopen(gate.http, timeout=gate.timeout) as response:
            status, body = response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read().decode(errors="replace")
    except (OSError, ValueError) as error:  # refused, timed out, unreachable
        return f"no answer: {getattr(error, 'reason', None) or error}"
    return judge(gate, status, body)


def ask_command(gate, context, folder):
    """Why the command gate fails now (its exit code and last line), or None."""
    try:
        hooks.run_one(gate.command, {**os.environ, **context.variables("gate")}, folder, gate.timeout, "gate",
                      label=f"gate ({gate.command})")
    except hooks.HookFailed as error:
        return str(error).removeprefix(f"gate ({gate.command}) ")
    return None


def first_failure(env, context):
    """The line saying which of the environment's gates fails now and why, or None."""
    for gate in env.rollout.gates:
        why = ask_command(gate, context, env.folder) if hasattr(gate, "command") else ask_http(gate)
        if why:
            return f"gate {describe(gate)}: {why}"
    return None


def watch(seconds, interval, check, clock=time.monotonic, sleep=time.sleep):
    """Run `check()` (None: passing; else why not) now and every `interval` seconds
    until `seconds` have passed, the last round at the end of the window. Returns
    the first failure (stopping there), or None if every round passed."""
    deadline = clock() + seconds
    while True:
        failure = check()
        if failure:
            return failure
        left = deadline - clock()
        if left <= 0:
            return None
        sleep(min(interval, left))

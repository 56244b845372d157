"""Which value wins, for each setting a user can give in more than one place.

The order is always the same: the command line, then a variable of the deployer's
environment, then the environment file, then a default. Each request has its one
function here; each is pure (the variables are passed in, nothing is read from a
host or a file), so tests/test_precedence.py checks every order.

    environment_dirs   DEPLOY_ENVIRONMENTS, DEPLOY_DIR, ./deploy, the built-in folder
    history_url        FAB_HISTORY_URL, history.url or history.url_env, a SQLite file per user
    outputs            json=yes, FAB_JSON / FAB_OUTPUT / FAB_COLOR, CI, TERM, a terminal
    controller_name    FAB_CONTROLLER, the machine's host name
    git_ref            rev= (or commit=), app.branch
    manage_role        role=, manage.role
    retention_days     days=, history.retention_days
"""
import dataclasses
import os
from typing import Optional

from fab import BUILTIN_DIR
from fab.errors import UsageError

BUILTIN_ENVIRONMENTS = os.path.join(BUILTIN_DIR, "environments")
HISTORY_URL_VARIABLE = "FAB_HISTORY_URL"
CONTROLLER_VARIABLE = "FAB_CONTROLLER"


# --- where environment files are found -----------------------------------------------


def environment_dirs(environ):
    """The folders environment files are looked up in, first match wins:

    every folder in DEPLOY_ENVIRONMENTS (separated by os.pathsep), then the
    application's deploy folder's `environments/` (DEPLOY_DIR, default `deploy`
    in the current directory), then the built-in one (the `sandbox`). They add
    up: naming your own folder never hides the built-in environments.
    """
    extra = [d for d in environ.get("DEPLOY_ENVIRONMENTS", "").split(os.pathsep) if d]
    deploy_dir = environ.get("DEPLOY_DIR") or "deploy"
    found = [*extra, os.path.join(deploy_dir, "environments"), BUILTIN_ENVIRONMENTS]
    unique = []
    for directory in (os.path.abspath(d) for d in found):
        if directory not in unique:
            unique.append(directory)
    return unique


# --- the history store ---------------------------------------------------------------


class HistoryUrlVariableUnset(ValueError):
    """history.url_env names a variable that is not set."""


def history_url(settings, environ):
    """The history store's URL for an environment whose `history` setting is
    `settings` (None: no environment file): FAB_HISTORY_URL, then the file's `url`
    or the variable its `url_env` names, then a SQLite file per user.
    HistoryUrlVariableUnset if `url_env` names a variable that is not set."""
    override = environ.get(HISTORY_URL_VARIABLE)
    if override:
        return override
    if settings is not None and settings.url:
        return settings.url
    if settings is not None and settings.url_env:
        value = environ.get(settings.url_env)
        if not value:
            raise HistoryUrlVariableUnset(f"history.url_env names {settings.url_env}, which is not set")
        return value
    return "sqlite:///" + default_sqlite_path(environ)


def default_sqlite_path(environ):
    """$XDG_DATA_HOME/fab-deploy/history.sqlite (default ~/.local/share/...)."""
    home = environ.get("HOME") or os.path.expanduser("~")
    data_home = environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    return os.path.join(data_home, "fab-deploy", "history.sqlite")


def controller_cache(environ):
    """$XDG_CACHE_HOME/fab-deploy (default ~/.cache/fab-deploy): what the controller
    keeps between tasks to build once (the app's repository, wheels per venv key)."""
    home = environ.get("HOME") or os.path.expanduser("~")
    return os.path.join(environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache"), "fab-deploy")


# --- the outputs ---------------------------------------------------------------------

LIVE, PLAIN = "live", "plain"
STDOUT = "-"
_YES = {"1", "yes", "y", "true", "on", STDOUT}
_NO = {"", "0", "no", "n", "false", "off"}


@dataclasses.dataclass(frozen=True)
class Outputs:
    """Which outputs one task gets (fab.outputs subscribes them)."""

    people: str  # LIVE or PLAIN
    people_on_stderr: bool  # True when stdout carries the JSON summary
    json: Optional[str]  # None, STDOUT or a file path
    color: Optional[bool]  # None: rich decides
    forced_live: bool = False  # live although not at a terminal (FAB_OUTPUT=live)


def outputs(environ, json_requested, stdout_tty, stderr_tty):
    """The outputs of a task: `json=yes` on the command line, then FAB_JSON; FAB_OUTPUT,
    then plain lines for CI, TERM=dumb or no terminal, else the live view; FAB_COLOR,
    else rich decides. UsageError for a value no one could mean."""
    json_target = json_summary_target(environ, json_requested)
    on_stderr = json_target == STDOUT
    at_terminal = stderr_tty if on_stderr else stdout_tty
    mode = environ.get("FAB_OUTPUT", "auto").strip().lower() or "auto"
    if mode not in ("auto", LIVE, PLAIN):
        raise UsageError(f"FAB_OUTPUT must be auto, live or plain, got {mode!r}")
    in_ci = environ.get("CI", "").strip().lower() not in _NO
    dumb = environ.get("TERM", "") == "dumb"
    if mode == "auto":
        mode = LIVE if at_terminal and not in_ci and not dumb else PLAIN
    color_setting = environ.get("FAB_COLOR", "auto").strip().lower() or "auto"
    colors = {"auto": None, "always": True, "never": False}
    if color_setting not in colors:
        raise UsageError(f"FAB_COLOR must be auto, always or never, got {color_setting!r}")
    return Outputs(mode, on_stderr, json_target, colors[color_setting],
                   forced_live=mode == LIVE and not at_terminal)


def json_summary_target(environ, json_requested):
    """Where the JSON summary goes: stdout for `json=yes`, else FAB_JSON's (None: nowhere)."""
    return STDOUT if json_requested else _json_target(environ.get("FAB_JSON", ""))


def _json_target(value):
    text = value.strip()
    if text.lower() in _NO:
        return None
    if text.lower() in _YES:
        return STDOUT
    return text


# --- who runs the deployer -----------------------------------------------------------


def controller_name(environ, hostname):
    """The controller's name: FAB_CONTROLLER (a CI runner in a throwaway container,
    tests that play two controllers on one machine), else `hostname()`."""
    return environ.get(CONTROLLER_VARIABLE) or hostname()


# --- a task's arguments over the environment file ------------------------------------


def git_ref(command_line, env):
    """What `deploy` and `hotfix_deploy` check out: their rev=/commit=, else app.branch."""
    return command_line or env.app.branch


def manage_role(command_line, env):
    """The role `manage` runs on: its role=, else the environment's manage.role."""
    return command_line or env.manage.role


def retention_days(command_line, env):
    """Days of log text `history_prune` keeps: its days= when given (0 included: keep
    none), else history.retention_days."""
    return env.history.retention_days if command_line in ("", None) else command_line

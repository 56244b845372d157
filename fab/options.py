"""What each task option means, as `fab --help <task>` (or `fab <env> <task> -h`) shows it.

One table, so an option that several tasks take (`plan`, `hosts`, `json`) is explained
the same way everywhere. A task's own `@task(help={...})` wins over it; `fab.entry`
fills the rest from here, and tests/test_cli.py checks every option of every task has
a text.
"""
from fab.task_input import MESSAGE_LIMIT

#: Options several tasks take, with the same meaning.
COMMON = {
    "json": "print one JSON summary on stdout when the task ends (the human output goes to stderr)",
    "plan": "show what the task would do, and change nothing on any host",
    "hosts": "only these hosts or roles, ';'-separated (e.g. \"web3;web4\"); their proxies drain them",
    "message": f"why, one line (at most {MESSAGE_LIMIT} characters; default: FAB_DEPLOY_MESSAGE): "
               "kept in the history, the JSON summary, the notifications and the hooks' DEPLOY_MESSAGE",
    "wait": "seconds to wait while another task holds the environment or it is frozen "
            "(default 0: refuse at once, exit 3)",
    "force": "run although the environment is frozen (the history keeps it)",
    "reason": "why the environment is frozen (required; one line)",
}

#: Options of one task: {task: {option: text}}.
BY_TASK = {
    "deploy": {
        "resume": "continue the newest unfinished release, skipping the steps each host finished",
        "rev": "deploy this full commit id, tag or branch instead of app.branch",
    },
    "rollback": {"release": "go to this release (a name from `releases`) instead of the previous good one"},
    "hotfix_deploy": {"commit": "put this full commit id, tag or branch into the current release "
                                "(default: app.branch's head)"},
    "setup_release": {"keep_days": "days cleanup keeps the release (0: not protected)"},
    "supervisorctl": {"command": "the supervisorctl command and its arguments (default: status)"},
    "manage": {
        "command": "the management command and its arguments, e.g. \"migrate --noinput\"",
        "host": "run on this host instead of the first host of manage.role",
        "role": "run on the first host of this role instead of manage.role's",
        "all_hosts": "run on every host of the role, one after another, stopping at the first failure",
    },
    "history": {"limit": "how many operations to show, newest first (default 20)"},
    "deploy_log": {
        "operation": "the operation's id (from `history`; default: the newest)",
        "follow": "follow a running operation's log live until it ends",
    },
    "dashboard": {
        "bind": "the address to listen on (default 127.0.0.1; any other needs FAB_DASHBOARD_TOKEN or proxy=yes)",
        "port": "the port to listen on (default 8465)",
        "proxy": "behind a reverse proxy that authenticates (README: Dashboard): trust its X-Forwarded-* headers",
    },
    "history_prune": {"days": "remove log text older than this many days (0: all of it; "
                              "default: history.retention_days)"},
}


def help_for(task_name, parameters, given=None):
    """{option: text} for a task's `parameters` (names): `given` (the task's own) first,
    then BY_TASK, then COMMON; an option no one explains is left out."""
    own = {**COMMON, **BY_TASK.get(task_name, {}), **(given or {})}
    return {name: own[name] for name in parameters if name in own}

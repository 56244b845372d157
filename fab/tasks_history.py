"""The tasks that read the history store: `history`, `deploy_log`, `history_prune`,
`history_upgrade`, and the web `dashboard` over it. None touches a host.

fab.tasks gives them to a fabfile with the others (`from fab.tasks import *`).
"""
from fabric import task

from fab import history as history_store
from fab.runner import selected_environment, user_errors
from fab.secrets import safe_to_show
from fab.task_input import optional_days

@task
@user_errors
def history(c, limit=20, json=False):
    """Show the last operations and their outcomes."""
    env = selected_environment(c)
    print(safe_to_show("\n".join(history_store.history_lines(env, limit, as_json=json))))


@task
@user_errors
def deploy_log(c, operation=0, follow=False):
    """Show an operation's log; follow a running one."""
    env = selected_environment(c)
    if follow:
        history_store.follow_log(env, operation, write=lambda line: print(safe_to_show(line), flush=True))
    else:
        print(safe_to_show("\n".join(history_store.log_lines(env, operation))))


@task
@user_errors
def history_prune(c, days=""):
    """Remove log text older than the retention days (days=N: N days; 0: all of it)."""
    print(history_store.prune(selected_environment(c), optional_days("history_prune", days)))


@task
@user_errors
def history_upgrade(c):
    """Upgrade the history store to this version's schema."""
    print(history_store.upgrade(selected_environment(c)))


# --- the dashboard ------------------------------------------------------------


@task
@user_errors
def dashboard(c, bind="127.0.0.1", port=8465, proxy=False):
    """Serve the read-only web dashboard over the history store.

    What is live where, every operation, a running one's log followed live, each
    operation's per-host timeline, and the delivery figures, each with a JSON twin
    (README: Dashboard). Loopback only unless FAB_DASHBOARD_TOKEN is set or
    --proxy says a reverse proxy authenticates in front.
    """
    from fab.dashboard.serving import serve  # Starlette and uvicorn: only when it is asked for

    serve(bind, int(port), bool(proxy))


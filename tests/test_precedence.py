"""Which value wins for each setting given in more than one place (fab.precedence):
the command line, then a variable, then the environment file, then a default."""
import os
import types

import pytest
from hypothesis import given, strategies as st

from fab import precedence
from fab.errors import UsageError
from fab.precedence import LIVE, PLAIN, STDOUT
from fab.settings.team import HistorySettings

CWD = os.getcwd()


def env_file(branch="main", manage_role="web", retention_days=90):
    """The settings these functions read, as an environment file would give them."""
    return types.SimpleNamespace(app=types.SimpleNamespace(branch=branch),
                                 manage=types.SimpleNamespace(role=manage_role),
                                 history=HistorySettings(retention_days=retention_days))


@pytest.mark.parametrize("environ,expected", [
    ({}, [f"{CWD}/deploy/environments", precedence.BUILTIN_ENVIRONMENTS]),
    ({"DEPLOY_DIR": "/app/deploy"}, ["/app/deploy/environments", precedence.BUILTIN_ENVIRONMENTS]),
    ({"DEPLOY_DIR": ""}, [f"{CWD}/deploy/environments", precedence.BUILTIN_ENVIRONMENTS]),
    ({"DEPLOY_ENVIRONMENTS": f"/a{os.pathsep}/b", "DEPLOY_DIR": "/app/deploy"},
     ["/a", "/b", "/app/deploy/environments", precedence.BUILTIN_ENVIRONMENTS]),
    # Naming the built-in folder (or one twice) does not repeat it: the first place wins.
    ({"DEPLOY_ENVIRONMENTS": f"{precedence.BUILTIN_ENVIRONMENTS}{os.pathsep}/a{os.pathsep}/a"},
     [precedence.BUILTIN_ENVIRONMENTS, "/a", f"{CWD}/deploy/environments"]),
])
def test_environment_dirs_variables_first_then_deploy_then_the_built_in_folder(environ, expected):
    assert precedence.environment_dirs(environ) == expected


@pytest.mark.parametrize("environ, fabfile_dir, folders, expected", [
    # deploy/ beside the fabfile that was loaded, wherever `fab` runs from.
    ({}, "/app", set(), ["/app/deploy/environments", precedence.BUILTIN_ENVIRONMENTS]),
    # An app with environments of its own: the built-in ones are hidden.
    ({}, "/app", {"/app/deploy/environments"}, ["/app/deploy/environments"]),
    ({"DEPLOY_ENVIRONMENTS": "/ci"}, "/app", {"/app/deploy/environments"}, ["/ci", "/app/deploy/environments"]),
    # DEPLOY_DIR still wins over the fabfile's folder.
    ({"DEPLOY_DIR": "/ops/deploy"}, "/app", {"/app/deploy/environments"},
     ["/ops/deploy/environments", precedence.BUILTIN_ENVIRONMENTS]),
    ({"DEPLOY_DIR": "/ops/deploy"}, "/app", {"/ops/deploy/environments"}, ["/ops/deploy/environments"]),
    ({}, None, {f"{CWD}/deploy/environments"}, [f"{CWD}/deploy/environments"]),
])
def test_the_deploy_folder_is_beside_the_fabfile_and_hides_the_built_in_one(environ, fabfile_dir, folders, expected):
    exists = lambda path: os.path.abspath(path) in folders  # noqa: E731
    assert precedence.environment_dirs(environ, fabfile_dir, exists) == expected


HOME = {"HOME": "/home/me"}
DEFAULT_URL = "sqlite:////home/me/.local/share/fab-deploy/history.sqlite"


@pytest.mark.parametrize("settings,environ,expected", [
    (None, HOME, DEFAULT_URL),
    (HistorySettings(), HOME, DEFAULT_URL),
    (HistorySettings(), {**HOME, "XDG_DATA_HOME": "/data"}, "sqlite:////data/fab-deploy/history.sqlite"),
    (HistorySettings(url="postgresql://a@db/x"), HOME, "postgresql://a@db/x"),
    (HistorySettings(url_env="DB_URL"), {**HOME, "DB_URL": "postgresql://b@db/y"}, "postgresql://b@db/y"),
    (HistorySettings(url="postgresql://a@db/x"), {**HOME, "FAB_HISTORY_URL": "sqlite:////tmp/h.sqlite"},
     "sqlite:////tmp/h.sqlite"),
    (HistorySettings(url_env="DB_URL"), {**HOME, "FAB_HISTORY_URL": "sqlite:////tmp/h.sqlite"},
     "sqlite:////tmp/h.sqlite"),  # the variable wins before url_env is even read
    (None, {**HOME, "FAB_HISTORY_URL": ""}, DEFAULT_URL),  # set but empty: not given
])
def test_history_url_variable_then_the_file_then_a_sqlite_file_per_user(settings, environ, expected):
    assert precedence.history_url(settings, environ) == expected


def test_history_url_names_the_unset_variable_the_file_points_to():
    with pytest.raises(precedence.HistoryUrlVariableUnset, match="url_env names DB_URL, which is not set"):
        precedence.history_url(HistorySettings(url_env="DB_URL"), {**HOME, "DB_URL": ""})


@pytest.mark.parametrize("environ,json_flag,stdout_tty,stderr_tty,expected", [
    ({}, False, True, True, (LIVE, False, None)),
    ({"CI": "true"}, False, True, True, (PLAIN, False, None)),
    ({"CI": "false"}, False, True, True, (LIVE, False, None)),
    ({}, False, False, True, (PLAIN, False, None)),
    ({"TERM": "dumb"}, False, True, True, (PLAIN, False, None)),
    ({"FAB_OUTPUT": "plain"}, False, True, True, (PLAIN, False, None)),
    ({"FAB_OUTPUT": "live", "CI": "1"}, False, False, False, (LIVE, False, None)),
    # JSON on stdout: people read stderr, live if that is a terminal.
    ({}, True, False, True, (LIVE, True, STDOUT)),
    ({"FAB_JSON": "1"}, False, True, False, (PLAIN, True, STDOUT)),
    ({"FAB_JSON": "no"}, False, True, True, (LIVE, False, None)),
    ({"FAB_JSON": "summary.json", "CI": "true"}, False, False, False, (PLAIN, False, "summary.json")),
    ({"FAB_JSON": "summary.json"}, True, False, False, (PLAIN, True, STDOUT)),  # the flag wins
])
def test_outputs_json_flag_then_variables_then_ci_and_terminal(environ, json_flag, stdout_tty, stderr_tty, expected):
    choice = precedence.outputs(environ, json_flag, stdout_tty, stderr_tty)
    assert (choice.people, choice.people_on_stderr, choice.json) == expected
    assert choice.forced_live == (environ.get("FAB_OUTPUT") == "live" and not stdout_tty)


@pytest.mark.parametrize("environ,message", [
    ({"FAB_OUTPUT": "fancy"}, "FAB_OUTPUT must be auto, live or plain"),
    ({"FAB_COLOR": "sometimes"}, "FAB_COLOR must be auto, always or never"),
])
def test_outputs_refuses_a_value_no_one_could_mean(environ, message):
    with pytest.raises(UsageError, match=message):
        precedence.outputs(environ, False, True, True)


@pytest.mark.parametrize("setting,expected", [("auto", None), ("always", True), ("never", False), (" Never ", False)])
def test_outputs_colour_from_fab_color_else_rich_decides(setting, expected):
    assert precedence.outputs({"FAB_COLOR": setting}, False, True, True).color is expected


@pytest.mark.parametrize("environ,expected", [
    ({}, "this-machine"),
    ({"FAB_CONTROLLER": ""}, "this-machine"),
    ({"FAB_CONTROLLER": "ci-runner-7"}, "ci-runner-7"),
])
def test_controller_name_variable_then_host_name(environ, expected):
    assert precedence.controller_name(environ, lambda: "this-machine") == expected


@pytest.mark.parametrize("choose,file_setting", [
    (precedence.git_ref, {"branch": "release"}),
    (precedence.manage_role, {"manage_role": "celery"}),
    (precedence.retention_days, {"retention_days": 30}),
])
@given(command_line=st.one_of(st.just(""), st.just(0), st.text(min_size=1), st.integers(min_value=1)))
def test_a_task_argument_wins_over_the_environment_file_when_given(choose, file_setting, command_line):
    env = env_file(**file_setting)
    given = command_line != "" if choose is precedence.retention_days else bool(command_line)
    expected = command_line if given else next(iter(file_setting.values()))
    assert choose(command_line, env) == expected


@pytest.mark.parametrize("command_line, environ, expected", [
    ("from the option", {"FAB_DEPLOY_MESSAGE": "from CI"}, "from the option"),
    ("", {"FAB_DEPLOY_MESSAGE": "from CI"}, "from CI"),
    ("", {}, ""),
])
def test_deploy_message_option_then_variable(command_line, environ, expected):
    assert precedence.deploy_message(command_line, environ) == expected

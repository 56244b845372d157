"""Fabric-1 argument translation (`task:a=b`) into invoke's spelling."""
import json
import os
import re
import subprocess

import pytest
from hypothesis import given, settings, strategies as st
from invoke import Collection, task
from invoke.exceptions import ParseError
from invoke.parser import Argument, Parser, ParserContext

from fab import entry, runner
from fab.cli import REQUIRED, help_asked, refuse_fabric_options, split_fabric1_args, translate
from fab.errors import UsageError

TASKS = {
    "sandbox": [],
    "deploy": [("resume", False), ("plan", False), ("hosts", "")],
    "setup_release": [("keep_days", 0)],
    "rollback": [("release", "")],
    "manage": [("command", ""), ("host", "")],
    "safe": [("check", True)],
}


@pytest.mark.parametrize("argv,expected", [
    (["sandbox", "deploy"], ["sandbox", "deploy"]),
    (["sandbox", "deploy:resume=yes"], ["sandbox", "deploy", "--resume"]),
    (["sandbox", "deploy:resume=no"], ["sandbox", "deploy"]),
    (["sandbox", "deploy:yes"], ["sandbox", "deploy", "--resume"]),
    (["sandbox", "setup_release:keep_days=3"], ["sandbox", "setup_release", "--keep-days=3"]),
    (["sandbox", "setup_release", "--keep-days", "3"], ["sandbox", "setup_release", "--keep-days", "3"]),
    (["sandbox", "setup_release", "--keep-days=3"], ["sandbox", "setup_release", "--keep-days=3"]),
    (["sandbox", "rollback:2026-01-01_00.00.00"], ["sandbox", "rollback", "--release=2026-01-01_00.00.00"]),
    (["sandbox", "manage:migrate --noinput\\, really,host=web1"],
     ["sandbox", "manage", "--host=web1", "--command=migrate --noinput, really"]),
    (["sandbox", "manage:host=web1,check"], ["sandbox", "manage", "--host=web1", "--command=check"]),
    (["safe:check=no"], ["safe", "--no-check"]),
    (["-e", "sandbox", "deploy", "--resume"], ["-e", "sandbox", "deploy", "--resume"]),
    (["sandbox", "deploy", "--help"], ["sandbox", "deploy", "--help"]),
    # A flag named alone is set (it was read as the first argument: resume=plan).
    (["sandbox", "deploy:plan"], ["sandbox", "deploy", "--plan"]),
    (["sandbox", "deploy:plan,resume"], ["sandbox", "deploy", "--plan", "--resume"]),
    (["sandbox", "deploy:plan,hosts=web1"], ["sandbox", "deploy", "--plan", "--hosts=web1"]),
])
def test_translate(argv, expected):
    assert translate(argv, TASKS) == expected


@pytest.mark.parametrize("argv,message", [
    (["nope", "deploy"], "unknown task or environment 'nope'"),
    (["sandbox", "deploy:resume=maybe"], "resume must be yes or no"),
    (["sandbox", "deploy:bogus=1"], "unknown argument 'bogus'"),
    (["sandbox", "deploy:yes,no,web1,more"], "too many arguments"),
    (["sandbox", "setup_release:keep_days=abc"], "keep_days must be a whole number"),
    (["sandbox", "setup_release", "--keep-days", "abc"], "keep_days must be a whole number"),
    (["sandbox", "setup_release", "--keep-days"], "needs a value"),
    (["sandbox", "setup_release:keep_days=1,keep_days=2"], "given twice"),
    (["sandbox", "sandbox:x"], "takes no arguments"),
    (["sandbox", "deploy", "--resum"], "unknown option --resum"),
    (["sandbox", "deploy", "--resume=yes"], "takes no value"),
    # Numbers too large for any use (and for the history store's integers), or not ASCII digits.
    (["sandbox", "setup_release:keep_days=" + "9" * 31], "keep_days must be a whole number from 0 to 2147483647"),
    (["sandbox", "setup_release", "--keep-days", "2147483648"], "keep_days must be a whole number"),
    (["sandbox", "setup_release:keep_days=²"], "keep_days must be a whole number"),
])
def test_translate_rejects(argv, message):
    with pytest.raises(UsageError, match=message):
        translate(argv, TASKS)


@pytest.mark.parametrize("argv,task", [
    (["sandbox", "deploy", "-h"], "deploy"),
    (["sandbox", "manage", "--help"], "manage"),
    (["-e", "sandbox", "deploy:plan", "--hosts", "web1", "-h"], "deploy"),
    (["sandbox", "-h"], "sandbox"),
    (["sandbox", "deploy"], None),
    (["-h"], None),  # fab's own help: invoke's
])
def test_help_asked_after_a_task_is_that_tasks(argv, task):
    assert help_asked(argv, TASKS) == task


@pytest.mark.parametrize("given,message", [
    ({"hosts", "H"}, "fab -H/--hosts runs the whole task once per host given"),
    ({"dry", "R"}, "is no dry run here: `deploy:plan=yes`"),
    ({"identity"}, "-i/--identity is not used"),
    ({"ssh_config"}, "-S/--ssh-config is not used"),
])
def test_fabrics_own_host_and_connection_options_are_refused(given, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        refuse_fabric_options(given)
    refuse_fabric_options({"echo", "debug", "list"})  # harmless ones pass


def run_fab_here(tmp_path, *args):
    """The real `fab` with one environment `prod` (test_config.VALID) and no hosts."""
    from conftest import FAB, PROJECT_ROOT
    from test_config import VALID

    (tmp_path / "prod.yml").write_text(VALID)
    return subprocess.run(
        [FAB, *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL, env={**os.environ, "CI": "true", "DEPLOY_ENVIRONMENTS": str(tmp_path),
                                       "FAB_HISTORY_URL": f"sqlite:///{tmp_path}/history.sqlite"})


@pytest.mark.parametrize("args", [["-H", "web1,web2", "prod", "deploy"], ["--hosts=web1", "prod", "history"],
                                  ["-R", "prod", "deploy"], ["-i", "key", "prod", "deploy"]])
def test_fab_refuses_fabrics_own_host_options_before_any_task(tmp_path, args):
    from conftest import assert_one_line_error

    result = run_fab_here(tmp_path, *args)
    assert_one_line_error(result, "error: fab -")
    assert result.returncode == 2
    assert not (tmp_path / "history.sqlite").exists()  # no task ran, not even `history`


@pytest.mark.parametrize("args,message", [
    (["history:limit=" + "1" * 31], "history: limit must be a whole number from 0 to 2147483647"),
    (["history", "--limit", "99999999999"], "history: limit must be a whole number"),
    (["deploy_log:operation=" + "9" * 20], "deploy_log: operation must be a whole number"),
    (["history_prune:days=" + "9" * 40], "history_prune: days must be a whole number"),
    (["setup_release:keep_days=36501"], "keep_days must be a whole number of days (0 to 36500)"),
])
def test_numbers_too_large_are_one_line(tmp_path, args, message):
    from conftest import assert_one_line_error

    result = run_fab_here(tmp_path, "prod", *args)
    assert_one_line_error(result, message)
    assert result.returncode == 2


@pytest.mark.parametrize("task", ["deploy", "manage", "rollback", "restart_services"])
def test_dash_h_after_a_task_is_its_help(tmp_path, task):
    for flag in ("-h", "--help"):
        result = run_fab_here(tmp_path, "prod", task, flag)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"Usage: fab [--core-opts] {task} ")
        assert "--hosts" in result.stdout or "--host" in result.stdout or task == "rollback"


def test_an_environment_name_with_dashes_is_spelled_as_invoke_files_it():
    tasks = {**TASKS, "prod-eu": []}
    assert translate(["prod-eu", "deploy:yes"], tasks, spell=lambda name: name.replace("-", "_")) == [
        "prod_eu", "deploy", "--resume"]


def test_unknown_name_lists_environments():
    with pytest.raises(UsageError, match="environments: prod, sandbox"):
        translate(["prd", "deploy"], TASKS, ["sandbox", "prod"])


def test_split_fabric1_args():
    assert split_fabric1_args("a,b=c\\,d,") == ["a", "b=c,d", ""]
    assert split_fabric1_args("x\\\\y") == ["x\\y"]


def test_fab_selects_an_environment_whose_name_has_dashes(tmp_path):
    """`fab prod-eu <task>` from the command line, as a user types it (no hosts needed:
    `history` reads only the store)."""
    from conftest import FAB, PROJECT_ROOT
    from test_config import VALID

    (tmp_path / "prod-eu.yml").write_text(VALID)
    result = subprocess.run(
        [FAB, "prod-eu", "history:limit=5"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL, env={**os.environ, "CI": "true",
                                       "DEPLOY_ENVIRONMENTS": str(tmp_path),
                                       "FAB_HISTORY_URL": f"sqlite:///{tmp_path}/history.sqlite"})
    assert result.returncode == 0, result.stderr
    assert "No idea what" not in result.stderr


def an_app(tmp_path):
    """An application's checkout: a fabfile, deploy/environments/prod.yml, and a subdirectory."""
    from test_config import VALID

    (tmp_path / "fabfile.py").write_text("from fab.tasks import *  # noqa: F401,F403\n")
    (tmp_path / "deploy" / "environments").mkdir(parents=True)
    (tmp_path / "deploy" / "environments" / "prod.yml").write_text(VALID)
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    return tmp_path


def fab_in(directory, *args):
    """`fab` run in `directory` as a user of an app runs it (the deployer installed: here on PYTHONPATH)."""
    from conftest import FAB, PROJECT_ROOT

    environ = {name: value for name, value in os.environ.items() if not name.startswith("DEPLOY_")}
    return subprocess.run([FAB, *args], cwd=directory, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL,
                          env={**environ, "CI": "true", "PYTHONPATH": PROJECT_ROOT,
                               "FAB_HISTORY_URL": f"sqlite:///{directory}/history.sqlite"})


def test_fab_in_a_subdirectory_finds_deploy_beside_the_fabfile(tmp_path):
    app = an_app(tmp_path)
    for where in (app, app / "src" / "pkg"):
        listed = fab_in(where, "-l")
        assert listed.returncode == 0, listed.stderr
        assert re.search(r"^\s+prod\s", listed.stdout, re.M), listed.stdout
        result = fab_in(where, "prod", "history")
        assert result.returncode == 0, result.stderr


def test_the_sandbox_is_hidden_and_never_suggested_inside_an_app(tmp_path):
    from conftest import assert_one_line_error

    app = an_app(tmp_path)
    listed = fab_in(app / "src", "-l")
    assert "sandbox" not in listed.stdout
    for args in (["prd", "deploy"], ["sandbox", "deploy"], ["deploy"]):
        result = fab_in(app / "src", *args)
        line = assert_one_line_error(result, "environments: prod")
        assert "sandbox" not in line.partition("(")[2]  # named only where the user typed it


def test_every_option_of_every_task_has_help():
    from invoke import Task

    import fab.tasks

    tasks = [obj for obj in vars(fab.tasks).values() if isinstance(obj, Task)]
    assert len(tasks) > 15
    for obj in tasks:
        for option in obj.argspec(obj.body).parameters:
            assert obj.help.get(option, "").strip(), f"{obj.name} --{option} has no help"


@pytest.mark.parametrize("args", [["--help", "deploy"], ["prod", "deploy", "-h"]])
def test_fab_help_explains_each_option(tmp_path, args):
    result = run_fab_here(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    assert re.search(r"--resume\s+continue the newest unfinished release", result.stdout), result.stdout
    assert re.search(r"--plan\s+show what the task would do", result.stdout)
    assert re.search(r"--hosts=STRING\s+only these hosts or roles", result.stdout)


# --- what invoke's parser refuses is refused first, as our own error -----------------


@task(auto_shortflags=False)
def _deploy(c, rev="", wait=0, plan=False, safe=True, json=False):
    pass


@task(auto_shortflags=False)
def _manage(c, command, host="", json=False):
    pass


#: Tasks as fab.entry hands them to translate (a parameter without default is REQUIRED),
#: and the same ones as invoke's parser knows them.
PARSED = {"prod": [], "deploy": [("rev", ""), ("wait", 0), ("plan", False), ("safe", True), ("json", False)],
          "manage": [("command", REQUIRED), ("host", ""), ("json", False)]}
PARSER = Parser(initial=ParserContext(args=[Argument(names=("echo",), kind=bool)]), contexts=Collection(
    prod=task(lambda c: None), deploy=_deploy, manage=_manage).to_contexts())


@pytest.mark.parametrize("argv,message", [
    (["prod", "manage", "--json"], 'manage: command is required (manage:"<command>" or manage --command'),
    (["prod", "manage:json=yes"], "manage: command is required"),
    (["prod", "manage:host=web1", "deploy"], "manage: command is required"),  # checked before the next task
    (["prod", "deploy", "--rev", "--json"], "deploy: --rev needs a value"),  # invoke: --json is the next flag
    (["prod", "deploy", "--rev", "--no-safe"], "deploy: --rev needs a value"),
    (["prod", "manage:migrate", "--command", "check"], "manage: command given twice"),
    (["prod", "deploy", "--rev=v1", "--rev", "v2"], "deploy: rev given twice"),
    (["prod", "deploy", "--no-plan"], "unknown option --no-plan"),  # invoke has --no-x only for a flag set by default
    (["--bogus", "prod", "deploy"], "unknown option --bogus"),
])
def test_what_invokes_parser_would_refuse_is_a_usage_error(argv, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        translate(argv, PARSED, core_flags={"--echo"})
    if not any(":" in token for token in argv):  # invoke's own refusal, printed without JSON
        with pytest.raises(ParseError):
            PARSER.parse_argv(argv)


@pytest.mark.parametrize("argv", [
    ["prod", "manage:migrate"], ["prod", "manage", "--command", "migrate"], ["prod", "manage", "--command=migrate"],
    ["prod", "manage:host=web1,check"], ["prod", "deploy", "--rev", "--hosts=web1"],  # invoke: a value, whole
    ["prod", "deploy", "--no-safe", "--json"], ["--echo", "prod", "deploy"], ["prod", "deploy", "--json", "--json"],
])
def test_what_invokes_parser_takes_is_translated(argv):
    PARSER.parse_argv(translate(argv, PARSED, core_flags={"--echo"}))


TOKENS = ["prod", "deploy", "manage", "manage:migrate", "manage:host=web1", "deploy:plan", "deploy:rev=v1",
          "--rev", "--wait", "--plan", "--no-plan", "--no-safe", "--json", "--command", "--command=x", "--host",
          "--rev=", "5", "v2", "--bogus"]


@settings(max_examples=300)
@given(st.lists(st.sampled_from(TOKENS), max_size=7))
def test_whatever_translate_lets_through_invokes_parser_takes(argv):
    """The property behind the JSON error: a command line is either refused by
    translate (our one line, and JSON) or parsed by invoke without an error."""
    try:
        translated = translate(argv, PARSED, core_flags=set())
    except UsageError:
        return
    PARSER.parse_argv(translated)


def test_a_parse_error_translate_did_not_foresee_is_refused_as_ours(monkeypatch, capsys):
    def parse_tasks():
        raise ParseError("No idea what 'x' is!")

    monkeypatch.setattr(runner, "command_line", runner.CommandLine("prod", "deploy", True))
    monkeypatch.delenv("FAB_JSON", raising=False)
    with pytest.raises(SystemExit) as exited:
        entry.refusing_parse_errors(parse_tasks)()
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert (document["outcome"], document["exit_code"], document["error"]) == ("refused", 2, "No idea what 'x' is!")
    assert err == "error: No idea what 'x' is!\n"


@pytest.mark.parametrize("args,message", [
    (["prod", "manage", "--json"], 'manage: command is required (manage:"<command>"'),
    (["prod", "manage:json=yes"], "manage: command is required"),
    (["prod", "deploy", "--rev", "--json"], "deploy: --rev needs a value"),
    (["prod", "deploy", "--json", "--message", "--force"], "deploy: --message needs a value"),
    (["--bogus", "prod", "deploy", "--json"], "unknown option --bogus"),
    (["prod", "deploy", "--no-plan", "--json"], "deploy: unknown option --no-plan"),
])
def test_a_parser_error_with_json_prints_the_json_error_and_one_line(tmp_path, args, message):
    from conftest import assert_one_line_error

    result = run_fab_here(tmp_path, *args)
    line = assert_one_line_error(result, message)
    document = json.loads(result.stdout)
    assert result.returncode == 2
    task_name = args[args.index("prod") + 1].partition(":")[0]
    assert (document["outcome"], document["exit_code"], document["task"]) == ("refused", 2, task_name)
    assert line == f"error: {document['error']}"
    assert not (tmp_path / "history.sqlite").exists()  # no task ran


def test_a_run_of_fab_sets_its_loaded_modules_apart_from_the_garbage_collectors_walks():
    import gc

    threshold = gc.get_threshold()
    try:
        entry.collect_less_while_running()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (entry.YOUNGEST_COLLECTED_EVERY, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)

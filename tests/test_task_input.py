"""What a user names on the command line (fab.task_input): pure, checked before any host is touched."""
import pytest

from fab.config import load_environment
from fab.errors import ConfigError, UsageError
from fab import task_input
from fab.task_input import limited_hosts, manage_hosts, split_command

ENV = """
app: {repo: /srv/app.git}
code_root: ~/www/prod
roles:
  webworkers: [web1, web2]
  celery: [worker1, worker2]
manage: {role: webworkers}
"""


@pytest.fixture
def env(tmp_path):
    (tmp_path / "prod.yml").write_text(ENV)
    return load_environment("prod", str(tmp_path))


@pytest.mark.parametrize("host,role,all_hosts,expected", [
    ("", "", False, ["web1"]),                  # manage.role's first host
    ("", "", True, ["web1", "web2"]),           # every host of manage.role
    ("worker2", "", False, ["worker2"]),        # a host
    ("", "celery", False, ["worker1"]),         # another role's first host
    ("", "celery", True, ["worker1", "worker2"]),
])
def test_manage_hosts(env, host, role, all_hosts, expected):
    assert manage_hosts(env, host, role, all_hosts) == expected


def test_manage_hosts_refuse_what_does_not_exist(env):
    with pytest.raises(UsageError, match="unknown host 'web9'"):
        manage_hosts(env, "web9", "", False)
    with pytest.raises(ConfigError, match="unknown role 'db'"):
        manage_hosts(env, "", "db", False)
    with pytest.raises(UsageError, match="not both"):
        manage_hosts(env, "web1", "celery", False)


@pytest.mark.parametrize("given,expected", [
    ("", None),                                   # no limit: every host
    ("web2", ["web2"]),
    ("celery", ["worker1", "worker2"]),           # a role's hosts
    ("worker2;web1", ["web1", "worker2"]),        # in the environment's order
    ("web1, celery ,web1", ["web1", "worker1", "worker2"]),  # commas too, each host once
])
def test_limited_hosts(env, given, expected):
    assert limited_hosts(env, given) == expected


def test_limited_hosts_refuse_what_does_not_exist(env):
    with pytest.raises(UsageError, match="unknown host or role 'db'"):
        limited_hosts(env, "web1;db")


@pytest.mark.parametrize("command,words", [
    ("status", ["status"]),
    ("restart 'web 1'", ["restart", "web 1"]),
    ('shell -c "print(1)"', ["shell", "-c", "print(1)"]),
])
def test_split_command(command, words):
    assert split_command(command) == words


@pytest.mark.parametrize("command,message", [("", "empty command"), ("  ", "empty command"),
                                             ("say 'unclosed", "cannot parse command")])
def test_split_command_refuses(command, message):
    with pytest.raises(UsageError, match=message):
        split_command(command)


@pytest.mark.parametrize("value,days", [("", ""), ("  ", ""), ("0", 0), (0, 0), ("30", 30), (" 7 ", 7)])
def test_days_as_given_zero_included(value, days):
    assert task_input.optional_days("history_prune", value) == days


@pytest.mark.parametrize("value", ["ten", "-1", "1.5", "9" * 40, "٣"])
def test_days_that_are_no_whole_number_are_one_line(value):
    with pytest.raises(UsageError, match="history_prune: days must be a whole number"):
        task_input.optional_days("history_prune", value)

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


@pytest.mark.parametrize("given, expected", [
    ("  fix the login page ", "fix the login page"),
    ("", ""),
    ("x" * task_input.MESSAGE_LIMIT, "x" * task_input.MESSAGE_LIMIT),
    ("déploiement: 修正", "déploiement: 修正"),
])
def test_a_message_is_one_plain_line(given, expected):
    assert task_input.one_line(given, "message") == expected


@pytest.mark.parametrize("given, complaint", [
    ("x" * (task_input.MESSAGE_LIMIT + 1), "message is 301 characters long; at most 300"),
    ("two\nlines", "control characters"),
    ("a\ttab", "control characters"),
    ("red \x1b[31malert", "control characters"),
    ("a\rrewrite", "control characters"),
    ("abc\u202edcba", "control characters"),  # a bidi override reorders what a line shows
    ("bell\x07", "control characters"),
])
def test_a_message_too_long_or_with_control_characters_is_refused_in_one_line(given, complaint):
    with pytest.raises(UsageError, match=complaint):
        task_input.one_line(given, "message")


@pytest.mark.parametrize("given, expected", [("", 0), ("0", 0), ("60", 60), (" 900 ", 900), (86400, 86400)])
def test_wait_is_whole_seconds(given, expected):
    assert task_input.wait_seconds("deploy", given) == expected


@pytest.mark.parametrize("given", ["-1", "1.5", "soon", "86401", "99999999999999"])
def test_wait_out_of_bounds_is_one_line(given):
    with pytest.raises(UsageError, match="deploy: wait must be a whole number of seconds from 0 to 86400"):
        task_input.wait_seconds("deploy", given)

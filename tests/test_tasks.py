"""Pure choices the tasks make before touching any host."""
import pytest

from fab.config import load_environment
from fab.errors import ConfigError, UsageError
from fab.tasks import manage_targets

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
def test_manage_targets(env, host, role, all_hosts, expected):
    assert manage_targets(env, host, role, all_hosts) == expected


def test_manage_targets_refuse_what_does_not_exist(env):
    with pytest.raises(UsageError, match="unknown host 'web9'"):
        manage_targets(env, "web9", "", False)
    with pytest.raises(ConfigError, match="unknown role 'db'"):
        manage_targets(env, "", "db", False)
    with pytest.raises(UsageError, match="not both"):
        manage_targets(env, "web1", "celery", False)

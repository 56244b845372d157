"""Environment files: validation errors are one line naming the file and field."""
import pytest

from fab.config import available_environments, load_environment
from fab.errors import ConfigError

VALID = """
app: {repo: /srv/app.git, branch: main}
code_root: ~/www/prod
roles:
  webworkers: [web1, web2]
  pillowtop: [pillow1, web2]
services:
  web: {role: webworkers, template: supervisor/gunicorn.conf.j2, port: 8000,
        health_check: {path: /health}}
"""


def write(tmp_path, text, name="prod"):
    (tmp_path / f"{name}.yml").write_text(text)
    return str(tmp_path)


def test_valid_environment(tmp_path):
    env = load_environment("prod", write(tmp_path, VALID))
    assert env.name == "prod" and env.keep_releases == 3
    assert env.hosts == ["web1", "web2", "pillow1"]
    assert env.roles_of("web2") == ["webworkers", "pillowtop"]
    assert list(env.services_on("pillow1")) == []
    assert env.program_name("web") == "prod-web"
    assert available_environments(str(tmp_path)) == ["prod"]


@pytest.mark.parametrize("text,fragments", [
    ("app: [", ["not valid YAML"]),
    ("- a\n- b\n", ["mapping"]),
    (VALID.replace("code_root: ~/www/prod", "code_root: www/prod"), ["code_root", "absolute"]),
    (VALID + "keep_releases: 0\n", ["keep_releases", "greater than or equal to 1"]),
    (VALID + "colour: blue\n", ["colour: unknown setting"]),
    (VALID + "name: other\n", ["name: unknown setting"]),
    (VALID.replace("role: webworkers", "role: web"), ["unknown role 'web'"]),
    (VALID.replace("[web1, web2]", "[]"), ["role 'webworkers' has no hosts"]),
    (VALID.replace("port: 8000", "port: http"), ["services.web.port"]),
    (VALID.replace("port: 8000,", ""), ["health_check needs a port"]),
    (VALID.replace("app: {repo: /srv/app.git, branch: main}", ""), ["app: Field required"]),
])
def test_invalid_environment(tmp_path, text, fragments):
    with pytest.raises(ConfigError) as raised:
        load_environment("prod", write(tmp_path, text))
    message = str(raised.value)
    assert "\n" not in message and "prod.yml" in message
    for fragment in fragments:
        assert fragment in message


def test_unknown_environment_lists_known_ones(tmp_path):
    directory = write(tmp_path, VALID)
    with pytest.raises(ConfigError, match=r"unknown environment 'staging' \(environments: prod\)"):
        load_environment("staging", directory)
    with pytest.raises(ConfigError, match="unknown environment"):
        load_environment("../prod", directory)


def test_unknown_role_lookup(tmp_path):
    env = load_environment("prod", write(tmp_path, VALID))
    with pytest.raises(ConfigError, match="unknown role 'celery'"):
        env.hosts_of("celery")

"""Environment files: validation errors are one line naming the file and field."""
import os

import pytest

from fab import BUILTIN_DIR, secrets, templates
from fab.config import available_environments, load_environment
from fab.errors import ConfigError
from fab import folders

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
    assert env.topology.roles_of("web2") == ["webworkers", "pillowtop"]
    assert list(env.topology.services_on("pillow1")) == []
    assert env.topology.program_name("web") == "prod-web"
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
    (VALID.replace("branch: main}", "branch: main, fetch: peers}"), ["app.fetch", "'controller' or 'hosts'"]),
    (VALID.replace("port: 8000,", "port: 8000, workers: many,"),
     ["services.web.workers: should be a valid integer or 'auto' (got 'many')"]),
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
        env.topology.hosts_of("celery")


# --- an application's own deploy folder ----------------------------------------


def deploy_folder(tmp_path, text, name="prod"):
    """deploy/environments/<name>.yml in a deploy folder; returns the environments folder."""
    environments = tmp_path / "deploy" / "environments"
    environments.mkdir(parents=True, exist_ok=True)
    (environments / f"{name}.yml").write_text(text)
    return str(environments)


def test_environment_folders_add_up_and_the_sandbox_stays(tmp_path, monkeypatch):
    own = deploy_folder(tmp_path, VALID)
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "staging.yml").write_text(VALID)
    monkeypatch.chdir(tmp_path)  # deploy/ in the current directory is the app's
    monkeypatch.setenv("DEPLOY_ENVIRONMENTS", str(extra))
    monkeypatch.delenv("DEPLOY_DIR", raising=False)
    assert available_environments() == ["prod", "sandbox", "staging"]
    assert load_environment("prod").folder == os.path.dirname(own)
    # The sandbox's own file is found (loading it needs the sandbox's ssh_config, made by `up`).
    assert folders.deploy_folder(os.path.dirname(folders.find_environment("sandbox"))) == BUILTIN_DIR
    monkeypatch.setenv("DEPLOY_DIR", str(tmp_path / "elsewhere"))
    assert available_environments() == ["sandbox", "staging"]


def test_templates_come_from_the_environments_own_folder_first(tmp_path):
    directory = deploy_folder(tmp_path, VALID.replace("supervisor/gunicorn.conf.j2", "supervisor/mine.j2"))
    with pytest.raises(ConfigError, match=r"services.web.template: template 'supervisor/mine.j2' not found"):
        load_environment("prod", directory)
    own = tmp_path / "deploy" / "templates" / "supervisor"
    own.mkdir(parents=True)
    (own / "mine.j2").write_text("[program:{{ program }}]\ncommand=run {{ service.wsgi }}\n")
    env = load_environment("prod", directory)
    assert env.template_dirs == [str(tmp_path / "deploy" / "templates"), templates.BUILTIN_TEMPLATES]
    (own / "mine.j2").write_text("command={{ service.wsgi_app }}\n")
    with pytest.raises(ConfigError, match="'wsgi_app'"):
        load_environment("prod", directory)
    (own / "gunicorn.conf.j2").write_text("{% if %}")  # shadows the built-in one
    with pytest.raises(ConfigError, match="line 1"):
        load_environment("other", deploy_folder(tmp_path, VALID, "other"))


def test_the_stock_gunicorn_template_takes_the_wsgi_app_and_its_knobs(tmp_path):
    text = VALID.replace("port: 8000,", "port: 8000, wsgi: 'mysite.wsgi:application', timeout: 45, "
                                        "bind: 'unix:/run/mysite.sock', environment: {MODE: '50% \"on\"'},")
    env = load_environment("prod", write(tmp_path, text))
    rendered = templates.render(env.template_dirs, "supervisor/gunicorn.conf.j2",
                                **templates.sample_service_context(env, "web", env.services["web"]))
    assert "--bind unix:/run/mysite.sock" in rendered and "--timeout 45" in rendered
    assert rendered.split("\ncommand=")[1].split("\n")[0].endswith(" mysite.wsgi:application")
    assert 'MODE="50%% \\"on\\""' in rendered
    default = load_environment("plain", write(tmp_path, VALID, "plain"))
    rendered = templates.render(default.template_dirs, "supervisor/gunicorn.conf.j2",
                                **templates.sample_service_context(default, "web", default.services["web"]))
    assert "--bind 127.0.0.1:8000" in rendered and rendered.split("\ncommand=")[1].split("\n")[0].endswith(
        " app:application")


def test_secrets_are_read_on_load_and_masked(tmp_path, monkeypatch):
    monkeypatch.setattr(secrets, "_registered", set())
    directory = deploy_folder(tmp_path, VALID + "secrets: {file: secrets/prod.env, environment: [API_TOKEN]}\n")
    (tmp_path / "deploy" / "secrets").mkdir()
    (tmp_path / "deploy" / "secrets" / "prod.env").write_text(
        "# comment\n\nexport DB_PASSWORD='s3cr3t pass'\nSECRET_KEY=abc=def\n")
    monkeypatch.delenv("API_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="secrets.environment: API_TOKEN not set"):
        load_environment("prod", directory)
    monkeypatch.setenv("API_TOKEN", "tok-123456")
    env = load_environment("prod", directory)
    assert env.secret_values == {"DB_PASSWORD": "s3cr3t pass", "SECRET_KEY": "abc=def", "API_TOKEN": "tok-123456"}
    assert secrets.mask("s3cr3t pass abc=def tok-123456") == "*** *** ***"
    assert "s3cr3t" not in repr(env) and "s3cr3t" not in env.model_dump_json()
    # Services load them when they start; the rendered config names only the file.
    rendered = templates.render(env.template_dirs, "supervisor/gunicorn.conf.j2",
                                **templates.sample_service_context(env, "web", env.services["web"]))
    command = rendered.split("\ncommand=")[1].split("\n")[0]
    assert command.startswith("/bin/sh -c 'set -a && . \"$0\" && set +a && exec \"$@\"' "
                              "/home/deploy/www/prod/shared/secrets.env /home/deploy/www/prod/releases/")
    assert "s3cr3t" not in rendered
    (tmp_path / "deploy" / "secrets" / "prod.env").write_text("A=1\nnot a line\n")
    with pytest.raises(ConfigError, match=r"secrets.file: .*prod.env: line 2: expected KEY=value"):
        load_environment("prod", directory)


DEPLOY_SETTINGS = VALID + """
linked_files: [.env, config/local.py]
linked_dirs: [media]
shared_files_from: shared
migrate: {command: python manage.py migrate --noinput, role: webworkers}
predeploy: {commands: [python manage.py preindex], role: pillowtop, once: false, timeout: 900}
hooks: {before_swap: [./notify.sh], timeout: 20}
"""


def test_deploy_settings(tmp_path):
    directory = deploy_folder(tmp_path, DEPLOY_SETTINGS)
    (tmp_path / "deploy" / "shared").mkdir()
    env = load_environment("prod", directory)
    assert env.linked_files == [".env", "config/local.py"] and env.linked_dirs == ["media"]
    assert env.local_path(env.shared_files_from) == str(tmp_path / "deploy" / "shared")
    assert (env.migrate.once, env.migrate.timeout) == (True, 600)
    assert (env.predeploy.role, env.predeploy.once, env.predeploy.timeout) == ("pillowtop", False, 900)
    assert env.hooks.commands("before_swap") == ["./notify.sh"] and env.hooks.commands("after_swap") == []


@pytest.mark.parametrize("old,new,fragments", [
    ("linked_dirs: [media]", "linked_dirs: [../media]", ["linked_dirs", "'../media' must be a relative path"]),
    ("linked_dirs: [media]", "linked_dirs: [/srv/media]", ["'/srv/media' must be a relative path"]),
    ("linked_dirs: [media]", "linked_dirs: [python_env]", ["'python_env' is the deployer's own part"]),
    ("linked_dirs: [media]", "linked_dirs: [.env]", [".env is both a linked file and a linked dir"]),
    ("linked_dirs: [media]", "linked_dirs: [config]", ["linked path config/local.py is inside linked path config"]),
    ("shared_files_from: shared", "shared_files_from: nowhere", ["shared_files_from:", "is not a folder"]),
    ("role: webworkers}", "role: web}", ["migrate runs on unknown role 'web'"]),
    ("timeout: 900}", "timeout: 0}", ["predeploy.timeout", "greater than 0"]),
    ("commands: [python manage.py preindex]", "commands: []", ["predeploy.commands"]),
    ("hooks: {before_swap", "hooks: {before_deploy", ["hooks.before_deploy: unknown setting"]),
    ("migrate: {command", "migrate: {cmd", ["migrate.command: Field required"]),
    ("linked_dirs: [media]", "linked_dirs: [media]\nfolder: /tmp", ["folder: unknown setting"]),
    ("linked_dirs: [media]", "linked_dirs: [media]\ntransfer: {ports: 47400-}", ["transfer.ports", "should match"]),
    ("linked_dirs: [media]", "linked_dirs: [media]\ntransfer: {ports: 5000-4000}",
     ["transfer.ports", "'5000-4000' is not a range of ports from 1024 to 65535"]),
    ("linked_dirs: [media]", "linked_dirs: [media]\ntransfer: {ports: 80-9000}", ["transfer.ports", "should match"]),
    ("linked_dirs: [media]", "linked_dirs: [media]\ntransfer: {fanout: 0}", ["transfer.fanout"]),
    ("linked_dirs: [media]", "linked_dirs: [media]\ntransfer: {peers: maybe}", ["transfer.peers"]),
])
def test_invalid_deploy_settings(tmp_path, old, new, fragments):
    assert old in DEPLOY_SETTINGS
    directory = deploy_folder(tmp_path, DEPLOY_SETTINGS.replace(old, new))
    (tmp_path / "deploy" / "shared").mkdir()
    with pytest.raises(ConfigError) as raised:
        load_environment("prod", directory)
    message = str(raised.value)
    assert "\n" not in message and "prod.yml" in message
    for fragment in fragments:
        assert fragment in message


def test_stock_templates_keep_a_code_root_with_spaces_and_percent_signs_whole(tmp_path):
    """Paths go into supervisor and nginx configs quoted for each: supervisor splits
    `command=` as a shell does and expands %(...)s; nginx splits on spaces."""
    import shlex

    text = VALID.replace("code_root: ~/www/prod", "code_root: ~/www/my app 100%") + """
  pillow: {role: pillowtop, template: supervisor/pillow.conf.j2}
  proxy: {role: pillowtop, control: port, port: 8080, template: nginx/proxy.conf.j2, balances: web,
          start: "true", reload: "true"}
"""
    env = load_environment("prod", write(tmp_path, text))
    root = "/home/deploy/www/my app 100%"

    def supervisor(service):
        rendered = templates.render(env.template_dirs, env.services[service].template,
                                    **templates.sample_service_context(env, service, env.services[service]))
        values = dict(line.split("=", 1) for line in rendered.splitlines() if "=" in line and not line.startswith(";"))
        return {key: value.replace("%%", "%") for key, value in values.items()}

    web = supervisor("web")
    assert shlex.split(web["command"])[:3] == [f"{root}/releases/2000-01-01_00.00.00/python_env/bin/gunicorn",
                                               "--chdir", f"{root}/releases/2000-01-01_00.00.00"]
    assert web["directory"] == f"{root}/releases/2000-01-01_00.00.00"
    assert web["stdout_logfile"] == f"{root}/log/prod-web.log"
    assert shlex.split(supervisor("pillow")["command"])[0].startswith(f"{root}/releases/")
    nginx = templates.render(env.template_dirs, "nginx/proxy.conf.j2",
                             **templates.sample_service_context(env, "proxy", env.services["proxy"]))
    assert f'pid "{root}/shared/proxy/prod-proxy.pid";' in nginx
    assert f'include "{root}/shared/proxy/' in nginx


# --- values in bounds, one line each ----------------------------------------------------

WEB_ENV = VALID.replace("health_check: {path: /health}}", "health_check: {path: /health}, environment: {X: %s}}")


@pytest.mark.parametrize("text,fragments", [
    # A newline in a value rendered into supervisor's config started a line of its own.
    (WEB_ENV % '"a\\ncommand=/bin/sh -c pwned"', ["services.web.environment.X", "control character", "'\\n'"]),
    (VALID.replace("branch: main", 'branch: "ma\\0in"'), ["app.branch", "control character"]),
    (VALID.replace("branch: main", 'branch: "m\\eain"'), ["app.branch", "'\\x1b'"]),
    (VALID.replace("branch: main", 'branch: "m\\x85ain"'), ["app.branch", "control character"]),
    (VALID.replace("branch: main", 'branch: "m\\rain"'), ["app.branch", "control character"]),
    (VALID + 'hooks: {before_build: ["ok", "two\\elines"]}\n', ["hooks.before_build.1", "control character"]),
    (VALID + 'linked_files: ["a\\tb", "c\\bd"]\n', ["linked_files.1", "control character"]),
    (VALID.replace("services:", '"bad\\nkey": 1\nservices:'), ["'bad\\nkey'", "control character"]),
    (VALID.replace("branch: main", "branch: " + "b" * 4097), ["app.branch", "longer than 4096"]),
    (VALID + "checks: [" + ", ".join(["x"] * 10001) + "]\n", ["checks", "more than 10000 entries"]),
    (VALID + "keep_releases: 1000000000000000000000000000000\n", ["keep_releases", "out of range"]),
    (VALID + "command_timeout: .inf\n", ["command_timeout", "out of range"]),
    (VALID + "command_timeout: .nan\n", ["command_timeout", "out of range"]),
    (VALID.replace("port: 8000", "port: 8000, timeout: -1.0e+300"), ["services.web.timeout", "out of range"]),
    # YAML aliases repeating a value (the "billion laughs"): bounded, not expanded.
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n" + VALID,
     ["more than 100000 values"]),
])
def test_values_out_of_bounds_are_one_line_naming_the_setting(tmp_path, text, fragments):
    with pytest.raises(ConfigError) as raised:
        load_environment("prod", write(tmp_path, text))
    message = str(raised.value)
    assert message.startswith(os.path.join(str(tmp_path), "prod.yml")) and "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_a_tab_and_any_text_are_fine_in_values(tmp_path):
    env = load_environment("prod", write(tmp_path, WEB_ENV % '"a\\tb ünïcödé %s ;$(x)"'))
    assert env.services["web"].environment == {"X": "a\tb ünïcödé %s ;$(x)"}


def test_shell_commands_may_span_lines_and_nothing_else_may(tmp_path):
    """Build commands, checks, hooks and the like are script text run as a whole (a YAML
    `|` block); a value rendered into a config line is not."""
    script = "build_commands:\n  - |\n    set -e\n    echo one\n    echo two\n"
    env = load_environment("prod", write(tmp_path, VALID + script))
    assert env.build_commands == ["set -e\necho one\necho two\n"]
    with pytest.raises(ConfigError, match="services.web.environment.X: contains a control character"):
        load_environment("prod", write(tmp_path, WEB_ENV % '"a\\nb"'))


def test_a_huge_or_binary_environment_file_is_one_line(tmp_path):
    (tmp_path / "prod.yml").write_text(VALID + "#" * (1 << 20))
    with pytest.raises(ConfigError, match="larger than 1048576 bytes"):
        load_environment("prod", str(tmp_path))
    (tmp_path / "prod.yml").write_bytes(VALID.encode() + b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_environment("prod", str(tmp_path))


@pytest.mark.parametrize("code_root", [
    "/", "//", "/home", "/root", "/usr", "/etc", "/var", "/tmp", "/srv", "/opt", "~", "~/", "~/.",
    "/home/alice", "/home/alice/", "/Users/alice", "/root/.ssh", "~/.ssh", "~/.config/app", "/home/alice/.ssh",
    "/etc/app", "/usr/lib/app", "/proc/self", "/var/www", "/var/lib", "/usr/local", "~/www/..", "~/www/../..",
    "/srv/app/../..", "/./", "/home/./alice",
])
def test_a_code_root_must_be_a_directory_of_its_own(tmp_path, code_root):
    with pytest.raises(ConfigError, match="code_root: .*(not a directory of its own|must not contain '..')"):
        load_environment("prod", write(tmp_path, VALID.replace("~/www/prod", f"'{code_root}'")))


@pytest.mark.parametrize("code_root", ["~/www/prod", "~/app", "/srv/app", "/var/www/app", "/home/alice/app",
                                       "/opt/app", "/usr/local/app", "/root/app", "~/www/my app 100%"])
def test_a_code_root_of_its_own_is_fine(tmp_path, code_root):
    env = load_environment("prod", write(tmp_path, VALID.replace("~/www/prod", f"'{code_root}'")))
    assert env.code_root == code_root.rstrip("/")


def test_the_controller_fetches_the_code_unless_the_hosts_are_told_to(tmp_path):
    assert load_environment("prod", write(tmp_path, VALID)).app.fetch == "controller"
    hosts = VALID.replace("branch: main}", "branch: main, fetch: hosts}")
    assert load_environment("prod", write(tmp_path, hosts)).app.fetch == "hosts"

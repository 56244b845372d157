"""Secrets never reach output: credential URLs and registered values are masked."""
import io
import json
import shlex
import urllib.parse

import pytest
from invoke.exceptions import Exit

from fab import events, secrets
from fab.config import load_environment
from fab.errors import ConfigError, PreflightError
from fab.operations.code import resolve_commit
from fab.outputs.plain import PlainLines
from fab.runner import user_errors


@pytest.fixture(autouse=True)
def no_registered_secrets(monkeypatch):
    """Each test starts with nothing registered (registration is process-wide)."""
    monkeypatch.setattr(secrets, "_registered", set())


@pytest.mark.parametrize("url, masked", [
    ("https://deploy:hunter22@git.example.com/app.git", "https://deploy:***@git.example.com/app.git"),
    ("https://ghp_abcdef123456@github.com/me/app.git", "https://***@github.com/me/app.git"),
    ("http://token@pypi.internal/simple", "http://***@pypi.internal/simple"),
    ("git+https://user:pw@git.example.com/lib.git#egg=lib", "git+https://user:***@git.example.com/lib.git#egg=lib"),
    ("ssh://git:secret@git.example.com:2222/app.git", "ssh://git:***@git.example.com:2222/app.git"),
    ("postgresql://app:s3cr:et@db.internal:5432/history", "postgresql://app:***@db.internal:5432/history"),
    ("https://user:@host/x", "https://user:***@host/x"),
    # A bare user name outside http(s) is a login, not a secret.
    ("ssh://git@github.com/me/app.git", "ssh://git@github.com/me/app.git"),
    ("postgresql://app@db.internal/history", "postgresql://app@db.internal/history"),
    # Nothing to mask.
    ("git@github.com:me/app.git", "git@github.com:me/app.git"),
    ("https://github.com/me/app.git", "https://github.com/me/app.git"),
    ("/srv/repos/app.git", "/srv/repos/app.git"),
])
def test_mask_url(url, masked):
    assert secrets.mask_url(url) == masked


def test_mask_finds_every_url_in_free_text():
    text = ("fatal: could not read 'https://me:pw1@a.example/x.git' nor "
            "\"http://tok2@b.example/y\"; see postgresql://u:pw3@db/z\n"
            "next line: git+https://u:pw4@c.example/w")
    masked = secrets.mask(text)
    for secret in ("pw1", "tok2", "pw3", "pw4"):
        assert secret not in masked
    assert masked.count("***") == 4
    assert masked.startswith("fatal: could not read 'https://me:***@a.example/x.git'")


@pytest.mark.parametrize("padding", [0, 300])  # a short text's masking is remembered, a long one's not
def test_a_value_registered_after_a_text_was_masked_is_masked_in_it_from_then_on(padding):
    text = "x" * padding + "deploy token tok-later-1234 https://u:pw9@h.example/x"
    assert secrets.mask(text) == "x" * padding + "deploy token tok-later-1234 https://u:***@h.example/x"
    secrets.register("tok-later-1234")
    assert secrets.mask(text) == "x" * padding + "deploy token *** https://u:***@h.example/x"


def test_registered_values_are_masked_longest_first():
    secrets.register("s3cret-value")
    secrets.register("s3cret-value-longer")
    assert secrets.mask("a s3cret-value-longer and s3cret-value") == "a *** and ***"


def test_registering_a_url_masks_its_credentials_anywhere():
    secrets.register("https://ci:Tok3n-xyz@pypi.internal/simple")
    assert secrets.mask("auth failed with password Tok3n-xyz") == "auth failed with password ***"


def test_a_secret_too_short_to_mask_is_refused_and_an_empty_one_hides_nothing():
    for short in ("abc", "a", "ab\ncd"):
        with pytest.raises(secrets.SecretTooShort):
            secrets.register(short)
    secrets.register("")
    assert secrets.mask("a tab") == "a tab"


def test_a_multi_line_secret_is_masked_line_by_line_too():
    key = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nw==\n-----END KEY-----"
    secrets.register(key)
    out = io.StringIO()
    lines = secrets.MaskedLines(out)  # streamed output is masked one line at a time
    lines.write("the key:\n" + key + "\ndone\n")
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in out.getvalue()
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in secrets.mask("one line: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC")
    assert secrets.mask("whole: " + key) == "whole: ***"


def test_the_indentation_of_a_multi_line_secret_is_not_masked():
    secrets.register('{\n    "private_key": "k3y-material",\n    \n}')
    assert secrets.mask('    "private_key": "k3y-material",') == "    ***"
    assert secrets.mask("    indented output") == "    indented output"
    with pytest.raises(secrets.SecretTooShort):
        secrets.register("    ")


@pytest.mark.parametrize("text", [
    'KEY=\'it\'s "quoted"\'',  # a secret with quotes, as JSON, repr and sh print it
])
def test_a_secret_is_masked_in_its_quoted_forms(text):
    value = "p@ss'w\"rd\\x/y z"
    secrets.register(value)
    for shown in (json.dumps({"v": value}), repr(value), shlex.quote(value),
                  urllib.parse.quote(value, safe=""), value):
        assert "w\"rd" not in secrets.mask(shown) and "rd\\" not in secrets.mask(shown), shown
        assert "***" in secrets.mask(shown)


@pytest.mark.parametrize("text, value", [
    ("KEY='single quoted'\n", "single quoted"),
    ('KEY="double quoted"\n', "double quoted"),
    ("export KEY = 'spaced'  # a comment\n", "spaced"),
    ('KEY="with \\"escaped\\" quote and \\\\"\n', 'with "escaped" quote and \\'),
    ("KEY='-----BEGIN\nline two\n-----END'\nNEXT=1234\n", "-----BEGIN\nline two\n-----END"),
    ("KEY=unquoted # kept whole\n", "unquoted # kept whole"),
])
def test_secrets_file_values_lose_their_quotes(text, value):
    assert secrets.parse_env_file(text)["KEY"] == value


@pytest.mark.parametrize("text, problem", [
    ("KEY='never closed\nOTHER=1\n", "line 1: KEY: the quote is never closed"),
    ("A=1\nKEY='closed' junk\n", "line 2: KEY: unexpected text after the closing quote"),
])
def test_malformed_quoted_values_name_their_line(text, problem):
    with pytest.raises(ValueError, match=problem):
        secrets.parse_env_file(text)


def environments(deploy_folder, config):
    """An environments folder in `deploy_folder` holding `config` as prod.yml."""
    folder = deploy_folder / "environments"
    folder.mkdir()
    (folder / "prod.yml").write_text(json.dumps(config))
    return str(folder)


def test_a_quoted_multi_line_secret_from_the_file_is_masked(tmp_path):
    (tmp_path / "s.env").write_text("KEY='first-line-secret\nsecond-line-secret'\nQUOTED=\"dq-secret-1\"\n")
    config = {"app": {"repo": "/srv/app.git"}, "code_root": "~/www/app",
              "roles": {"webworkers": ["web1"]}, "secrets": {"file": "s.env"}}
    load_environment("prod", directory=environments(tmp_path, config))
    assert secrets.mask("a second-line-secret b dq-secret-1 c") == "a *** b *** c"


@pytest.mark.parametrize("secrets_file, environ, shown", [
    ("SHORT='ab'\n", {}, "secret SHORT is shorter than 4 characters"),
    ("", {"CI_TOKEN": "xyz"}, "secret CI_TOKEN is shorter than 4 characters"),
])
def test_a_secret_too_short_to_mask_is_a_configuration_error(tmp_path, monkeypatch, secrets_file, environ, shown):
    (tmp_path / "s.env").write_text(secrets_file)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    config = {"app": {"repo": "/srv/app.git"}, "code_root": "~/www/app", "roles": {"webworkers": ["web1"]},
              "secrets": {"file": "s.env", "environment": list(environ)}}
    with pytest.raises(ConfigError, match=shown) as raised:
        load_environment("prod", directory=environments(tmp_path, config))
    assert raised.value.exit_code == 2 and "'ab'" not in str(raised.value) and "xyz" not in str(raised.value)


@pytest.mark.parametrize("setting", [
    {"app": {"repo": "https://ci:pw@git.example.com/app.git"}},
    {"pip_args": ["--index-url", "https://tok@pypi.internal/simple"]},
])
def test_a_url_credential_too_short_to_mask_is_a_configuration_error(tmp_path, setting):
    config = {"app": {"repo": "/srv/app.git"}, "code_root": "~/www/app", "roles": {"webworkers": ["web1"]},
              **setting}
    (tmp_path / "prod.yml").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="too short to mask safely"):
        load_environment("prod", directory=str(tmp_path))


@pytest.mark.parametrize("password", ["pass/word-1", "pass word-2", "pa:ss/w rd 3"])
def test_a_store_password_sqlalchemy_accepts_is_masked_everywhere(password, monkeypatch):
    from fab.history.urls import mask_secrets, mask_url, store_url

    url = f"postgresql://deployer:{password}@db.internal:5432/deploys"
    monkeypatch.setenv("FAB_HISTORY_URL", url)
    assert store_url(None) == url
    assert mask_url(url) == "postgresql://deployer:***@db.internal:5432/deploys"
    escaped = urllib.parse.quote(password, safe="")
    for text in (f"could not connect to {url}", f"password {password!r} refused",
                 json.dumps({"url": url}), f"postgresql://deployer:{escaped}@db/x"):
        for shown in (mask_secrets(text), secrets.mask(text)):
            assert password not in shown and escaped not in shown and repr(password) not in shown, shown


def test_every_published_event_is_masked_before_any_output_sees_it():
    secrets.register("service-secret-42")
    out = io.StringIO()
    stream = events.Stream()
    stream.subscribe(PlainLines(out))
    seen = stream.subscribe([].append)
    lines = stream.publish
    lines(events.Stage("fetching https://me:hunter22@git.example.com/app.git"))
    lines(events.StepFinished("web1", "build", events.FAILED, note="exit 1",
                              output="Looking in indexes: https://ci:tok55@pypi.internal/simple\n"
                                     "ERROR: env has service-secret-42"))
    lines(events.Note("token is https://tokentoken@h/x", host="web1", level="warning"))
    printed = out.getvalue() + repr(seen.__self__)
    for secret in ("hunter22", "tok55", "service-secret-42", "tokentoken"):
        assert secret not in printed
    assert "https://me:***@git.example.com/app.git" in printed


def test_user_errors_are_masked():
    @user_errors
    def task():
        raise PreflightError("cannot read repository https://me:hunter22@git.example.com/app.git")

    with pytest.raises(Exit) as raised:
        task()
    assert raised.value.message == "error: cannot read repository https://me:***@git.example.com/app.git"


def test_unreadable_repository_is_reported_without_its_password():
    # Port 9 on loopback refuses at once: git fails, and its error names the URL.
    repo = "http://deploy:hunter22@127.0.0.1:9/app.git"
    with pytest.raises(PreflightError) as raised:
        resolve_commit(repo, "main")
    assert "hunter22" not in str(raised.value)
    assert "http://deploy:***@127.0.0.1:9/app.git" in str(raised.value)


def test_pip_index_credentials_are_registered_when_the_environment_loads(tmp_path):
    config = {
        "app": {"repo": "https://ghp_repotoken99@github.com/me/app.git"},
        "code_root": "~/www/app",
        "roles": {"webworkers": ["web1"]},
        "pip_args": ["--index-url", "https://ci:pipPassw0rd@pypi.internal/simple",
                     "--extra-index-url=https://extraT0ken@more.internal/simple"],
    }
    (tmp_path / "prod.yml").write_text(json.dumps(config))
    load_environment("prod", directory=str(tmp_path))
    masked = secrets.mask("pip said pipPassw0rd, extraT0ken and ghp_repotoken99")
    assert masked == "pip said ***, *** and ***"


def test_streamed_output_is_masked_line_by_line_even_when_split():
    secrets.register("split-secret-99")
    out = io.StringIO()
    lines = secrets.MaskedLines(out)
    for chunk in ("key: split-se", "cret-99\nnext ", "line split-secret-99"):
        lines.write(chunk)
    lines.flush()
    assert out.getvalue() == "key: ***\nnext line ***"


def test_the_hosts_secrets_file_is_safe_to_source():
    import subprocess

    from fab.operations.shared import secrets_file_text

    values = {"B": "it's $(touch pwned) `x` \"q\"", "A": "~/not-home", "C": "a b\nc"}
    text = secrets_file_text(values)
    script = text + 'printf "%s|" "$A" "$B" "$C"'
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout == f"{values['A']}|{values['B']}|{values['C']}|"


def test_a_store_password_too_short_to_mask_is_refused_without_showing_it(monkeypatch):
    from fab.history.errors import StoreMisconfigured
    from fab.history.urls import store_url

    monkeypatch.setenv("FAB_HISTORY_URL", "postgresql://deployer:pw@db.internal/deploys")
    with pytest.raises(StoreMisconfigured) as raised:
        store_url(None)
    assert str(raised.value) == ("history store postgresql://deployer:***@db.internal/deploys: "
                                 "its password is shorter than 4 characters: too short to mask safely")


# --- push_secrets, on the fleet ------------------------------------------------------


def program_environment(env, host, program):
    """(pid, {name: value}) of a supervisor program's main process, as it runs."""
    from test_services import supervisor_pid

    pid = supervisor_pid(env, host, program)
    with open(f"/proc/{pid}/environ", "rb") as handle:
        variables = dict(item.split(b"=", 1) for item in handle.read().split(b"\0") if b"=" in item)
    return pid, {name.decode(): value.decode() for name, value in variables.items()}


def test_push_secrets_reaches_the_running_programs_without_a_deploy(deploy_env, tmp_path):
    import os

    from conftest import assert_ok

    env = deploy_env
    secrets_file = tmp_path / "app-secrets.env"
    secrets_file.write_text("API_TOKEN=first-token-1234\n")
    heard = tmp_path / "hooks-heard.txt"
    say = f'echo "$DEPLOY_HOOK $DEPLOY_TASK" >> {heard}'
    env.write_config(with_proxy=True, secrets={"file": str(secrets_file)},
                     hooks={"before_restart": [say], "after_restart": [say]})
    assert_ok(env.fab("deploy"))
    release = env.current("web1")
    programs = {"web1": f"{env.name}-web", "web2": f"{env.name}-web", "pillow1": f"{env.name}-pillow"}
    before = {host: program_environment(env, host, program) for host, program in programs.items()}
    assert {found["API_TOKEN"] for _, found in before.values()} == {"first-token-1234"}

    secrets_file.write_text("API_TOKEN=rotated-token-5678\n")
    result = assert_ok(env.fab("push_secrets", environ={"FAB_JSON": "-"}))
    assert "rotated-token-5678" not in result.stdout + result.stderr
    after = {host: program_environment(env, host, program) for host, program in programs.items()}
    for host, (pid, found) in after.items():
        assert found["API_TOKEN"] == "rotated-token-5678", host
        assert pid != before[host][0], f"{host}: its program was not restarted"
        with open(os.path.join(env.code_root(host), "shared", "secrets.env")) as handle:
            assert "rotated-token-5678" in handle.read()
    # No new release; the web hosts were drained in waves and put back.
    assert {env.current(host) for host in env.hosts} == {release}
    doc = json.loads(result.stdout)
    assert all("secrets" in [s["step"] for s in doc["hosts"][host]["steps"]] for host in programs)
    assert heard.read_text().splitlines() == ["before_restart push_secrets", "after_restart push_secrets"]
    assert "in rotation: web1, web2; out of rotation: none" in assert_ok(env.fab("releases")).stdout


def test_push_secrets_without_secrets_is_one_line(deployed_env):
    from conftest import assert_one_line_error

    assert_one_line_error(deployed_env.env.fab("push_secrets"), "no `secrets` setting")

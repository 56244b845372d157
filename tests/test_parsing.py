"""Parsers of remote output and command builders, on captured text (no SSH)."""
import subprocess

import pytest

from fab import shell
from fab.errors import ConfigError
from fab.operations import state, supervisor
from fab.paths import Paths, expand_home
from fab.releases import GOOD, ReleaseMeta
from fab import templates


def test_parse_host_state():
    meta = ReleaseMeta("2026-11-22_03.00.00", "a" * 40, "main", "me", "2026-11-22T03:00:00+00:00", GOOD)
    output = "\n".join([
        "home /home/web1",
        "cpus 4",
        "current releases/2026-11-22_03.00.00",
        "release 2026-11-22_03.00.00",
        f"meta 2026-11-22_03.00.00 {meta.to_json().replace(chr(10), ' ')}",
        "step 2026-11-22_03.00.00 code",
        "step 2026-11-22_03.00.00 virtualenv",
        "release 2026-11-22_04.00.00",
        "meta 2026-11-22_04.00.00 not json",
    ])
    parsed = state.parse(output, "~/www/prod")
    assert parsed.paths.code_root == "/home/web1/www/prod"
    assert parsed.current == "2026-11-22_03.00.00" and parsed.cpus == 4
    assert parsed.releases["2026-11-22_03.00.00"].meta == meta
    assert parsed.steps["2026-11-22_03.00.00"] == {"code", "virtualenv"}
    assert parsed.releases["2026-11-22_04.00.00"].meta is None
    assert parsed.releases["2026-11-22_04.00.00"].status == "unreadable"  # said, never used
    assert parsed.steps["2026-11-22_04.00.00"] == set()


def test_the_git_caches_tips_are_commits_by_the_strict_reader():
    parsed = state.parse("\n".join(["home /home/web1", f"tip {'a' * 40}", f"tip {'b' * 40}",
                                     "tip --upload-pack=touch pwned", "tip HEAD"]), "~/www/prod")
    assert parsed.tips == {"a" * 40, "b" * 40}
    assert [line.split(":")[0] for line in parsed.problems] == [
        "ignored 'tip --upload-pack=touch pwned' from the host", "ignored 'tip HEAD' from the host"]
    assert state.parse("home /home/web1", "~/www/prod").tips == frozenset()


def test_the_state_script_reports_a_code_root_read_with_a_real_shell(tmp_path):
    """fab/remote/state.sh, run here on a code root laid out as a deploy leaves it
    (a path with a space in it), then parsed."""
    home = tmp_path / "the home"
    root = home / "www" / "prod"
    good = ReleaseMeta("2026-11-22_03.00.00", "a" * 40, "main", "me", "2026-11-22T03:00:00+00:00", GOOD)
    for name in ("2026-11-22_03.00.00", "2026-11-22_04.00.00"):
        (root / "releases" / name / ".release" / "steps").mkdir(parents=True)
    first = root / "releases" / good.name
    (first / ".release" / "meta.json").write_text(good.to_json())
    (first / ".release" / "steps" / "code").touch()
    (first / ".release" / "steps" / "virtualenv").touch()
    (first / "services" / "supervisor").mkdir(parents=True)
    (first / "services" / "supervisor" / "prod-web.conf").write_text("[program:prod-web]\n")
    (first / "services" / "port").mkdir(parents=True)
    (first / "services" / "port" / "prod-proxy.conf").write_text("events {}\n")
    (root / "venvs" / "0123456789abcdef").mkdir(parents=True)
    (root / "venvs" / "fedcba9876543210").mkdir()
    (root / "venvs" / "someone else's").mkdir()  # not the deployer's: never reported, never deleted
    (root / "venvs" / "aaaa.txt").touch()
    (first / "python_env").symlink_to(root / "venvs" / "0123456789abcdef")
    (root / "releases" / "2026-11-22_04.00.00" / ".release" / "meta.json").write_text("{broken\n")
    (root / "current").symlink_to(f"releases/{good.name}")
    (root / "shared" / "proxy").mkdir(parents=True)
    (root / "shared" / "proxy" / "prod-proxy-maintenance.conf").write_text("return 503;\n")  # in maintenance
    (root / "shared" / "proxy" / "prod-other-maintenance.html").write_text("<p>left</p>\n")  # a page alone: not
    (root / "shared" / "proxy" / "prod-proxy-upstream.conf").write_text("upstream u {}\n")
    output = subprocess.run(["bash", "-c", shell.remote_script("state"), "state", *state.arguments(Paths(str(root)))],
                            capture_output=True, text=True, check=True, env={"HOME": str(home),
                                                                               "PATH": "/usr/bin:/bin"}).stdout
    parsed = state.parse(output, "~/www/prod")
    assert parsed.paths.code_root == str(root) and parsed.cpus >= 1
    assert parsed.maintenance == {"prod-proxy"}
    assert parsed.current == good.name
    assert parsed.releases[good.name].meta == good
    assert parsed.releases["2026-11-22_04.00.00"].meta is None
    assert parsed.steps == {good.name: {"code", "virtualenv"}, "2026-11-22_04.00.00": set()}
    assert parsed.venvs == {good.name: "0123456789abcdef"} and parsed.venv_links_unknown == set()
    assert parsed.venv_dirs == {"0123456789abcdef", "fedcba9876543210"} and parsed.problems == [
        "release 2026-11-22_04.00.00 is unreadable (metadata is not JSON): not a rollback, resume or prepared "
        "release; cleanup leaves it"]
    assert parsed.configs == {good.name: {"prod-web": state.config_digest("[program:prod-web]\n"),
                                          "prod-proxy": state.config_digest("events {}\n")},
                              "2026-11-22_04.00.00": {}}


def run_state_script(*arguments, home="/nonexistent"):
    return subprocess.run(["bash", "-c", shell.remote_script("state"), "state", *arguments],
                          capture_output=True, text=True, env={"HOME": home, "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("python", ["", "/usr/bin/python3"])
def test_the_state_script_s_arguments_are_named_and_each_name_is_one_it_reads(python, tmp_path):
    arguments = state.arguments(Paths(str(tmp_path / "app")), python)
    named = dict(zip(arguments[::2], arguments[1::2]))
    assert all(name.startswith("--") for name in named) and len(named) * 2 == len(arguments)
    assert ("--python" in named) == bool(python) and named["--current"] == f"{tmp_path}/app/current"
    result = run_state_script(*arguments, home=str(tmp_path))
    assert result.returncode == 0 and result.stderr == "", result.stderr


@pytest.mark.parametrize("pinned", [None, "0"])
def test_the_state_counts_the_cpus_nproc_counts_without_starting_it(pinned, tmp_path):
    """state.sh reads the CPUs it may run on from /proc (a process less on every host)."""
    prefix = ["taskset", "-c", pinned] if pinned else []
    arguments = state.arguments(Paths(str(tmp_path / "app")))
    output = subprocess.run([*prefix, "bash", "-c", shell.remote_script("state"), "state", *arguments],
                            capture_output=True, text=True, check=True, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    nproc = subprocess.run([*prefix, "nproc"], capture_output=True, text=True, check=True).stdout.strip()
    assert f"cpus {nproc}" in output.stdout.splitlines()


@pytest.mark.parametrize("arguments, error", [
    (["--currnet", "/srv/app/current"], "state.sh: unknown argument '--currnet'"),
    (["/srv/app/current"], "state.sh: unknown argument '/srv/app/current'"),
    (["--freeze"], "state.sh: --freeze needs a value"),
])
def test_the_state_script_refuses_an_argument_it_does_not_know_in_one_line(arguments, error, tmp_path):
    result = run_state_script(*state.arguments(Paths(str(tmp_path / "app"))), *arguments, home=str(tmp_path))
    assert (result.returncode, result.stdout, result.stderr) == (2, "", error + "\n")


def test_a_named_argument_s_value_arrives_whole_and_a_leading_home_is_expanded_by_the_shell(tmp_path):
    """What a host receives: the arguments quoted by fab.shell (a `~/` kept for the
    remote shell to expand), a code root with spaces and an `=` in its name."""
    root = tmp_path / "a b=c"
    (root / "releases" / "r1").mkdir(parents=True)
    (root / "current").symlink_to("releases/r1")
    command = shell.command("bash", "-c", shell.remote_script("state"), "state",
                            *state.arguments(Paths("~/a b=c")))
    output = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                            env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}).stdout
    assert "current releases/r1" in output.splitlines() and "release r1" in output.splitlines()


def test_parse_supervisor_status():
    output = (
        "prod-web                         RUNNING   pid 123, uptime 0:00:05\n"
        "prod-pillow                      FATAL     Exited too quickly\n"
        "other:worker_00                  STOPPED   Not started\n"
    )
    assert supervisor.parse_status(output) == {
        "prod-web": "RUNNING", "prod-pillow": "FATAL", "other:worker_00": "STOPPED"}


def test_version_mismatch():
    version_mismatch = probe_module().mismatch
    assert version_mismatch({"commit": "a" * 40, "release": "/r/1"}, "a" * 40, "/r/1") is None
    assert "serves commit bbbbbbbbbbbb" in version_mismatch({"commit": "b" * 40, "release": "/r/1"}, "a" * 40, "/r/1")
    assert "runs from /r/0" in version_mismatch({"commit": "a" * 40, "release": "/r/0"}, "a" * 40, "/r/1")
    assert version_mismatch(None, "a", "/r") is None


@pytest.mark.parametrize("said, accepted", [
    ("/srv/app/releases/2026-01-02_03.04.05", True),  # its absolute path
    ("/srv/app/releases/2026-01-02_03.04.05/", True),
    ("2026-01-02_03.04.05", True),  # its name
    (None, True), ("", True),  # no release said: the commit decides
    ("2026-01-01_00.00.00", False),
    ("/srv/app/releases/2026-01-01_00.00.00", False),
    ("/other/2026-01-02_03.04.05", False),  # a path is the whole path
])
def test_version_release_may_be_the_name_or_the_path(said, accepted):
    expected = "/srv/app/releases/2026-01-02_03.04.05"
    answer = {"commit": "a" * 40, **({"release": said} if said is not None else {})}
    assert (probe_module().mismatch(answer, "a" * 40, expected) is None) is accepted


@pytest.mark.parametrize("value", ["plain", "with space", "it's", "$(rm -rf /)", "`x`", "a\nb", "~/x y", "-n"])
def test_quote_survives_a_real_shell(value):
    out = subprocess.run(["bash", "-c", "printf %s " + shell.quote(value)], capture_output=True, text=True,
                         env={"HOME": "/home/u", "PATH": "/usr/bin:/bin"}).stdout
    assert out == (("/home/u/" + value[2:]) if value.startswith("~/") else value)


def test_write_file_is_atomic_and_exact(tmp_path):
    target = tmp_path / "dir with space" / "file"
    target.parent.mkdir()
    content = "line 'one'\n$HOME `two`\n\\three\n"
    subprocess.run(["bash", "-c", shell.script(shell.write_file(str(target), content, mode=0o640))], check=True)
    assert target.read_text() == content
    assert oct(target.stat().st_mode & 0o777) == "0o640"
    assert [p.name for p in target.parent.iterdir()] == ["file"]


def test_paths():
    paths = Paths(expand_home("~/www/prod", "/home/u"))
    assert paths.release("2026-11-22_03.00.00") == "/home/u/www/prod/releases/2026-11-22_03.00.00"
    assert paths.current == "/home/u/www/prod/current"
    assert Paths.current_target("x") == "releases/x"
    with pytest.raises(ValueError):
        Paths("www/prod")


def test_template_missing_variable_names_template_and_variable():
    with pytest.raises(ConfigError, match=r"template supervisor/gunicorn.conf.j2: .*'host' is undefined"):
        templates.render([templates.BUILTIN_TEMPLATES], "supervisor/gunicorn.conf.j2",
                         program="p", release={}, service={"restart": "rolling"}, paths={}, env={},
                         load_secrets="")
    with pytest.raises(ConfigError, match="not found"):
        templates.render([templates.BUILTIN_TEMPLATES], "supervisor/nope.j2")


def probe_module():
    """fab/remote/probe.py, the health probe hosts run, loaded as a module."""
    import importlib.util
    from fab.shell import REMOTE_SCRIPTS

    spec = importlib.util.spec_from_file_location("probe", f"{REMOTE_SCRIPTS}/probe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

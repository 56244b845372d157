"""Release lifecycle on a real fleet: resume, rollback, setup_release, cleanup, hotfix."""
import json
import os

from conftest import assert_ok, assert_one_line_error
from fab import sandbox
from fab.history.store import open_store
from test_deploy import live_release


def deploy_new_commit(env, label):
    commit = env.commit("NEWS.txt", f"{label}\n", label)
    assert_ok(env.fab("deploy"))
    return live_release(env), commit


def served_commits(env):
    return {host: env.version(host)["commit"] for host in ("web1", "web2")}


def test_resume_continues_the_failed_release_without_rebuilding_its_venv(deploy_env):
    env = deploy_env
    first, _ = deploy_new_commit(env, "first")
    # A pre-swap check that fails until the operator fixes the cause.
    env.write_config(checks=["test -e ~/swap-allowed || { echo 'swap not allowed yet' >&2; exit 1; }"],
                     requirements=["requirements.txt", "extra-requirements.txt"])
    commit = env.commit("extra-requirements.txt", "# a new requirements file: a new venv\n", "extra")
    failed = env.fab("deploy")
    assert failed.returncode == 1
    assert "step 'check' failed" in failed.stderr and "swap not allowed yet" in failed.stderr
    assert live_release(env) == first
    building = max(env.releases("web1"))
    venv = os.path.realpath(os.path.join(env.code_root("web1"), "releases", building, "python_env"))
    stamp = os.stat(venv).st_mtime_ns, os.stat(venv).st_ino

    for host in env.hosts:
        env.remote(host, "touch ~/swap-allowed")
    resumed = assert_ok(env.fab("deploy:resume=yes"))

    assert f"resuming release {building}" in resumed.stdout
    assert resumed.stdout.count("virtualenv   skipped (already done)") == 3
    assert not any(made in resumed.stdout for made in ("built venv", "installed venv", "reused venv"))
    assert (os.stat(venv).st_mtime_ns, os.stat(venv).st_ino) == stamp
    assert live_release(env) == building
    assert set(served_commits(env).values()) == {commit}
    assert env.meta("web1", building)["status"] == "good"
    for host in env.hosts:
        env.remote(host, "rm -f ~/swap-allowed")

    nothing = env.fab("deploy:resume=yes")
    assert_one_line_error(nothing, "nothing to resume")


def test_deploy_deploy_rollback_rollback_walks_back_two_releases(deploy_env):
    env = deploy_env
    one, c1 = deploy_new_commit(env, "one")
    two, c2 = deploy_new_commit(env, "two")
    three, c3 = deploy_new_commit(env, "three")
    assert set(served_commits(env).values()) == {c3}

    assert_ok(env.fab("rollback"))
    assert live_release(env) == two
    assert set(served_commits(env).values()) == {c2}
    assert env.meta("web1", three)["status"] == "rolled_back"
    assert three in env.releases("web2")  # kept for inspection, not deleted

    assert_ok(env.fab("rollback"))
    assert live_release(env) == one
    assert set(served_commits(env).values()) == {c1}
    assert {env.meta(h, two)["status"] for h in env.hosts} == {"rolled_back"}

    # Back to a named release, in both spellings.
    assert_ok(env.fab(f"rollback:{three}"))
    assert live_release(env) == three and set(served_commits(env).values()) == {c3}
    assert env.meta("web1", three)["status"] == "good"
    assert env.meta("web1", one)["status"] == "good"  # rolling forward leaves the older one good
    assert_ok(env.fab("rollback", "--release", two))
    assert live_release(env) == two and set(served_commits(env).values()) == {c2}


def test_after_a_limited_deploy_and_a_full_one_rollback_goes_where_every_host_was(deploy_env):
    env = deploy_env
    env.write_config(keep_releases=2)
    before, c_before = deploy_new_commit(env, "live everywhere")
    env.commit("NEWS.txt", "web2 only\n", "tried on web2 alone")
    assert_ok(env.fab("deploy:hosts=web2"))
    tried = env.current("web2")
    # The hosts disagree: rollback refuses, naming what levels them (nothing to resume here).
    refused = assert_one_line_error(env.fab("rollback"), "hosts disagree", "a full `deploy`")
    assert "resume" not in refused
    after, _ = deploy_new_commit(env, "live everywhere again")
    # web2's cleanup keeps the release every host ran, though it has a newer good one.
    assert before in env.releases("web2") and tried in env.releases("web2")

    result = assert_ok(env.fab("rollback"))
    assert live_release(env) == before and set(served_commits(env).values()) == {c_before}
    assert env.meta("web2", after)["status"] == "rolled_back"
    # It says which release it passed over, and where that one is missing.
    others = ", ".join(sorted(h for h in env.hosts if h != "web2"))
    assert f"rollback passes over {tried} (missing on {others})" in result.stdout + result.stderr


def test_rollback_refused_when_a_host_lacks_the_target(deploy_env):
    env = deploy_env
    one, _ = deploy_new_commit(env, "one")
    two, c2 = deploy_new_commit(env, "two")
    env.remote("web2", f"rm -rf ~/{env.code_root_rel}/releases/{one}")

    line = assert_one_line_error(env.fab("rollback"), "web2")
    assert "nothing to roll back to" in line
    # `releases` marks no rollback target where `rollback` refuses (it marked web1's own).
    listed = json.loads(assert_ok(env.fab("releases:json=yes")).stdout)["releases"]
    assert {listing["rollback_target"] for listing in listed.values()} == {None}
    assert_one_line_error(env.fab(f"rollback:{one}"), f"cannot roll back to {one}", "web2: missing")
    assert_one_line_error(env.fab("rollback:../../etc"), "invalid release name")
    assert live_release(env) == two and set(served_commits(env).values()) == {c2}
    assert env.meta("web1", two)["status"] == "good"


def test_setup_release_is_private_and_kept_for_its_days(deploy_env):
    env = deploy_env
    live, _ = deploy_new_commit(env, "live")
    result = assert_ok(env.fab("setup_release:keep_days=3"))
    private = max(env.releases("web1"))
    assert private != live
    for host in env.hosts:
        path = os.path.join(env.code_root(host), "releases", private)
        assert f"{host}: {path}" in result.stdout
        assert os.path.isfile(os.path.join(path, "python_env", "bin", "python"))
        assert env.meta(host, private)["status"] == "private"
        assert env.meta(host, private)["keep_until"]
    assert live_release(env) == live  # current untouched

    unprotected = assert_ok(env.fab("setup_release", "--keep-days", "0"))
    unprotected_name = max(env.releases("web1"))
    assert unprotected_name in unprotected.stdout
    assert_ok(env.fab("clean_releases"))
    for host in env.hosts:
        assert private in env.releases(host)
        assert unprotected_name not in env.releases(host)
        assert live in env.releases(host)


def test_cleanup_keeps_good_releases_and_deletes_failed_ones(deploy_env):
    env = deploy_env
    env.write_config(keep_releases=2)
    good = [deploy_new_commit(env, f"good {i}")[0] for i in range(3)]
    # Two failed deploys: they must not push the last good releases out.
    env.write_config(keep_releases=2, checks=["false"])
    for i in range(2):
        env.commit("NEWS.txt", f"broken {i}\n", f"broken {i}")
        assert env.fab("deploy").returncode == 1
    env.write_config(keep_releases=2)
    assert_ok(env.fab("clean_releases"))
    for host in env.hosts:
        kept = env.releases(host)
        # The newest failed release stays: it is what `deploy:resume=yes` would continue.
        assert kept[:-1] == good[1:] and env.meta(host, kept[-1])["status"] == "failed", host
    assert live_release(env) == good[2]


def test_hotfix_updates_only_the_code_of_the_current_release(deploy_env):
    env = deploy_env
    env.commit("obsolete.txt", "to be deleted\n", "add obsolete file")
    live, old_commit = deploy_new_commit(env, "before hotfix")
    venv = os.path.realpath(os.path.join(env.code_root("web1"), "current", "python_env"))
    venv_inode = os.stat(venv).st_ino
    pids = {host: env.version(host)["pid"] for host in ("web1", "web2")}

    os.remove(os.path.join(env.spec.app_workdir, "obsolete.txt"))
    fix = env.commit("NEWS.txt", "hotfix\n", "hotfix")
    result = assert_ok(env.fab("hotfix_deploy"))

    assert "virtualenv" not in result.stdout and "cleanup" not in result.stdout
    assert "requirements" not in result.stdout + result.stderr
    assert live_release(env) == live and env.releases("web1") == [live]
    for host in ("web1", "web2"):
        answer = env.version(host)
        assert answer["commit"] == fix and answer["pid"] != pids[host]
    for host in env.hosts:
        release_dir = os.path.join(env.code_root(host), "releases", live)
        assert not os.path.exists(os.path.join(release_dir, "obsolete.txt"))
        with open(os.path.join(release_dir, "NEWS.txt")) as handle:
            assert handle.read() == "hotfix\n"
        meta = env.meta(host, live)
        assert meta["commit"] == fix
        assert len(meta["hotfixes"]) == 1 and f"{old_commit} -> {fix}" in meta["hotfixes"][0]
    assert os.stat(venv).st_ino == venv_inode
    recorded = open_store(os.environ["FAB_HISTORY_URL"], env.name).operation(env.name)  # the lead time's start
    assert (recorded["task"], recorded["commit"], recorded["commit_subject"]) == ("hotfix_deploy", fix, "hotfix")
    assert recorded["commit_time"] == float(sandbox.tools.git("show", "-s", "--format=%ct", fix,
                                                              cwd=env.spec.app_workdir))

    # A named commit works too (here: back to the one the release was built from).
    assert_ok(env.fab(f"hotfix_deploy:{old_commit}"))
    assert set(served_commits(env).values()) == {old_commit}

    # A commit that changes the requirements is hotfixed with a warning: they are not installed.
    requirements_path = os.path.join(env.spec.app_workdir, "requirements.txt")
    with open(requirements_path) as handle:
        requirements = handle.read()
    env.commit("requirements.txt", requirements + "# a new requirement would go here\n", "requirements")
    try:
        result = assert_ok(env.fab("hotfix_deploy"))
    finally:
        env.commit("requirements.txt", requirements, "requirements as they were")
    assert "a hotfix does not install them" in result.stdout + result.stderr
    assert os.stat(venv).st_ino == venv_inode


def test_releases_view_flags_drift(deploy_env):
    env = deploy_env
    one, _ = deploy_new_commit(env, "one")
    two, c2 = deploy_new_commit(env, "two")
    view = assert_ok(env.fab("releases")).stdout
    assert f"* {two}" in view and "DRIFT" not in view
    env.remote("web2", f"cd ~/{env.code_root_rel} && ln -sfn releases/{one} current")
    view = assert_ok(env.fab("releases")).stdout
    assert "DRIFT" in view and f"web2 has {one}" in view
    assert_one_line_error(env.fab("rollback"), "disagree on the current release", "rollback:release=NAME")
    # Naming the release brings every host to it.
    assert_ok(env.fab(f"rollback:{two}"))
    assert live_release(env) == two and set(served_commits(env).values()) == {c2}
    assert {env.meta(h, one)["status"] for h in env.hosts} == {"good"}


def test_failed_hotfix_puts_the_previous_code_back(deploy_env):
    env = deploy_env
    live, good = deploy_new_commit(env, "before a bad hotfix")
    with open(os.path.join(env.code_root("web1"), "current", "app.py")) as handle:
        app = handle.read()
    env.write_config(service_settings={
        "web": {"health_check": {"path": "/health", "version_path": "/version", "timeout": 3}}})
    with env.unhealthy_app("500 Internal Server Error"):
        result = env.fab("hotfix_deploy")

    assert result.returncode == 1
    assert f"release {live} runs {good[:12]} again" in result.stderr.strip().splitlines()[-1]
    assert set(served_commits(env).values()) == {good}
    for host in env.hosts:
        assert env.meta(host, live)["commit"] == good and env.meta(host, live)["hotfixes"] == []
        with open(os.path.join(env.code_root(host), "current", "app.py")) as handle:
            assert handle.read() == app


def test_a_hotfix_that_cannot_start_says_what_supervisor_said(deploy_env):
    env = deploy_env
    live, good = deploy_new_commit(env, "before a hotfix that cannot import")
    path = os.path.join(env.spec.app_workdir, "app.py")
    with open(path) as handle:
        app = handle.read()
    env.commit("app.py", "import no_such_module_fabtest\n" + app, "a hotfix that cannot import")
    try:
        result = env.fab("hotfix_deploy")
    finally:
        env.commit("app.py", app, "the app imports again")
    assert result.returncode == 1, result.stdout
    error = result.stderr.strip().splitlines()[-1]
    assert f"release {live} runs {good[:12]} again" in error
    assert "exit status" not in error, error  # what supervisor said, not a bare status
    assert set(served_commits(env).values()) == {good}


def test_deploy_a_given_revision(deploy_env):
    env = deploy_env
    first, c1 = deploy_new_commit(env, "revision one")
    second, c2 = deploy_new_commit(env, "revision two")
    result = assert_ok(env.fab(f"deploy:rev={c1}"))
    third = live_release(env)
    assert third not in (first, second)
    assert f"deploying {c1} at {c1[:12]}" in result.stdout
    assert set(served_commits(env).values()) == {c1}
    assert env.meta("web1", third)["commit"] == c1
    sandbox.tools.git("tag", "-f", "fabtest-tag", c2, cwd=env.spec.app_workdir)
    sandbox.tools.git("push", "-q", "-f", "origin", "fabtest-tag", cwd=env.spec.app_workdir)
    assert_ok(env.fab("deploy", "--rev", "fabtest-tag"))
    assert set(served_commits(env).values()) == {c2}
    assert_one_line_error(env.fab("deploy:rev=no-such-tag"), "'no-such-tag' does not exist")
    assert_one_line_error(env.fab("deploy:resume=yes,rev=main"), "do not give rev")


def test_a_failed_private_release_is_never_resumed_into_a_deploy(deploy_env):
    env = deploy_env
    live, _ = deploy_new_commit(env, "live")
    env.write_config(checks=["false"])
    failed = env.fab("setup_release:keep_days=1")
    assert failed.returncode == 1 and "deploy:resume=yes" not in failed.stdout
    private = max(env.releases("web1"))
    assert env.meta("web1", private)["status"] == "failed" and env.meta("web1", private)["private"]
    env.write_config()
    assert_one_line_error(env.fab("deploy:resume=yes"), "nothing to resume")
    assert live_release(env) == live

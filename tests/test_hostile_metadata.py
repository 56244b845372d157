"""A host's words are data (README › Trust model): hostile `.release/meta.json` files on
one host of a real fleet, then every task that reads releases. Nothing runs on the
controller or any host, every host's `current` stays inside `releases/`, and each task
goes on or refuses in one line, never with a traceback."""
import json
import os
import shlex
import uuid

import pytest

from conftest import assert_ok
from fab import host_values

HOSTILE_HOST = "web1"  # the environment's first host: the lock host, whose metadata plans read first


def write_meta(env, host, release, data):
    """Write `data` as `release`'s metadata on `host`, as the host's own user would."""
    directory = os.path.join("~", env.code_root_rel, "releases", release, ".release")
    text = data if isinstance(data, str) else json.dumps(data)
    env.remote(host, f"mkdir -p {directory} && printf %s {shlex.quote(text)} > {directory}/meta.json")


def assert_clean_exit(result, task):
    """Success, or a refusal in one line; never a traceback."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, f"{task}:\n{output}"
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, f"{task}:\n{result.stderr}"
    return result


@pytest.fixture
def markers():
    """Paths a hostile value asks a command to create (/tmp: every host user can write there)."""
    paths = [f"/tmp/fab-hostile-{uuid.uuid4().hex}" for _ in range(3)]
    yield paths
    for path in paths:
        if os.path.exists(path):
            os.remove(path)


def test_hostile_metadata_on_one_host_runs_nothing_and_moves_no_current_outside_releases(deploy_env, markers):
    env = deploy_env
    assert_ok(env.fab("deploy"))
    older = env.current(HOSTILE_HOST)
    env.commit("hostile.txt", "1\n", "second release")
    assert_ok(env.fab("deploy"))
    live = env.current(HOSTILE_HOST)
    env.commit("hostile.txt", "2\n", "prepared release")
    assert_ok(env.fab("preindex_views"))
    prepared = max(env.releases(HOSTILE_HOST))
    assert prepared > live

    # The hostile host's metadata: a rollback target whose commit is a git option that runs a
    # command, a live release whose commit writes a file, a prepared release and a newer
    # unfinished one naming paths outside releases/, and bad statuses, times and ports.
    meta = env.meta(HOSTILE_HOST, older)
    write_meta(env, HOSTILE_HOST, older, {**meta, "commit": f"--upload-pack=touch {markers[0]};git-upload-pack"})
    write_meta(env, HOSTILE_HOST, live, {**env.meta(HOSTILE_HOST, live), "commit": f"--output={markers[1]}"})
    write_meta(env, HOSTILE_HOST, prepared, {**env.meta(HOSTILE_HOST, prepared), "name": "../../x"})
    newer = ["2999-01-01_00.00.00", "2999-01-02_00.00.00", "2999-01-03_00.00.00", "2999-01-04_00.00.00"]
    write_meta(env, HOSTILE_HOST, newer[0], {**meta, "name": "../../y", "status": "building",
                                             "commit": f"--upload-pack=touch {markers[2]};git-upload-pack"})
    write_meta(env, HOSTILE_HOST, newer[1], {**meta, "name": newer[1], "status": "evil", "keep_until": "forever"})
    write_meta(env, HOSTILE_HOST, newer[2], {**meta, "name": newer[2], "status": "building",
                                             "ports": [["web", 70000]], "created_at": "yesterday"})
    write_meta(env, HOSTILE_HOST, newer[3], "{not json")
    write_meta(env, HOSTILE_HOST, "--output=x", {**meta, "name": "--output=x", "status": "good"})
    unreadable = [older, live, prepared, *newer]

    def check(task, *args):
        result = assert_clean_exit(env.fab(*args), task)
        for marker in markers:
            assert not os.path.exists(marker), f"{task} ran a command a host's metadata named"
        for host in env.hosts:
            link = os.readlink(os.path.join(env.code_root(host), "current"))
            parent, name = os.path.split(link)
            assert parent == "releases" and host_values.RELEASE_NAME.fullmatch(name), (task, host, link)
            assert name in env.releases(host), (task, host, link)
        assert set(unreadable) <= set(env.releases(HOSTILE_HOST)), f"{task} deleted an unreadable release"
        return result

    listed = check("releases", "releases")
    assert listed.returncode == 0
    for name in unreadable:
        assert sum(name in line and "unreadable" in line for line in listed.stdout.splitlines()) >= 1, name
    assert "is not 40 hex digits" in listed.stdout and "'../../x' is not a release name" in listed.stdout

    for task in ("hotfix_deploy", "rollback:plan=yes", "rollback", f"rollback:release={older}",
                 "deploy:resume=yes,plan=yes", "deploy:resume=yes"):
        refused = check(task, task)
        assert refused.returncode != 0, f"{task} went on with an unreadable release:\n{refused.stdout}"
        assert HOSTILE_HOST in refused.stderr, refused.stderr
        assert all(env.current(host) == live for host in env.hosts)

    planned = check("deploy:plan=yes", "deploy:plan=yes")
    assert planned.returncode == 0
    # The deploy goes on with a release of its own (not the prepared one, whose metadata
    # is unreadable on one host), and says once per unreadable release that it is left.
    deployed = check("deploy", "deploy")
    assert deployed.returncode == 0, deployed.stderr
    new = env.current(HOSTILE_HOST)
    assert new not in unreadable and new > live and all(env.current(host) == new for host in env.hosts)
    said = (deployed.stdout + deployed.stderr).splitlines()
    for name in unreadable:
        assert sum(f"release {name} is unreadable" in line for line in said) == 1, (name, said)

    assert check("clean_releases:plan=yes", "clean_releases:plan=yes").returncode == 0
    cleaned = check("clean_releases", "clean_releases")
    assert cleaned.returncode == 0
    check("rollback:plan=yes (after the deploy)", "rollback:plan=yes")

"""Services on a real fleet: supervisor configs, restarts under load, pillows,
supervisorctl, manage, port-controlled services and health checks."""
import json
import os
import re
import subprocess
import time
import urllib.request

from conftest import assert_ok
from loadgen import Load
from test_deploy import live_release


def supervisor_pid(env, host, program):
    out = env.remote(host, f"/opt/fab-sandbox-tools/bin/supervisorctl -c ~/supervisor/supervisord.conf pid {program}")
    return int(out)


def test_set_supervisor_config_removes_programs_and_sizes_workers_by_cpu(deploy_env):
    env = deploy_env
    services = {
        "web": {"role": "webworkers", "template": "supervisor/gunicorn.conf.j2", "port": env.port,
                "workers": "auto", "health_check": {"path": "/health", "version_path": "/version"}},
        "pillow": {"role": "pillowtop", "template": "supervisor/pillow.conf.j2"},
        "pillow2": {"role": "pillowtop", "template": "supervisor/pillow.conf.j2"},
    }
    env.write_config(services=services)
    assert_ok(env.fab("deploy"))
    status = env.program_status("pillow1")
    assert status[f"{env.name}-pillow"] == status[f"{env.name}-pillow2"] == "RUNNING"
    conf = os.path.join(env.code_root("web1"), "current", "services", "supervisor", f"{env.name}-web.conf")
    with open(conf) as handle:
        assert f"--workers {2 * os.cpu_count() + 1} " in handle.read()
    pillow_pid = supervisor_pid(env, "pillow1", f"{env.name}-pillow")
    removed_pid = supervisor_pid(env, "pillow1", f"{env.name}-pillow2")

    del services["pillow2"]
    heard = os.path.join(env.directory, "hooks-heard.txt")
    say = f'echo "$DEPLOY_HOOK $DEPLOY_TASK $DEPLOY_RELEASE" >> {heard}'
    env.write_config(services=services, hooks={"before_restart": [say], "after_restart": [say]})
    result = assert_ok(env.fab("set_supervisor_config"))
    with open(heard) as handle:
        live = env.current("web1")
        assert handle.read().splitlines() == [f"before_restart set_supervisor_config {live}",
                                              f"after_restart set_supervisor_config {live}"]

    status = env.program_status("pillow1")
    assert f"{env.name}-pillow2" not in status, status
    assert not os.path.exists(f"/proc/{removed_pid}")
    # An unchanged program is left alone.
    assert status[f"{env.name}-pillow"] == "RUNNING"
    assert supervisor_pid(env, "pillow1", f"{env.name}-pillow") == pillow_pid
    assert not os.path.exists(conf.replace("-web.conf", "-pillow2.conf"))
    assert "healthy" in result.stdout


def listening_pids(address, port):
    """The pids listening on `address`:`port` (a proxy's master and its workers), once
    the same twice in a row (old workers of a reload just before close their sockets)."""
    def read():
        out = subprocess.run(["ss", "-Hltnp", f"src {address}:{port}"], capture_output=True, text=True,
                             check=True).stdout
        return set(re.findall(r"pid=(\d+)", out))

    previous, deadline = read(), time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = read()
        if now == previous:
            break
        previous = now
    return previous


def test_set_supervisor_config_with_nothing_changed_says_so_and_restarts_nothing(deploy_env):
    env = deploy_env
    heard = os.path.join(env.directory, "hooks-heard.txt")
    say = f'echo "$DEPLOY_HOOK" >> {heard}'
    env.write_config(with_proxy=True, hooks={"before_restart": [say], "after_restart": [say]})
    assert_ok(env.fab("deploy"))
    programs = {(host, program): supervisor_pid(env, host, f"{env.name}-{program}")
                for host, program in (("web1", "web"), ("web2", "web"), ("pillow1", "pillow"))}
    proxy = listening_pids(env.spec.hosts["proxy1"], env.proxy_port)
    assert len(proxy) >= 2  # the master and a worker: a reload would start new workers

    result = assert_ok(env.fab("set_supervisor_config"))
    assert f"nothing changed: every host has these service configs in release {live_release(env)}" \
        in result.stdout, result.stdout
    assert not re.search(r"\b(drain|render|restart|undrain)\b +", result.stdout.replace("nothing restarted", ""))
    assert programs == {(host, program): supervisor_pid(env, host, f"{env.name}-{program}")
                        for host, program in programs}
    assert listening_pids(env.spec.hosts["proxy1"], env.proxy_port) == proxy
    assert not os.path.exists(heard)  # nothing restarted: no restart hooks

    env.write_config(with_proxy=True, service_settings={"web": {"workers": 2}})  # a change applies
    result = assert_ok(env.fab("set_supervisor_config"))
    assert "nothing changed" not in result.stdout
    assert supervisor_pid(env, "web1", f"{env.name}-web") != programs["web1", "web"]
    assert supervisor_pid(env, "pillow1", f"{env.name}-pillow") == programs["pillow1", "pillow"]


def test_deploy_and_restarts_under_load_drop_no_request(deploy_env):
    env = deploy_env
    env.write_config(with_proxy=True)
    first = env.head()
    assert_ok(env.fab("deploy"))
    proxy = f"http://{env.spec.hosts['proxy1']}:{env.proxy_port}/version"
    load = Load(proxy, threads=2, max_requests=6000, max_seconds=150, pause=0.05).start()
    try:
        assert load.wait_for_answer(first), load.summary()  # the load runs before the restart
        assert_ok(env.fab("restart_services"))
        second = env.commit("NEWS.txt", "under load\n", "deploy under load")
        assert_ok(env.fab("deploy"))
        assert load.wait_for_answer(second), load.summary()  # and the new release answers it
        # Limited to one web host, a restart and a deploy still drain it on the proxy
        # (not among the hosts named) and put it back afterwards.
        web2 = env.spec.hosts["web2"]
        for limited in (env.fab("restart_services:hosts=web2"), env.fab("deploy:hosts=webworkers")):
            assert_ok(limited)
            assert re.search(rf"proxy1 +drain +proxy: drained {re.escape(web2)}\b", limited.stdout), limited.stdout
            assert re.search(r"proxy1 +undrain +proxy: drained none", limited.stdout), limited.stdout
    finally:
        load.stop()
    assert load.failures == [], load.summary()
    assert load.answered > 50, load.summary()
    assert {first[:12], second[:12]} <= set(load.versions), load.summary()
    release = env.current("web1")  # the web hosts' own deploy: the others run the one before
    for host in ("web1", "web2"):
        assert env.version(host)["release"] == os.path.join(env.code_root(host), "releases", release)
        assert env.version(host)["commit"] == second


def test_a_limited_restart_takes_the_lock_on_a_proxy_it_only_drains_through(deploy_env):
    """The lock lives on the environment's first host; here that is the proxy, which a
    restart limited to web2 connects to only to drain web2 there: one connection does both."""
    env = deploy_env
    env.write_config(with_proxy=True, roles={"proxy": ["proxy1"], "webworkers": ["web1", "web2"],
                                             "pillowtop": ["pillow1"]})
    assert_ok(env.fab("deploy"))
    before = supervisor_pid(env, "web2", f"{env.name}-web")
    result = assert_ok(env.fab("restart_services:hosts=web2"))
    assert re.search(r"proxy1 +lock +acquired", result.stdout), result.stdout
    assert re.search(rf"proxy1 +drain +proxy: drained {re.escape(env.spec.hosts['web2'])}\b", result.stdout)
    assert supervisor_pid(env, "web2", f"{env.name}-web") != before
    assert os.path.exists(os.path.join(env.code_root("proxy1"), ".deploy.lock"))


def test_restart_services_runs_the_release_current_points_to(deploy_env):
    """The stale-symlink trap: current moved but the app server was never told."""
    env = deploy_env
    assert_ok(env.fab("deploy"))
    old = live_release(env)
    env.commit("NEWS.txt", "newer\n", "newer")
    assert_ok(env.fab("deploy"))
    for host in env.hosts:
        env.remote(host, f"cd ~/{env.code_root_rel} && ln -sfn releases/{old} .tmp && mv -Tf .tmp current")
    assert env.version("web1")["release"].endswith(live_release(env)) is False

    assert_ok(env.fab("restart_services"))

    for host in ("web1", "web2"):
        assert env.version(host)["release"] == os.path.join(env.code_root(host), "releases", old)


def test_graceful_reload_keeps_the_master_and_replaces_workers(deploy_env):
    env = deploy_env
    env.write_config(with_proxy=True, service_settings={"web": {"restart": "reload"}})
    assert_ok(env.fab("deploy"))
    masters = {h: supervisor_pid(env, h, f"{env.name}-web") for h in ("web1", "web2")}
    workers = {h: env.version(h)["pid"] for h in ("web1", "web2")}
    proxy = f"http://{env.spec.hosts['proxy1']}:{env.proxy_port}/version"
    load = Load(proxy, threads=2, max_requests=2000, max_seconds=60, pause=0.05).start()
    try:
        result = assert_ok(env.fab("restart_services"))
    finally:
        load.stop()
    assert "drain" not in result.stdout  # reloaded in place, no need to drain
    assert load.failures == [], load.summary()
    for host in ("web1", "web2"):
        assert supervisor_pid(env, host, f"{env.name}-web") == masters[host]
        assert env.version(host)["pid"] != workers[host]


def test_a_code_only_deploy_reloads_in_place_and_a_requirements_change_restarts(deploy_env):
    """restart: reload: a deploy that changes only the code keeps each gunicorn master
    (SIGHUP, no drain) and every host then serves the new commit from the new release;
    a changed virtualenv restarts the program (drained), and so does a rollback across it."""
    env = deploy_env
    env.write_config(with_proxy=True, service_settings={"web": {"restart": "reload"}})
    assert_ok(env.fab("deploy"))
    masters = {h: supervisor_pid(env, h, f"{env.name}-web") for h in ("web1", "web2")}
    proxy = f"http://{env.spec.hosts['proxy1']}:{env.proxy_port}/version"
    load = Load(proxy, threads=2, max_requests=4000, max_seconds=120, pause=0.05).start()
    try:
        # More deploys than keep_releases: the release each master started in is deleted,
        # and a reload must not depend on it.
        for change in range(4):
            commit = env.commit("NEWS.txt", f"reloaded {change}\n", "code only")
            result = assert_ok(env.fab("deploy"))
    finally:
        load.stop()
    assert load.failures == [], load.summary()
    assert "drain" not in result.stdout and "reloaded in place" in result.stdout
    live = live_release(env)
    for host in ("web1", "web2"):
        assert supervisor_pid(env, host, f"{env.name}-web") == masters[host]
        served = env.version(host)
        assert served["commit"] == commit and served["release"].endswith(f"/releases/{live}")

    requirements = os.path.join(env.spec.app_workdir, "requirements.txt")
    with open(requirements) as handle:
        pinned = handle.read()
    env.commit("requirements.txt", pinned + "# a comment: a new virtualenv key\n", "requirements")
    result = assert_ok(env.fab("deploy"))
    assert "installed venv" in result.stdout and "drain" in result.stdout  # a new venv, from the store
    for host in ("web1", "web2"):
        assert supervisor_pid(env, host, f"{env.name}-web") != masters[host]
        assert env.version(host)["commit"] == env.head()

    result = assert_ok(env.fab("rollback"))  # back across the virtualenv change: a restart
    assert "drain" in result.stdout
    for host in ("web1", "web2"):
        assert env.version(host)["commit"] == commit


def test_pillows_stop_and_start(deploy_env):
    env = deploy_env
    assert_ok(env.fab("deploy"))
    program = f"{env.name}-pillow"
    pid = supervisor_pid(env, "pillow1", program)
    assert_ok(env.fab("stop_pillows"))
    assert env.program_status("pillow1")[program] == "STOPPED"
    assert not os.path.exists(f"/proc/{pid}")
    result = assert_ok(env.fab("start_pillows"))
    assert env.program_status("pillow1")[program] == "RUNNING"
    assert f"running: {program}" in result.stdout
    # Web programs were never touched.
    assert env.program_status("web1")[f"{env.name}-web"] == "RUNNING"


def test_supervisorctl_shows_each_host(deployed_env):
    env = deployed_env.env
    for args in (["supervisorctl:status"], ["supervisorctl", "--command", "status"]):
        out = assert_ok(env.fab(*args)).stdout
        for host in ("web1", "web2", "pillow1"):
            assert f"--- {host} (exit 0)" in out
        assert f"{env.name}-pillow" in out and "RUNNING" in out
    failed = env.fab(f"supervisorctl:status {env.name}-nosuch")
    assert failed.returncode != 0 and "exited non-zero" in failed.stderr


def test_manage_streams_output_and_passes_the_exit_code(deployed_env):
    env = deployed_env.env  # its `manage` setting: {"role": "webworkers", "command": "python_env/bin/python manage.py"}
    checked = assert_ok(env.fab("manage:check"))
    assert f"{env.code_root('web1')}/releases/{live_release(env)}" in checked.stdout
    failed = env.fab("manage:fail 3")
    assert failed.returncode == 3 and "failing with exit code 3" in failed.stderr
    assert "Traceback" not in failed.stderr
    echoed = assert_ok(env.fab("manage", "--command", "echo 'two words' $HOME", "--host", "web2"))
    assert echoed.stdout.splitlines()[:2] == ["two words", "$HOME"]
    elsewhere = assert_ok(env.fab("manage:check,host=pillow1"))  # any host of the environment
    assert f"{env.code_root('pillow1')}/releases/" in elsewhere.stdout
    wrong = env.fab("manage:check,host=web9")
    assert wrong.returncode == 2 and "unknown host 'web9'" in wrong.stderr


def test_port_service_is_started_when_down_and_reloaded_when_up(deploy_env):
    env = deploy_env
    port = env.port + 2000
    hooks = "{log}/portd-hooks.txt"
    services = {
        "web": {"role": "webworkers", "template": "supervisor/gunicorn.conf.j2", "port": env.port,
                "health_check": {"path": "/health", "version_path": "/version"}},
        "portd": {"role": "pillowtop", "control": "port", "port": port, "daemonizes": False, "app": True,
                  "start": "python_env/bin/python portd.py {address} {port} {current}",
                  "reload": "kill -HUP {pid}",
                  "before": f"echo before >> {hooks}", "after": f"echo after >> {hooks}",
                  "health_check": {"path": "/", "expect_body": "revision", "timeout": 20}},
    }
    env.write_config(services=services)
    url = f"http://{env.spec.hosts['pillow1']}:{port}/"

    def portd():
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())

    first = env.head()
    result = assert_ok(env.fab("deploy"))
    assert "portd: started pid" in result.stdout
    started = portd()
    assert (started["reloads"], started["revision"]) == (0, first)

    second = env.commit("NEWS.txt", "port service\n", "port service")
    result = assert_ok(env.fab("deploy"))
    assert f"portd: reloaded pid {started['pid']}" in result.stdout
    reloaded = portd()
    assert reloaded["pid"] == started["pid"]
    assert (reloaded["reloads"], reloaded["revision"]) == (1, second)

    os.kill(started["pid"], 15)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{started['pid']}") and time.monotonic() < deadline:
        time.sleep(0.1)
    result = assert_ok(env.fab("restart_services"))
    assert "portd: started pid" in result.stdout
    restarted = portd()
    assert restarted["pid"] != started["pid"] and restarted["revision"] == second
    with open(os.path.join(env.code_root("pillow1"), "log", "portd-hooks.txt")) as handle:
        assert handle.read().split() == ["before", "after"] * 3


def test_failed_health_check_names_the_host_and_restores_the_previous_release(deploy_env):
    env = deploy_env
    good = env.head()
    assert_ok(env.fab("deploy"))
    before = live_release(env)
    env.write_config(service_settings={
        "web": {"health_check": {"path": "/health", "version_path": "/version", "timeout": 3}}})
    with env.unhealthy_app("503 Service Unavailable"):
        result = env.fab("deploy")

    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert "the canary failed: web1 (" in error and "HTTP Error 503" in error
    assert "every host is back on its previous release" in error
    assert live_release(env) == before
    for host in ("web1", "web2"):
        assert env.version(host)["commit"] == good
    failed = max(env.releases("web1"))
    assert env.meta("web1", failed)["status"] == "failed"


def test_a_host_whose_restart_fails_goes_back_into_rotation_once_healthy(deploy_env):
    env = deploy_env
    blocked = "test ! -e ~/block-restart || { echo 'restart blocked' >&2; exit 1; }"
    env.write_config(with_proxy=True, service_settings={"web": {"before": blocked}})
    assert_ok(env.fab("deploy"))
    env.remote("web1", "touch ~/block-restart")
    try:
        failed = env.fab("restart_services")
    finally:
        env.remote("web1", "rm -f ~/block-restart")
    assert failed.returncode == 1 and "before hook of web failed" in failed.stderr
    assert "restart blocked" in failed.stdout  # the host's own output, shown above the error
    # web1 kept running its old, healthy processes: it is back in the upstream list.
    upstream = os.path.join(env.code_root("proxy1"), "shared", "proxy", f"{env.name}-proxy-upstream.conf")
    with open(upstream) as handle:
        text = handle.read()
    assert "down" not in text and env.spec.hosts["web1"] in text
    proxy = f"http://{env.spec.hosts['proxy1']}:{env.proxy_port}/version"
    with urllib.request.urlopen(proxy, timeout=5) as response:
        assert response.status == 200


def commit_on_port(env, host, port):
    """The commit the app on `host` serves on `port`, or None if nothing answers there."""
    try:
        return env.version(host, port)["commit"]
    except OSError:
        return None


def test_a_port_change_its_rollback_and_a_config_change_go_live_without_dropping_requests(deploy_env):
    """While the web port changes, each host listens on the old port until its own
    restart: the proxy must send it there until then, and back after a rollback."""
    env = deploy_env
    env.write_config(with_proxy=True)
    assert_ok(env.fab("deploy"))
    old_port, new_port = env.port, env.port + 2000
    commit = env.head()
    proxy = f"http://{env.spec.hosts['proxy1']}:{env.proxy_port}/version"
    env.write_config(with_proxy=True, service_settings={"web": {"port": new_port}})
    # The rolled-back release runs the old port; set_supervisor_config renders it anew.
    for task, port, other in (("deploy", new_port, old_port), ("rollback", old_port, new_port),
                              ("set_supervisor_config", new_port, old_port)):
        load = Load(proxy, threads=2, max_requests=3000, max_seconds=90, pause=0.05).start()
        try:
            assert_ok(env.fab(task))
        finally:
            load.stop()
        assert load.failures == [], f"{task}: {load.summary()}"
        for host in ("web1", "web2"):
            assert commit_on_port(env, host, port) == commit, (task, host)
            assert commit_on_port(env, host, other) is None, (task, host)

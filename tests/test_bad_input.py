"""Bad input is one clear line, a non-zero exit, and no change on any host."""
import os

from conftest import assert_one_line_error, run_fab


def nothing_on_hosts(env):
    """No release, current or lock anywhere (earlier tests' venvs and git cache may remain)."""
    return all(
        not os.path.exists(os.path.join(env.code_root(host), name))
        for host in env.spec.hosts for name in ("releases", "current", ".deploy-lock")
    )


def test_unknown_environment(deploy_env):
    result = run_fab("nosuchenv", "deploy", environments=deploy_env.directory)
    assert_one_line_error(result, "unknown task or environment 'nosuchenv'", deploy_env.name)
    assert nothing_on_hosts(deploy_env)


def test_unknown_task(deploy_env):
    result = deploy_env.fab("deploi")
    assert_one_line_error(result, "unknown task or environment 'deploi'")
    assert nothing_on_hosts(deploy_env)


def test_keep_days_not_a_number_in_both_spellings(deploy_env):
    for args in (["setup_release:keep_days=abc"], ["setup_release", "--keep-days", "abc"],
                 ["setup_release:keep_days=-1"]):
        result = deploy_env.fab(*args)
        assert_one_line_error(result, "keep_days must be a whole number")
        assert result.returncode == 2
    assert nothing_on_hosts(deploy_env)


def test_unknown_task_argument(deploy_env):
    result = deploy_env.fab("deploy:resum=yes")
    assert_one_line_error(result, "unknown argument 'resum'")
    result = deploy_env.fab("deploy:resume=maybe")
    assert_one_line_error(result, "resume must be yes or no")
    assert nothing_on_hosts(deploy_env)


def test_malformed_environment_file(deploy_env):
    with open(os.path.join(deploy_env.directory, f"{deploy_env.name}.yml"), "w") as handle:
        handle.write("app: {repo: x\nroles: [\n")
    assert_one_line_error(deploy_env.fab("deploy"), f"{deploy_env.name}.yml", "not valid YAML")
    assert nothing_on_hosts(deploy_env)


def test_invalid_environment_settings(deploy_env):
    deploy_env.write_config(keep_releases=0, colour="blue")
    line = assert_one_line_error(deploy_env.fab("deploy"), "keep_releases", "colour: unknown setting")
    assert f"{deploy_env.name}.yml" in line
    assert nothing_on_hosts(deploy_env)


def test_branch_that_does_not_exist(deploy_env):
    deploy_env.write_config(app={"repo": deploy_env.spec.app_repo, "branch": "no-such-branch"})
    assert_one_line_error(deploy_env.fab("deploy"), "'no-such-branch' does not exist")
    assert nothing_on_hosts(deploy_env)


def test_unknown_host_key_is_refused(deploy_env, tmp_path):
    """A host whose key is not in known_hosts is refused, not silently trusted."""
    spec = deploy_env.spec
    with open(spec.ssh_config) as handle:
        config = handle.read().replace(spec.known_hosts, str(tmp_path / "empty_known_hosts"))
    (tmp_path / "empty_known_hosts").write_text("")
    (tmp_path / "ssh_config").write_text(config)
    deploy_env.write_config(ssh_config=str(tmp_path / "ssh_config"))
    line = assert_one_line_error(deploy_env.fab("deploy"), "unknown host key")
    assert "web1" in line
    assert nothing_on_hosts(deploy_env)


def test_changed_host_key_is_refused(deploy_env, tmp_path):
    spec = deploy_env.spec
    with open(spec.known_hosts) as handle:
        lines = handle.read().splitlines()
    # Give web1's address another host's key.
    web1 = next(i for i, line in enumerate(lines) if spec.hosts["web1"] in line)
    other = next(line for i, line in enumerate(lines) if i != web1)
    lines[web1] = lines[web1].split()[0] + " " + " ".join(other.split()[1:])
    (tmp_path / "known_hosts").write_text("\n".join(lines) + "\n")
    with open(spec.ssh_config) as handle:
        config = handle.read().replace(spec.known_hosts, str(tmp_path / "known_hosts"))
    (tmp_path / "ssh_config").write_text(config)
    deploy_env.write_config(ssh_config=str(tmp_path / "ssh_config"))
    assert_one_line_error(deploy_env.fab("deploy"), "host key mismatch")
    assert nothing_on_hosts(deploy_env)


def test_missing_ssh_config_file(deploy_env, tmp_path):
    deploy_env.write_config(ssh_config=str(tmp_path / "nope"))
    assert_one_line_error(deploy_env.fab("deploy"), "ssh_config file", "does not exist")
    assert nothing_on_hosts(deploy_env)


def test_an_abbreviated_commit_is_refused_with_what_to_give(deploy_env):
    short = deploy_env.head()[:7]
    assert_one_line_error(deploy_env.fab(f"deploy:rev={short}"), f"'{short}' is not a branch or tag",
                          "full 40-character id")
    assert nothing_on_hosts(deploy_env)


def test_a_full_commit_id_the_repository_lacks_is_refused_before_any_host(deploy_env):
    missing = "0123456789abcdef0123456789abcdef01234567"
    assert_one_line_error(deploy_env.fab(f"deploy:rev={missing}"), f"commit {missing} is not in")
    assert nothing_on_hosts(deploy_env)


def test_fabrics_host_flag_is_refused_and_a_bare_flag_is_set(deploy_env):
    """`fab -H web1,web2 <env> deploy` (a Fabric habit) ran one full deploy per -H entry;
    `deploy:plan` was read as resume=plan; `manage -h` was a command "-h" on a host."""
    env = deploy_env
    refused = run_fab("-H", "web1,web2", env.name, "deploy", environments=env.directory)
    assert_one_line_error(refused, "fab -H/--hosts", "deploy:hosts=web1,web2")
    assert refused.returncode == 2
    planned = env.fab("deploy:plan")
    assert planned.returncode == 0, planned.stderr
    assert "PLAN for deploy" in planned.stdout
    for task in ("deploy", "manage"):
        helped = env.fab(task, "-h")
        assert helped.returncode == 0 and helped.stdout.startswith(f"Usage: fab [--core-opts] {task} ")
    assert nothing_on_hosts(env)


def test_a_malformed_known_hosts_line_is_one_line_naming_file_and_line(deploy_env, tmp_path):
    spec = deploy_env.spec
    with open(spec.known_hosts) as handle:
        lines = handle.read().splitlines()
    lines.insert(1, "web9 ssh-ed25519 AAAA!!not-base64")
    (tmp_path / "known_hosts").write_text("\n".join(lines) + "\n")
    with open(spec.ssh_config) as handle:
        config = handle.read().replace(spec.known_hosts, str(tmp_path / "known_hosts"))
    (tmp_path / "ssh_config").write_text(config)
    deploy_env.write_config(ssh_config=str(tmp_path / "ssh_config"))
    assert_one_line_error(deploy_env.fab("deploy"), f"known_hosts file {tmp_path / 'known_hosts'}: line 2:")
    assert nothing_on_hosts(deploy_env)


def test_refused_environment_values_change_nothing_on_any_host(deploy_env):
    """A newline in a service's environment value (it overrode supervisor's command=), a
    code root that is no directory of its own, an overflowing number: one line, no host touched."""
    env = deploy_env
    for settings, message in (
            ({"service_settings": {"web": {"environment": {"X": "1\ncommand=/bin/sh -c 'touch ~/pwned'"}}}},
             "services.web.environment.X: contains a control character"),
            ({"code_root": "~"}, "code_root: '~' is not a directory of its own"),
            ({"code_root": "/tmp"}, "code_root: '/tmp' is not a directory of its own"),
            ({"keep_releases": 10**30}, "keep_releases: 1000000000000000000000000000000 is out of range")):
        env.write_config(**settings)
        assert_one_line_error(env.fab("deploy"), message)
    assert nothing_on_hosts(env)
    assert not any(os.path.exists(os.path.join(env.spec.home(host), "pwned")) for host in env.spec.hosts)

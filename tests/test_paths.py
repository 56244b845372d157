"""fab/paths.py: every remote path from the code root, and no other file of the
deployer spelling the layout (fab/remote/*.sh get their paths as arguments)."""
import pytest

from fab import paths as layout
from fab.paths import Paths, expand_home

ROOT = "/home/u/www/prod"
NAME = "2026-11-22_03.00.00"


@pytest.mark.parametrize("attribute,expected", [
    ("releases", "releases"),
    ("current", "current"),
    ("current_temp", ".current.tmp"),
    ("swap_lock", ".swap.lock"),
    ("swap_fence", ".swap.fence"),
    ("shared", "shared"),
    ("secrets_file", "shared/secrets.env"),
    ("proxy", "shared/proxy"),
    ("log", "log"),
    ("venvs", "venvs"),
    ("git_cache", "git-cache"),
    ("credentials_file", ".deploy-credentials"),
    ("netrc_file", ".deploy-netrc"),
    ("lock", ".deploy.lock"),
    ("lock_owner", ".deploy.lock.owner"),
    ("lock_released", ".deploy.lock.released"),
    ("lock_broken", ".deploy.lock.broken"),
    ("lock_generation", ".deploy.lock.generation"),
    ("fence_lock", ".fence.lock"),
    ("lock_breaks_log", "log/lock-breaks.log"),
])
def test_each_path_of_the_code_root(attribute, expected):
    assert getattr(Paths(ROOT), attribute) == f"{ROOT}/{expected}"


@pytest.mark.parametrize("method,args,expected", [
    ("release", (NAME,), f"releases/{NAME}"),
    ("release_revision", (NAME,), f"releases/{NAME}/REVISION"),
    ("release_venv", (NAME,), f"releases/{NAME}/python_env"),
    ("release_meta", (NAME,), f"releases/{NAME}/.release/meta.json"),
    ("release_steps", (NAME,), f"releases/{NAME}/.release/steps"),
    ("release_step", (NAME, "code"), f"releases/{NAME}/.release/steps/code"),
    ("release_services", (NAME,), f"releases/{NAME}/services/supervisor"),
    ("release_services", (NAME, "port"), f"releases/{NAME}/services/port"),
    ("release_service_config", (NAME, "port", "prod-proxy"), f"releases/{NAME}/services/port/prod-proxy.conf"),
    ("current_service_config", ("supervisor", "prod-web"), "current/services/supervisor/prod-web.conf"),
    ("shared_path", ("media/uploads",), "shared/media/uploads"),
    ("proxy_upstream", ("prod-proxy",), "shared/proxy/prod-proxy-upstream.conf"),
])
def test_each_path_of_a_release_or_a_name(method, args, expected):
    assert getattr(Paths(ROOT), method)(*args) == f"{ROOT}/{expected}"


@pytest.mark.parametrize("relative,name", [
    (layout.RELEASE_META, "release_meta"),
    (layout.RELEASE_STEPS, "release_steps"),
    (layout.VENV_LINK, "release_venv"),
    (layout.REVISION, "release_revision"),
])
def test_the_names_inside_a_release_a_script_gets_are_the_paths_python_uses(relative, name):
    assert getattr(Paths(ROOT), name)(NAME) == f"{Paths(ROOT).release(NAME)}/{relative}"


def test_the_supervisor_configs_dir_a_script_gets_is_the_one_python_writes():
    assert Paths(ROOT).release_services(NAME) == f"{Paths(ROOT).release(NAME)}/{layout.SUPERVISOR_CONFIGS}"


@pytest.mark.parametrize("code_root,home,expected", [
    ("~/www/prod", "/home/u", "/home/u/www/prod"),
    ("~", "/home/u", "/home/u"),
    ("/srv/www/prod", "/home/u", "/srv/www/prod"),
    ("/srv/www/prod/", "/home/u", "/srv/www/prod"),
    ("/srv//www/prod", "/home/u", "/srv/www/prod"),
])
def test_the_code_root_is_expanded_and_normalised(code_root, home, expected):
    assert Paths(expand_home(code_root, home)).code_root == expected


@pytest.mark.parametrize("code_root", ["~/www/prod", "~"])
def test_a_code_root_under_home_stays_for_the_remote_shell_to_expand(code_root):
    paths = Paths(code_root)
    assert paths.lock == f"{code_root}/.deploy.lock"
    assert paths.relative(paths.lock_breaks_log) == "log/lock-breaks.log"


@pytest.mark.parametrize("code_root", ["www/prod", "", "./prod", "~user/www"])
def test_a_relative_code_root_is_refused(code_root):
    with pytest.raises(ValueError, match="absolute"):
        Paths(code_root)


@pytest.mark.parametrize("target,name", [
    (f"releases/{NAME}", NAME),
    (f"releases/{NAME}/", NAME),
    (f"{ROOT}/releases/{NAME}", NAME),
    (f"elsewhere/{NAME}", None),
    (NAME, None),
    ("/releases", None),
])
def test_the_release_current_points_at(target, name):
    assert Paths.release_named_by(target) == name


def test_current_points_at_a_relative_target_it_can_be_read_back_from():
    assert Paths.current_target(NAME) == f"releases/{NAME}"
    assert Paths.release_named_by(Paths.current_target(NAME)) == NAME


@pytest.mark.parametrize("path", [Paths(ROOT).lock_breaks_log, Paths(ROOT).release_meta(NAME), Paths(ROOT).current])
def test_paths_are_shown_relative_to_the_code_root(path):
    assert Paths(ROOT).relative(path) == path.removeprefix(ROOT + "/")


def test_a_linked_path_may_not_take_a_release_s_own_names():
    assert layout.IN_RELEASE == {"REVISION", "python_env", "services", ".release"}

"""fab/paths.py: every remote path from the code root, and no other file of the
deployer spelling the layout (fab/remote/*.sh get their paths as arguments)."""
import ast
import glob
import os
import re

import pytest

from fab import paths as layout
from fab.paths import Paths, expand_home
from tests.conftest import PROJECT_ROOT

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
    ("store", "store"),
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
    ("stored", ("ab" * 32, "six-1.16.0-py2.py3-none-any.whl"), f"store/{'ab' * 32}/six-1.16.0-py2.py3-none-any.whl"),
    ("proxy_upstream", ("prod-proxy",), "shared/proxy/prod-proxy-upstream.conf"),
    ("proxy_maintenance", ("prod-proxy",), "shared/proxy/prod-proxy-maintenance.conf"),
    ("proxy_maintenance_include", ("prod-proxy",), "shared/proxy/prod-proxy-maintenance.con[f]"),
    ("proxy_maintenance_page", ("prod-proxy",), "shared/proxy/prod-proxy-maintenance.html"),
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


# -- no other file spells the layout ------------------------------------------------

#: Names of the layout no other file may spell anywhere in code (comments and
#: docstrings may: they explain).
DISTINCT_NAMES = [
    r"\.deploy[.-]lock", r"\.fence\.lock", r"lock-breaks\.log", r"meta\.json", r"python_env", r"\bREVISION\b",
    r"git-cache", r"secrets\.env\b", r"\.deploy-credentials", r"\.deploy-netrc", r"\.swap\.(lock|fence)",
    r"\.current\.tmp", r"\.complete\b", r"-upstream\.conf", r"\.release\b",
]
#: Names of the layout that are ordinary words too: spelled as a path component
#: (beside a slash) they are the layout.
WORD_NAMES = ["releases", "current", "shared", "log", "venvs", "services", "supervisor", "steps", "proxy",
              "store"]
SPELLED = re.compile("|".join(DISTINCT_NAMES) + r"|(?<![\w.$-])(?:{0})/|/(?:{0})(?![\w.-])".format(
    "|".join(WORD_NAMES)))

#: (file, text of the code): where a layout name is not a path of ours.
ALLOWED = {
    # A system directory a code root may not be; the sandbox's own supervisord.
    ("fab/settings/layout.py", "/var/log"),
    ("fab/sandbox/daemons.py", "{home}/supervisor/supervisor"),
    # Messages to the user that name a part of a release in words.
    ("fab/remote/hotfix.sh", "(a link into shared/)"),
    ("fab/settings/__init__.py", "(in shared/ through it already)"),
    # The dashboard's web addresses (an operation's log stream), not paths on a host.
    ("fab/dashboard/app.py", "/log"),
}


def _python_code_strings(source):
    """(line, text) of each line of each string in the code of a Python file:
    docstrings are prose."""
    tree = ast.parse(source)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            for text in node.value.splitlines():
                yield node.lineno, text


def _shell_code_lines(source):
    """(line, code) of each line of a script, its comments left out."""
    for number, line in enumerate(source.splitlines(), 1):
        yield number, re.sub(r"(^|\s)#.*", "", line)


def spelled_layout(path, source):
    """'<file>:<line>: <text>' for each layout name the file spells in its code."""
    relative = os.path.relpath(path, PROJECT_ROOT)
    found = []
    lines = _python_code_strings(source) if path.endswith(".py") else _shell_code_lines(source)
    for number, code in lines:
        if SPELLED.search(code) and not any(file == relative and text in code for file, text in ALLOWED):
            found.append(f"{relative}:{number}: {code.strip()}")
    return found


def deployer_files():
    """The deployer's scripts and modules, but fab/paths.py and the sample app (the
    application deployed, which reads the REVISION the deployer writes beside it)."""
    fab = os.path.join(PROJECT_ROOT, "fab")
    return sorted(path for path in {*glob.glob(os.path.join(fab, "remote", "*.sh")),
                                    *glob.glob(os.path.join(fab, "**", "*.py"), recursive=True)}
                  if path != os.path.join(fab, "paths.py")
                  and not path.startswith(os.path.join(fab, "builtin", "sample_app") + os.sep))


def test_no_file_but_fab_paths_spells_the_remote_layout():
    found = []
    for path in deployer_files():
        with open(path) as handle:
            found += spelled_layout(path, handle.read())
    assert found == [], "spelled outside fab/paths.py (take it from Paths, or as a script's argument):\n" + \
        "\n".join(found)


@pytest.mark.parametrize("path,source,spelled", [
    ("fab/x.py", 'lock = root + "/.deploy.lock"\n', True),
    ("fab/x.py", 'target = f"{root}/releases/{name}"\n', True),
    ("fab/x.py", 'command = "cd current/ && ls"\n', True),
    ("fab/x.py", 'link = "python_env"\n', True),
    ("fab/x.py", '"""Writes python_env and log/lock-breaks.log."""\n', False),
    ("fab/x.py", 'x = 1  # see releases/ and .deploy.lock\n', False),
    ("fab/x.py", 'print(state.current, "releases", listing["current"])\n', False),
    ("fab/x.py", 'name = "DEPLOY_REVISION"\n', False),
    ("fab/remote/x.sh", 'cd "$root/releases" || exit 1\n', True),
    ("fab/remote/x.sh", 'exec 9>>"$root/.deploy.lock"\n', True),
    ("fab/remote/x.sh", 'ln -s -- "$shared/$name" "$name"\n', False),
    ("fab/remote/x.sh", '# Points current at releases/<name>\n', False),
    ("fab/remote/x.sh", 'rm -f "$released"  # ours: .deploy.lock.released\n', False),
    ("fab/remote/x.sh", 'echo "${#confs[@]} steps"\n', False),
])
def test_the_layout_check_tells_code_from_prose(path, source, spelled):
    assert bool(spelled_layout(os.path.join(PROJECT_ROOT, path), source)) == spelled

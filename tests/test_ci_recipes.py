"""The README's CI recipes, run as written: their `fab` command lines on the test fleet
under CI=true, each outcome giving its exit code and exactly one JSON document on stdout.

The lines run in a clone of the app with a one-line fabfile, as a CI job runs them in
the app's repository; only the environment's name (the test's) and `--wait`'s seconds
(a held lock is waited for 3 s, not 15 minutes) are changed.
"""
import json
import os
import re
import subprocess

import jsonschema
import pytest

from conftest import FAB, PROJECT_ROOT
from fab.outputs.summary import SCHEMA_PATH

RECIPE_ENV = "production"


def readme_recipes():
    """{"GitHub Actions": line, "GitLab CI": line}: the `fab` line of each YAML block of
    the README's CI recipes section, without its YAML prefix (`run:`, `-`)."""
    with open(os.path.join(PROJECT_ROOT, "README.md")) as handle:
        readme = handle.read()
    section = readme.split("\n## CI recipes\n", 1)[1].split("\n## ", 1)[0]
    recipes = {}
    for block in re.findall(r"```yaml\n(.*?)```", section, re.S):
        title = "GitHub Actions" if "runs-on:" in block else "GitLab CI" if "script:" in block else block
        lines = [re.sub(r"^\s*(run:|-)\s*", "", line) for line in block.splitlines()
                 if re.match(rf"^\s*(run:|-)\s*fab {RECIPE_ENV} ", line)]
        assert len(lines) == 1, (title, lines)
        recipes[title] = lines[0]
    return recipes


RECIPES = readme_recipes()


def test_the_readme_has_both_recipes_with_every_option():
    assert set(RECIPES) == {"GitHub Actions", "GitLab CI"}
    for line in RECIPES.values():
        assert line.startswith(f"fab {RECIPE_ENV} deploy ")
        for option in ("--json", "--wait 900", '--message "$(git log -1 --format=%s)"', "> deploy.json"):
            assert option in line, line


@pytest.fixture
def app_clone(deploy_env, tmp_path):
    """A clone of the test app with the one-line fabfile an app's repository has: where
    a CI job runs."""
    clone = tmp_path / "app"
    # The commit the job deploys, with the subject its message comes from (the shared
    # test repository's last subject may be any other test's).
    deploy_env.commit("ci.txt", "from CI\n", message="Fix the login page")
    subprocess.run(["git", "clone", "-q", deploy_env.spec.app_repo, str(clone)], check=True)
    (clone / "fabfile.py").write_text("from fab.tasks import *  # noqa: F401,F403\n")
    return clone


def run_recipe(line, env, clone):
    """Run a recipe's line as the CI job's shell does, in `clone`; (exit code, the JSON
    document it wrote, stderr)."""
    line = line.replace(f"fab {RECIPE_ENV} ", f"fab {env.name} ", 1).replace("--wait 900", "--wait 3")
    environ = {**os.environ, "CI": "true", "DEPLOY_ENVIRONMENTS": env.directory,
               "PATH": f"{os.path.dirname(FAB)}:{os.environ['PATH']}", "PYTHONPATH": PROJECT_ROOT}
    environ.pop("FAB_JSON", None)
    result = subprocess.run(["bash", "-e", "-c", line], cwd=clone, env=environ, capture_output=True, text=True,
                            timeout=600, stdin=subprocess.DEVNULL)
    with open(clone / "deploy.json") as handle:
        written = handle.read()
    document = json.loads(written)  # one document: json.loads refuses anything after it
    assert written.strip().startswith("{") and written.count('\n}\n') == 1 and written.endswith("}\n"), written
    with open(SCHEMA_PATH) as handle:
        jsonschema.validate(document, json.load(handle))
    return result.returncode, document, result.stderr


@pytest.fixture
def lock_held(deploy_env):
    """Another deployer holding the environment's lock, for the duration."""
    with deploy_env.lock_held_by_another({"owner": "someone@elsewhere", "machine": "elsewhere", "pid": 4242,
                                          "task": "deploy", "since": "2026-01-01T00:00:00+00:00"}):
        yield


def has_task(name):
    listed = subprocess.run([FAB, "-l"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False).stdout
    return re.search(rf"^\s+{name}\b", listed, re.M) is not None


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_a_recipe_that_deploys(recipe, deploy_env, app_clone):
    code, document, stderr = run_recipe(RECIPES[recipe], deploy_env, app_clone)
    assert code == 0, stderr
    assert (document["outcome"], document["exit_code"], document["task"]) == ("succeeded", 0, "deploy")
    head = subprocess.run(["git", "log", "-1", "--format=%s"], cwd=app_clone, capture_output=True, text=True).stdout
    assert document["message"] == head.strip() == "Fix the login page"
    assert document["release"] == deploy_env.current("web1")


def test_a_recipe_whose_deploy_fails(deploy_env, app_clone):
    deploy_env.write_config(checks=["case \"$(whoami)\" in *-web2) echo 'swap refused here'; exit 1;; esac"])
    code, document, _ = run_recipe(RECIPES["GitHub Actions"], deploy_env, app_clone)
    assert (code, document["outcome"], document["exit_code"]) == (1, "failed", 1)
    assert "step 'check' failed on web2" in document["error"]


def test_a_recipe_that_finds_the_lock_held(deploy_env, app_clone, lock_held):
    code, document, stderr = run_recipe(RECIPES["GitLab CI"], deploy_env, app_clone)
    assert (code, document["outcome"], document["exit_code"]) == (3, "refused", 3), stderr
    assert "someone@elsewhere" in document["error"]


def test_a_recipe_with_a_broken_environment_file(deploy_env, app_clone):
    deploy_env.write_config(no_such_setting=1)
    code, document, stderr = run_recipe(RECIPES["GitHub Actions"], deploy_env, app_clone)
    assert (code, document["outcome"], document["exit_code"]) == (2, "refused", 2)
    assert "no_such_setting: unknown setting" in document["error"] and document["error"] in stderr


def test_a_recipe_that_finds_the_environment_frozen(deploy_env, app_clone):
    if not has_task("freeze"):
        pytest.skip("no freeze task on this branch (issue 20 item 2)")
    assert deploy_env.fab("freeze:a release party").returncode == 0
    code, document, _ = run_recipe(RECIPES["GitHub Actions"], deploy_env, app_clone)
    assert (code, document["outcome"], document["exit_code"]) == (3, "refused", 3)
    assert "a release party" in document["error"]

"""What the sandbox's hosts use, made once on the controller and shared by every fleet
(the sandbox, the test fleets, the bench fleets): a system-wide venv of host tools
(supervisor, virtualenv, uv), a wheelhouse of the sample app's requirements so
deploys stay offline, and the sample app's git repository the hosts fetch from.
"""
import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess

from fab import BUILTIN_DIR

TOOLS = "/opt/fab-sandbox-tools"
WHEELHOUSE = os.path.join(TOOLS, "wheelhouse")
SAMPLE_APP = os.path.join(BUILTIN_DIR, "sample_app")
SYSTEM_PYTHON = "/usr/bin/python3"


def sh(*args, **kwargs):
    kwargs.setdefault("check", True)
    return subprocess.run(args, **kwargs)


def log(text):
    print(f"sandbox: {text}", flush=True)


# --- shared tools -------------------------------------------------------------


@contextlib.contextmanager
def tools_lock():
    """Serialise building the shared tools and wheelhouse (parallel test workers share them)."""
    os.makedirs(os.path.dirname(TOOLS), exist_ok=True)
    with open(TOOLS + ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def ensure_tools():
    """A system-wide venv with supervisor and virtualenv, usable by every host user."""
    requirements = os.path.join(BUILTIN_DIR, "sandbox-hosts-requirements.txt")
    marker = os.path.join(TOOLS, ".installed-" + file_digest(requirements))
    if os.path.exists(marker):
        return
    log(f"installing host tools into {TOOLS}")
    if not os.path.exists(os.path.join(TOOLS, "bin", "python")):
        sh(SYSTEM_PYTHON, "-m", "venv", TOOLS)
    sh(os.path.join(TOOLS, "bin", "pip"), "install", "-q", "-r", requirements)
    os.chmod(TOOLS, 0o755)
    open(marker, "w").close()


def ensure_wheelhouse():
    """Wheels for the sample app's requirements, built once, so deploys stay offline."""
    requirements = os.path.join(SAMPLE_APP, "requirements.txt")
    marker = os.path.join(WHEELHOUSE, ".built-" + file_digest(requirements))
    if os.path.exists(marker):
        return WHEELHOUSE
    log(f"building the sample app's wheelhouse in {WHEELHOUSE}")
    os.makedirs(WHEELHOUSE, exist_ok=True)
    sh(os.path.join(TOOLS, "bin", "pip"), "wheel", "-q", "-w", WHEELHOUSE, "-r", requirements)
    for path in [WHEELHOUSE] + [os.path.join(WHEELHOUSE, f) for f in os.listdir(WHEELHOUSE)]:
        os.chmod(path, 0o755 if os.path.isdir(path) else 0o644)
    open(marker, "w").close()
    return WHEELHOUSE


def file_digest(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()[:16]


# --- the sample app's repository ----------------------------------------------

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Sandbox",
    "GIT_AUTHOR_EMAIL": "sandbox@localhost",
    "GIT_COMMITTER_NAME": "Sandbox",
    "GIT_COMMITTER_EMAIL": "sandbox@localhost",
}


def git(*args, cwd=None):
    env = {**os.environ, **GIT_IDENTITY}
    return sh("git", *args, cwd=cwd, env=env, capture_output=True, text=True).stdout.strip()


def ensure_app_repo(spec):
    """Create the sample app's repository (bare, readable by every host) once."""
    if os.path.isdir(spec.app_repo):
        return
    log(f"creating the sample app repository {spec.app_repo}")
    shutil.copytree(SAMPLE_APP, spec.app_workdir, ignore=shutil.ignore_patterns("__pycache__"))
    git("init", "-q", "-b", "main", cwd=spec.app_workdir)
    git("add", "-A", cwd=spec.app_workdir)
    git("commit", "-q", "-m", "Sample app", cwd=spec.app_workdir)
    git("clone", "-q", "--bare", "--", spec.app_workdir, spec.app_repo)
    git("remote", "add", "--", "origin", spec.app_repo, cwd=spec.app_workdir)
    git("fetch", "-q", "--", "origin", cwd=spec.app_workdir)
    git("branch", "-q", "--set-upstream-to=origin/main", "main", cwd=spec.app_workdir)
    sh("chmod", "-R", "a+rX", spec.app_repo)


def commit_app_change(spec, path, content, message):
    """Commit a change to the sample app and push it; return the new commit."""
    full = os.path.join(spec.app_workdir, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as handle:
        handle.write(content)
    git("add", "-A", cwd=spec.app_workdir)
    # --allow-empty: a test may write what the file already holds; it still wants a new commit.
    git("commit", "-q", "--allow-empty", "-m", message, cwd=spec.app_workdir)
    git("push", "-q", "--", "origin", "HEAD:main", cwd=spec.app_workdir)
    sh("chmod", "-R", "a+rX", spec.app_repo)
    return git("rev-parse", "HEAD", cwd=spec.app_workdir)

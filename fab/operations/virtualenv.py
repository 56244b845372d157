"""The release's virtualenv, reused when nothing it depends on changed.

Runs on: all roles. Virtualenvs live in `venvs/<key>`, where the key hashes the
requirements files, the pip arguments and the interpreter's version; a release
links to its venv as `python_env`. A venv is built at its final path and never
changed once complete, so a release whose requirements match an existing venv
reuses it without running pip. Safe to rerun.

The key is defined once, by `venv_key`. With wheels.build: once (the default)
the controller decides it (fab.operations.wheels, from the version line read
with the host's state) and the host installs the stored wheels it is given
under it, with no index (venv.sh's store mode). With each_host, venv.sh's index
mode computes the same bytes' hash on the host (checked against `venv_key` in
the tests) and pip installs from the index. `fab <env> deploy:plan=yes` computes
it on the controller to predict reuse.
"""
import hashlib

from fab import host_values as values
from fab import secrets, shell
from fab.operations import ALL_ROLES, credentials
from fab.operations.release import once
from fab.paths import RELEASE_WHEELS, VENV_COMPLETE, VENV_LINK, VENV_WHEELS

ROLES = ALL_ROLES

#: What the key takes from the interpreter: its full version (build, compiler). Run
#: with -S: the version is the same without the site module, and python starts in
#: half the time (every host of a fleet runs it in every build). venv.sh runs the same.
PYTHON_VERSION_CODE = "import sys; print(sys.version)"
KEY_LENGTH = 16


def pip_args_line(pip_args):
    """The pip arguments as the one line the key hashes (credentials masked: the line
    is part of a command, and a new password is not a new set of packages)."""
    return " ".join(shell.quote(secrets.mask_url(str(a))) for a in pip_args)


def venv_key(requirement_contents, pip_args, python_version_output):
    """The venv key: the first 16 hex digits of sha256 over the requirements files'
    bytes (in the environment's order), the pip arguments' line and what
    `python -S -c PYTHON_VERSION_CODE` printed on the host (bytes, newline included)."""
    digest = hashlib.sha256()
    for content in requirement_contents:
        digest.update(content)
    digest.update(pip_args_line(pip_args).encode() + b"\n")
    digest.update(python_version_output)
    return digest.hexdigest()[:KEY_LENGTH]


def ensure(host, release_name, install=None):
    """Step: link the release to a matching complete venv, making it first if needed
    (fab/remote/venv.sh). `install` (a fab.operations.wheels.Install, with
    wheels.build: once): the key the controller decided and the stored wheels to
    install with no index; None: the host installs from the index (each_host).
    Its note: "reused venv <key>", "installed venv <key> from store (N wheels)" or
    "built venv <key> with <builder>"."""
    env = host.env
    common = [host.paths.venvs, env.python, env.virtualenv, env.uv or "", VENV_LINK, VENV_COMPLETE]
    if install is not None:
        pairs = [word for wheel in install.wheels for word in (wheel.sha256, wheel.name)]
        script = shell.step_script("venv", "store", *common, install.key, VENV_WHEELS, RELEASE_WHEELS,
                                   host.paths.store, *pairs)
        return once(host, release_name, "virtualenv", script, then=venv_note, result=venv_key_of)
    requirements = list(env.requirements)
    script = shell.step_script("venv", "index", *common, pip_args_line(env.pip_args), len(requirements),
                               *requirements, *credentials.split_pip_args(env.pip_args)[0])
    return once(host, release_name, "virtualenv", "\n".join([credentials.load_line(host), script]),
                then=venv_note, result=venv_key_of)


def venv_note(last_line):
    """The virtualenv step's note, from venv.sh's last line (as it is, if unreadable)."""
    try:
        outcome, key, builder, count = read_result(last_line)
    except values.Unreadable:
        return last_line
    if outcome == "installed":
        return f"installed venv {key} from store ({count} wheel{'' if count == 1 else 's'})"
    return f"{outcome} venv {key}" + (f" with {BUILDERS[builder]}" if builder else "")


def venv_key_of(last_line):
    """The virtualenv step's result: the key of the venv the release links to (None:
    unreadable, so unknown: a reload decision then restarts, and cleanup deletes no venv)."""
    try:
        return read_result(last_line)[1]
    except values.Unreadable:
        return None


#: venv.sh's builder word -> how a note names it.
BUILDERS = {"uv": "uv", "virtualenv": "virtualenv + pip"}


def read_result(line):
    """(outcome, key, builder or None, wheels installed or None) from venv.sh's last
    line: "reused <key>", "built <key> <builder>" or "installed <key> <builder>
    <wheels>"; Unreadable otherwise."""
    words = line.split(" ")
    outcome = values.one_of(words[0], ("reused", "built", "installed"), "venv outcome")
    if len(words) != {"reused": 2, "built": 3, "installed": 4}[outcome]:
        raise values.Unreadable(f"venv result {values.quoted(line)} is not reused <key>, built <key> <builder> "
                                "or installed <key> <builder> <wheels>")
    key = values.hex_digest(words[1], "venv key")
    builder = values.one_of(words[2], tuple(BUILDERS), "venv builder") if outcome != "reused" else None
    count = values.integer(int(words[3]) if words[3].isdigit() else -1, 0, 1 << 20, "wheels") \
        if outcome == "installed" else None
    return outcome, key, builder, count

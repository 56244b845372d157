"""The release's virtualenv, reused when nothing it depends on changed.

Runs on: all roles. Virtualenvs live in `venvs/<key>`, where the key hashes the
requirements files, the pip arguments and the interpreter's version; a release
links to its venv as `python_env`. A venv is built at its final path and never
changed once complete, so a release whose requirements match an existing venv
reuses it without running pip. Safe to rerun.

The key is defined once, by `venv_key`; the build computes the same bytes' hash
on the host (`key_command`, checked against `venv_key` in the tests), and
`fab <env> deploy:plan=yes` computes it on the controller to predict reuse.
"""
import hashlib

from fab import host_values as values
from fab import secrets, shell
from fab.operations import ALL_ROLES, credentials
from fab.operations.release import once
from fab.paths import VENV_COMPLETE

ROLES = ALL_ROLES

#: What the key takes from the interpreter: its full version (build, compiler). Run
#: with -S: the version is the same without the site module, and python starts in
#: half the time (every host of a fleet runs it in every build).
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


def key_command(env):
    """Shell, run in the release directory: sets $key to `venv_key` of its requirements."""
    requirements = " ".join(shell.quote(r) for r in env.requirements)
    return (
        f"key=$( {{ cat {requirements} /dev/null; printf '%s\\n' {shell.quote(pip_args_line(env.pip_args))}; "
        f"{shell.quote(env.python)} -S -c {shell.quote(PYTHON_VERSION_CODE)}; }} | sha256sum | cut -c1-{KEY_LENGTH})"
    )


def ensure(host, release_name):
    """Step: link the release to a matching complete venv, building it first if needed."""
    env = host.env
    paths = host.paths
    requirements = " ".join(shell.quote(r) for r in env.requirements)
    pip_args = " ".join(shell.quote(a) for a in credentials.split_pip_args(env.pip_args)[0])
    python = shell.quote(env.python)
    requirement_args = " ".join(f"-r {shell.quote(r)}" for r in env.requirements) + (
        f" {pip_args}" if pip_args else "")
    install = ('"$venv/bin/pip" install --quiet --no-input --disable-pip-version-check '
               + requirement_args) if env.requirements else "true"
    build = f"""{shell.quote(env.virtualenv)} --quiet --python {python} "$venv" >&2
  {install} >&2
  builder='virtualenv + pip'"""
    if env.uv:
        uv = shell.quote(env.uv)
        uv_install = (f'{uv} pip install --quiet --python "$venv/bin/python" {requirement_args}'
                      if env.requirements else "true")
        build = f"""if command -v {uv} >/dev/null 2>&1; then
    {uv} venv --quiet --python {python} "$venv" >&2
    {uv_install} >&2
    builder=uv
  else
    {build}
  fi"""
    body = f"""
{credentials.load_line(host)}
for file in {requirements}; do
  [ -f "$file" ] || {{ echo "requirements file $file is not in the release" >&2; exit 1; }}
done
{key_command(env)}
venv={shell.quote(paths.venvs)}/"$key"
if [ -f "$venv"/{shell.quote(VENV_COMPLETE)} ]; then
  note="reused venv $key"
else
  rm -rf "$venv"
  {build}
  touch "$venv"/{shell.quote(VENV_COMPLETE)}
  note="built venv $key with $builder"
fi
ln -sfn "$venv" {shell.quote(paths.release_venv(release_name))}
echo "$note"
"""

    def remember(note):
        """The host's state learns which venv the release runs (reload decisions use it)."""
        words = note.split()  # "reused|built venv <key> ...", as the host reported it
        try:
            host.state.venvs[release_name] = values.hex_digest(words[2] if len(words) > 2 else "", "venv key")
        except values.Unreadable:
            host.state.venvs.pop(release_name, None)  # unknown: a reload decision then restarts
        return note

    return once(host, release_name, "virtualenv", body, then=remember)

"""The release's virtualenv, reused when nothing it depends on changed.

Runs on: all roles. Virtualenvs live in `venvs/<key>`, where the key hashes the
requirements files, the pip arguments and the interpreter's version; a release
links to its venv as `python_env`. A venv is built at its final path and never
changed once complete, so a release whose requirements match an existing venv
reuses it without running pip. Safe to rerun.
"""
from fab import shell
from fab.operations import ALL_ROLES
from fab.operations.release import once

ROLES = ALL_ROLES


def ensure(host, release_name):
    """Link the release to a matching complete venv, building it first if needed."""
    env = host.env
    paths = host.paths
    requirements = " ".join(shell.quote(r) for r in env.requirements)
    pip_args = " ".join(shell.quote(a) for a in env.pip_args)
    python = shell.quote(env.python)
    install = (
        '"$venv/bin/pip" install --quiet --no-input --disable-pip-version-check '
        + " ".join(f"-r {shell.quote(r)}" for r in env.requirements)
        + (f" {pip_args}" if pip_args else "")
    ) if env.requirements else "true"
    body = f"""
for file in {requirements}; do
  [ -f "$file" ] || {{ echo "requirements file $file is not in the release" >&2; exit 1; }}
done
key=$( {{ cat {requirements} /dev/null; printf '%s\\n' {shell.quote(pip_args)}; {python} -c 'import sys; print(sys.version)'; }} | sha256sum | cut -c1-16)
venv={shell.quote(paths.venvs)}/"$key"
if [ -f "$venv/.complete" ]; then
  note="reused venv $key"
else
  rm -rf "$venv"
  {shell.quote(env.virtualenv)} --quiet --python {python} "$venv" >&2
  {install} >&2
  touch "$venv/.complete"
  note="built venv $key"
fi
ln -sfn "$venv" python_env
echo "$note"
"""
    return once(host, release_name, "virtualenv", body)

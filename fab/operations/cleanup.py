"""Removing old releases and the virtualenvs no release uses any more.

Runs on: all roles. What to delete is decided by `fab.releases.releases_to_delete`
from every host's state before any host changes; this only carries it out. Safe
to rerun.
"""
from fab import shell
from fab.operations import ALL_ROLES
from fab.paths import VENV_LINK
from fab.releases import validate_release_name
from fab.steps import Step

ROLES = ALL_ROLES


def delete_releases(host, names):
    """Step "cleanup": delete the releases `names`, then the venvs no release uses."""
    paths = host.paths
    doomed = [paths.release(validate_release_name(name)) for name in names]
    note = f"removed {len(doomed)} release(s)" if doomed else "nothing to remove"
    return Step("cleanup", f"""
{shell.command("rm", "-rf", "--", *doomed) if doomed else "true"}
# A venv no remaining release links to is no longer needed (one readlink for all).
if [ -d {shell.quote(paths.venvs)} ]; then
  declare -A used=()
  links=()
  for link in {shell.quote(paths.releases)}/*/{shell.quote(VENV_LINK)}; do [ -L "$link" ] && links+=("$link"); done
  if [ "${{#links[@]}}" -gt 0 ]; then
    while IFS= read -r target; do used[${{target##*/}}]=1; done < <(readlink -- "${{links[@]}}")
  fi
  for venv in {shell.quote(paths.venvs)}/*/; do
    [ -d "$venv" ] || continue
    key=${{venv%/}}
    key=${{key##*/}}
    [ -n "${{used[$key]:-}}" ] || rm -rf "$venv"
  done
fi
echo {shell.quote(note)}
""", cwd=paths.code_root)

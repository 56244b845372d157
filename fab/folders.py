"""Where environment files are found: the deploy folders, without reading any file.

Kept apart from `fab.settings` (the schema, which needs pydantic) and `fab.config`
(loading) so that listing the tasks and environments (`fab -l`) stays quick.
"""
import os
import re

from fab.precedence import environment_dirs

#: What an environment's name may be.
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

#: The directory of the fabfile `fab` loaded (None: none, e.g. imported by a test or a
#: tool): its `deploy/` is the app's deploy folder, wherever in the app `fab` runs.
_fabfile_dir = None


def use_fabfile_dir(directory):
    """Look for the app's deploy folder beside the fabfile in `directory` (fab.entry)."""
    global _fabfile_dir
    _fabfile_dir = directory


def search_dirs():
    """The folders environments are looked up in (fab.precedence.environment_dirs)."""
    return environment_dirs(os.environ, _fabfile_dir)


def deploy_folder(environments_dir):
    """The deploy folder of an environments folder: its parent. Relative paths in an
    environment file, and its `templates/`, are there."""
    return os.path.dirname(os.path.abspath(environments_dir))


def available_environments(directory=None):
    """Every environment's name, from `directory` or else from `environment_dirs`."""
    names = set()
    for folder in [directory] if directory else search_dirs():
        if os.path.isdir(folder):
            names.update(n[: -len(".yml")] for n in os.listdir(folder) if n.endswith(".yml"))
    return sorted(names)


def find_environment(name, directory=None):
    """The path of environment `name`'s file (the first folder that has it), or None."""
    if not re.match(NAME, name):
        return None
    for folder in [directory] if directory else search_dirs():
        path = os.path.join(folder, f"{name}.yml")
        if os.path.isfile(path):
            return path
    return None

"""Every remote path, derived from an environment's code root. No other module joins paths.

    <code_root>/
      releases/<name>/            one release: code, python_env -> venv, services/, .release/
      current -> releases/<name>  swapped atomically
      shared/                     linked files and dirs, secrets.env, proxy upstreams
      log/  venvs/<key>/  git-cache/  .deploy-lock/
"""
import posixpath

RELEASE_META_DIR = ".release"


class Paths:
    """Remote paths of one environment on one host; `code_root` is absolute."""

    def __init__(self, code_root):
        if not posixpath.isabs(code_root):
            raise ValueError(f"code root must be absolute, got {code_root!r}")
        self.code_root = posixpath.normpath(code_root)

    def _under(self, *parts):
        return posixpath.join(self.code_root, *parts)

    @property
    def releases(self):
        return self._under("releases")

    @property
    def current(self):
        return self._under("current")

    @property
    def shared(self):
        return self._under("shared")

    @property
    def secrets_file(self):
        """The environment's secrets as KEY='value' lines (mode 0600), for services and commands."""
        return posixpath.join(self.shared, "secrets.env")

    def shared_path(self, linked):
        """Where a linked file or dir (a relative path) lives, across releases."""
        return posixpath.join(self.shared, linked)

    @property
    def log(self):
        return self._under("log")

    @property
    def venvs(self):
        return self._under("venvs")

    @property
    def git_cache(self):
        return self._under("git-cache")

    @property
    def lock(self):
        return self._under(".deploy-lock")

    def release(self, name):
        return posixpath.join(self.releases, name)

    def release_meta(self, name):
        return posixpath.join(self.release(name), RELEASE_META_DIR, "meta.json")

    def release_steps(self, name):
        return posixpath.join(self.release(name), RELEASE_META_DIR, "steps")

    def release_step(self, name, step):
        return posixpath.join(self.release_steps(name), step)

    def release_services(self, name, control="supervisor"):
        """Where a release keeps its rendered service configs (supervisor/ or port/)."""
        return posixpath.join(self.release(name), "services", control)

    def current_service_config(self, control, program):
        """A service config as seen through `current` (what a reload re-reads)."""
        return posixpath.join(self.current, "services", control, f"{program}.conf")

    def proxy_upstream(self, program):
        """The upstream list a proxy includes; rewritten to drain hosts, so not per release."""
        return posixpath.join(self.shared, "proxy", f"{program}-upstream.conf")

    def venv(self, key):
        return posixpath.join(self.venvs, key)

    @staticmethod
    def current_target(name):
        """The relative target `current` points at, so the tree can be moved whole."""
        return posixpath.join("releases", name)


def expand_home(path, home):
    """`~/x` on a host whose home is `home` -> `home/x`; absolute paths pass through."""
    if path == "~":
        return home
    if path.startswith("~/"):
        return posixpath.join(home, path[2:])
    return path

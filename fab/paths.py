"""Every remote path, derived from an environment's code root: the one place that
spells the layout. Python asks `Paths` (as `host.paths`); the scripts in
fab/remote/ get every path they use as an argument, and a script that walks many
releases gets the few names inside a release it needs (RELEASE_META, ...).

    <code_root>/
      releases/<name>/                 one release
        ...the code at one commit...
        REVISION                       the commit
        python_env -> venvs/<key>      its virtualenv (an absolute link)
        services/<control>/*.conf      its service configs (supervisor/, port/)
        .release/meta.json             commit, branch, who, when, status, ports
        .release/steps/<step>          the steps this host finished (for resume)
        .release/wheels                "<sha256> <file>" of each wheel its venv was
                                       installed from (wheels.build: once)
      current -> releases/<name>       swapped with a temporary link (.current.tmp.<pid>)
      shared/                          across releases: linked files and dirs,
        secrets.env                    the environment's secrets (0600)
        proxy/<program>-upstream.conf  a proxy's upstream list
        proxy/<program>-maintenance.conf, .html  its maintenance switch and page
                                       (there only while in maintenance)
      log/                             program logs,
        lock-breaks.log                one line per `unlock` that stopped a holder
      venvs/<key>/                     virtualenvs, `.complete` once built,
        .wheels                        "<sha256> <file>" of the store's wheels it was installed from
      store/<sha256>/<file name>       artifacts sent by the controller or a peer
                                       (wheels, git bundles), content-addressed;
                                       <file name>.part while one arrives
      .wheel-builds/<tmp>/             a builder host's throwaway build (wheels.builder)
      git-cache/                       bare mirror the releases are exported from
      .deploy-credentials .deploy-netrc  git's and pip's credentials (0600)
      .deploy.lock                     flock'ed while a task holds the lock (first host)
      .deploy.lock.owner               who holds (or last held) it
      .deploy.lock.released            when the last holder let go
      .deploy.lock.broken              `unlock`'s audit line, for the holder it stops
      .deploy.lock.generation .fence.lock  the lock's generation (fence.sh) and its flock
      .deploy.freeze                   the environment's freeze, if frozen (first host)
      .swap.lock .swap.fence           swaps of `current`, serialised and fenced

A code root may start with `~/`: the remote shell expands it (fab.shell.quote), so
the paths of a host not read yet are under it; once its state is read they are
absolute (`expand_home`).
"""
import posixpath

#: Where supervisorctl looks for its config file when its command names none (the
#: absolute places of its search; outside any code root).
SUPERVISORD_CONFIGS = ("/etc/supervisord.conf", "/etc/supervisor/supervisord.conf")

#: The directory of releases and the link to the live one, under the code root.
RELEASES = "releases"
CURRENT = "current"

#: Inside a release (relative to it): what the deployer keeps beside the code.
REVISION = "REVISION"
VENV_LINK = "python_env"
SERVICES = "services"
RELEASE_META_DIR = ".release"
RELEASE_META = posixpath.join(RELEASE_META_DIR, "meta.json")
RELEASE_STEPS = posixpath.join(RELEASE_META_DIR, "steps")
#: The wheels a release's venv was installed from, "<sha256> <file name>" lines.
RELEASE_WHEELS = posixpath.join(RELEASE_META_DIR, "wheels")
SUPERVISOR_CONFIGS = posixpath.join(SERVICES, "supervisor")
#: A release's own top-level names: a linked path may not be one of them.
IN_RELEASE = frozenset({REVISION, VENV_LINK, SERVICES, RELEASE_META_DIR})

#: A proxy's maintenance snippet is <program> and this, in Paths.proxy.
MAINTENANCE_SUFFIX = "-maintenance.conf"

#: The file in a virtualenv that says it was built completely.
VENV_COMPLETE = ".complete"
#: The file in a virtualenv listing the stored wheels it was installed from.
VENV_WHEELS = ".wheels"
#: The file in a virtualenv naming the interpreter (inode, change time) that last
#: started in it: the pre-swap check starts python again only for another one.
VENV_STARTED = ".started"


class Paths:
    """Remote paths of one environment on one host; `code_root` is absolute or
    starts with `~/` (then expanded by the remote shell)."""

    def __init__(self, code_root):
        if not (posixpath.isabs(code_root) or code_root == "~" or code_root.startswith("~/")):
            raise ValueError(f"code root must be absolute or start with ~/, got {code_root!r}")
        self.code_root = posixpath.normpath(code_root)

    def __repr__(self):
        return f"Paths({self.code_root!r})"

    def _under(self, *parts):
        return posixpath.join(self.code_root, *parts)

    def relative(self, path):
        """`path` (under the code root) as the user knows it: relative to the code root."""
        return posixpath.relpath(path, self.code_root)

    # -- releases and `current` ------------------------------------------------

    @property
    def releases(self):
        return self._under(RELEASES)

    def release(self, name):
        return posixpath.join(self.releases, name)

    @property
    def current(self):
        return self._under(CURRENT)

    @property
    def current_temp(self):
        """The start of the temporary link a swap renames over `current` (the swap adds `.<pid>`)."""
        return self._under(".current.tmp")

    @staticmethod
    def current_target(name):
        """The relative target `current` points at, so the tree can be moved whole."""
        return posixpath.join(RELEASES, name)

    @staticmethod
    def release_named_by(target):
        """The release name `current`'s link target ends in (`releases/<name>`, or an
        absolute path ending so); None if it does not point into a releases dir."""
        parent, _, name = target.rstrip("/").rpartition("/")
        return name if parent.rpartition("/")[2] == RELEASES else None

    @property
    def swap_lock(self):
        """flock'ed by a swap: swaps of `current` on a host run one at a time."""
        return self._under(".swap.lock")

    @property
    def swap_fence(self):
        """The last swap's task and counter: a stale swap of the same task is refused."""
        return self._under(".swap.fence")

    # -- inside a release ------------------------------------------------------

    def release_revision(self, name):
        return posixpath.join(self.release(name), REVISION)

    def release_venv(self, name):
        """The release's link to its virtualenv."""
        return posixpath.join(self.release(name), VENV_LINK)

    def release_meta(self, name):
        return posixpath.join(self.release(name), RELEASE_META)

    def release_steps(self, name):
        return posixpath.join(self.release(name), RELEASE_STEPS)

    def release_step(self, name, step):
        return posixpath.join(self.release_steps(name), step)

    def release_services(self, name, control="supervisor"):
        """Where a release keeps its rendered service configs (supervisor/ or port/)."""
        return posixpath.join(self.release(name), SERVICES, control)

    def release_service_config(self, name, control, program):
        return posixpath.join(self.release_services(name, control), f"{program}.conf")

    @property
    def current_venv(self):
        """The live release's link to its virtualenv, through `current`."""
        return posixpath.join(self.current, VENV_LINK)

    def current_service_config(self, control, program):
        """A service config as seen through `current` (what a reload re-reads)."""
        return posixpath.join(self.current, SERVICES, control, f"{program}.conf")

    # -- across releases -------------------------------------------------------

    @property
    def shared(self):
        return self._under("shared")

    def shared_path(self, linked):
        """Where a linked file or dir (a relative path) lives, across releases."""
        return posixpath.join(self.shared, linked)

    @property
    def secrets_file(self):
        """The environment's secrets as KEY='value' lines (mode 0600), for services and commands."""
        return posixpath.join(self.shared, "secrets.env")

    @property
    def proxy(self):
        """A proxy's files: its upstream lists (and what its template keeps there)."""
        return posixpath.join(self.shared, "proxy")

    def proxy_upstream(self, program):
        """The upstream list a proxy includes; rewritten to drain hosts, so not per release."""
        return posixpath.join(self.proxy, f"{program}-upstream.conf")

    def proxy_maintenance(self, program):
        """The snippet a proxy's server block includes: there only while in maintenance
        (`maintenance:on`), so it lasts across releases."""
        return posixpath.join(self.proxy, f"{program}{MAINTENANCE_SUFFIX}")

    def proxy_maintenance_include(self, program):
        """proxy_maintenance as a pattern that matches only it: nginx includes what a
        pattern matches, and nothing (no error) while the file is not there."""
        return self.proxy_maintenance(program)[:-1] + "[f]"

    def proxy_maintenance_page(self, program):
        """The page a proxy answers with in maintenance."""
        return posixpath.join(self.proxy, f"{program}-maintenance.html")

    @property
    def log(self):
        return self._under("log")

    @property
    def venvs(self):
        return self._under("venvs")

    @property
    def store(self):
        """Content-addressed artifacts the controller or a peer sent (fab.transfer)."""
        return self._under("store")

    def stored(self, sha256, name):
        """Where the artifact with digest `sha256` and file name `name` lives once received."""
        return posixpath.join(self.store, sha256, name)

    @property
    def wheel_builds(self):
        """Where a builder host builds wheels, each build in a temporary directory."""
        return self._under(".wheel-builds")

    @property
    def git_cache(self):
        return self._under("git-cache")

    @property
    def python_identity(self):
        """The environment's python's identity as the state read last read it, with
        what it was read from (fab/remote/state.sh): a python start per read spared."""
        return self._under(".python-identity")

    @property
    def credentials_file(self):
        """sh variables (git's credentials, NETRC) a step that runs git or pip loads."""
        return self._under(".deploy-credentials")

    @property
    def netrc_file(self):
        """The netrc file pip and uv read (NETRC names it)."""
        return self._under(".deploy-netrc")

    # -- the deploy lock (fab/remote/lock.sh, unlock.sh, fence.sh) -------------

    @property
    def lock(self):
        """flock'ed while a task holds the environment's deploy lock."""
        return self._under(".deploy.lock")

    @property
    def lock_owner(self):
        """The holder's record (JSON), shown to whoever is refused."""
        return self.lock + ".owner"

    @property
    def lock_released(self):
        """When the last holder let go (this host's clock); absent if it did not cleanly."""
        return self.lock + ".released"

    @property
    def lock_broken(self):
        """`unlock`'s audit line, for the holder it stops to say so."""
        return self.lock + ".broken"

    @property
    def lock_generation(self):
        """The lock's generation, raised by every holder and every `unlock` (fence.sh)."""
        return self.lock + ".generation"

    @property
    def fence_lock(self):
        """flock'ed while fence.sh reads and raises the generation."""
        return self._under(".fence.lock")

    @property
    def freeze(self):
        """The environment's freeze (a JSON record), beside the lock; absent: not frozen."""
        return self._under(".deploy.freeze")

    @property
    def lock_breaks_log(self):
        """One line per `unlock` that stopped a holder."""
        return posixpath.join(self.log, "lock-breaks.log")


def expand_home(path, home):
    """`~/x` on a host whose home is `home` -> `home/x`; absolute paths pass through."""
    if path == "~":
        return home
    if path.startswith("~/"):
        return posixpath.join(home, path[2:])
    return path

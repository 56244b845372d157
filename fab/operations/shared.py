"""What outlives a release: linked files and dirs in `<code_root>/shared/`, and secrets.

Runs on: all roles. `upload_secrets` writes the environment's secrets to
shared/secrets.env (mode 0600) at every deploy, so services and commands get the
current values. `link` links every `linked_dirs` and `linked_files` entry of a
new release to its place in shared/, before the release's build commands run; a
linked file that no host copy and no `shared_files_from` can provide stops the
deploy before the swap, naming the file. Nothing follows a symlink the
repository commits (fab/remote/link.sh): one above a linked path refuses the
release, one at a linked path is replaced by the link. Rollback and cleanup only
ever remove the links in a release, never what they point to, and a hotfix
leaves them out (fab/remote/hotfix.sh). Both steps are safe to rerun.
"""
import os
import shlex

from fab import shell
from fab.hosts import RemoteCommandFailed
from fab.operations import ALL_ROLES
from fab.operations.release import once

ROLES = ALL_ROLES


def secrets_file_text(values):
    """shared/secrets.env: one KEY='value' line each, safe to source from sh. (File
    content, not a command: shlex.quote, so a value starting with ~/ stays as it is.)"""
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in sorted(values.items()))


def write_private(host, path, content):
    """Write `content` to `path` with mode 0600, atomically; the content travels by
    SFTP, never on a command line (other users on the host can read those)."""
    temp = f"{path}.upload"
    host.run(shell.remote_script("shared"), ["prepare", os.path.dirname(path), temp])
    host.upload(content, temp)
    host.run(shell.remote_script("shared"), ["commit", temp, path])


def upload_secrets(host):
    """Put the environment's secrets on the host (shared/secrets.env, mode 0600)."""
    values = host.env.secret_values
    write_private(host, host.paths.secrets_file, secrets_file_text(values))
    return f"{len(values)} secret(s) in {host.paths.secrets_file}"


def missing_linked_files(host):
    """The linked files shared/ does not have on this host."""
    by_path = {host.paths.shared_path(name): name for name in host.env.linked_files}
    output = host.run(shell.remote_script("shared"), ["missing", *by_path])
    return [by_path[line] for line in output.splitlines() if line in by_path]


def provide_missing_files(host):
    """Upload, from the local `shared_files_from` folder, each linked file this host
    lacks (never one it has). Returns the names it could not provide."""
    env = host.env
    missing = missing_linked_files(host)
    source = env.local_path(env.shared_files_from) if env.shared_files_from else None
    unprovided = []
    for name in missing:
        local = os.path.join(source, name) if source else None
        if local and os.path.isfile(local):
            with open(local) as handle:
                write_private(host, host.paths.shared_path(name), handle.read())
        else:
            unprovided.append(name)
    return unprovided


def link(host, release_name):
    """Step: link the release's linked dirs and files to shared/ (once per release)."""
    env = host.env
    paths = host.paths
    unprovided = provide_missing_files(host) if env.linked_files else []
    if unprovided:
        where = f" or in {env.local_path(env.shared_files_from)}" if env.shared_files_from else ""
        raise RemoteCommandFailed(
            f"linked file {unprovided[0]} is missing: put it in {paths.shared_path(unprovided[0])}{where}")
    entries = [*(f"dir:{name}" for name in env.linked_dirs), *(f"file:{name}" for name in env.linked_files)]
    body = shell.step_script("link", paths.shared, *entries)
    return once(host, release_name, "link", body)

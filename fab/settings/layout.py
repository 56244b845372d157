"""Which directories an environment may deploy into (fab.settings): a code root of its
own, and linked paths inside the release.
"""
import posixpath

from fab.paths import IN_RELEASE


def linked_path(value):
    """A path inside the release (and inside shared/): relative, no `..`, not ours."""
    normal = posixpath.normpath(value)
    if (not value or value.startswith(("/", "~")) or normal in (".", "..") or normal.startswith("../")
            or "/../" in f"/{value}/" or "\n" in value):
        raise ValueError(f"{value!r} must be a relative path inside the release")
    if normal.split("/")[0] in IN_RELEASE:  # the deployer's own parts of a release
        raise ValueError(f"{value!r} is the deployer's own part of a release")
    return normal


#: Directories that hold other things than one app's deploys: a code root may be
#: inside one of them (/srv/app, /var/www/app), never one of them itself.
_SHARED_DIRECTORIES = {
    "/usr/local", "/usr/share", "/var/lib", "/var/log", "/var/tmp",
    "/var/www", "/var/cache", "/var/opt", "/var/spool", "/var/mail", "/opt/local",
}
#: System directories nothing of a deploy belongs in, at any depth.
_SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run", "/sbin",
                 "/sys", "/usr/bin", "/usr/lib", "/usr/sbin")
_HOME_PARENTS = ("home", "Users")


def own_directory(code_root):
    """`code_root`, if it is a directory the deployer may fill on its own (releases/,
    shared/, current, log/): not /, a top-level or shared system directory, a user's
    home or a dot-directory in it (~/.ssh), and without `..`. ValueError otherwise."""
    parts = code_root.split("/")
    if ".." in parts:
        raise ValueError(f"{code_root!r} must not contain '..'")
    normal = posixpath.normpath(code_root.replace("~", "/~", 1) if code_root.startswith("~") else code_root)
    words = [word for word in normal.split("/") if word]
    in_home = (words[1:] if words[:1] == ["~"] else
               words[2:] if len(words) >= 2 and words[0] in _HOME_PARENTS else
               words[1:] if words[:1] == ["root"] else None)
    shared = (len(words) <= 1 or normal in _SHARED_DIRECTORIES
              or any(normal == tree or normal.startswith(tree + "/") for tree in _SYSTEM_TREES))
    if shared or in_home == [] or (in_home and in_home[0].startswith(".")):
        raise ValueError(
            f"{code_root!r} is not a directory of its own (a system directory, a home, or a "
            "directory other programs use): name one for this app, e.g. ~/www/<app> or /srv/<app>")
    return code_root

"""Credentials for fetching code and packages, kept off every command line.

Runs on: all roles, and on the controller. A token in `app.repo`
(`https://user:TOKEN@host/app.git`) or a password in an index URL of `pip_args`
would show in every host's process list (`ps`) if git or pip got it as an
argument, and a clone keeps its URL in its config (mode 0644). So git gets the
repository URL without its user part (`public_url`) and the credentials from a
credential helper that reads them from its environment; pip and uv get the index
URLs without credentials and read those from a netrc file that NETRC names.
They reach a host in `<code_root>/.deploy-credentials` (sh variables) and
`<code_root>/.deploy-netrc`, of mode 0600, sent over SFTP by `upload` and
rewritten at each deploy; the steps that run git or pip load the variables into
their own environment (`load_line`). Only what a host still needs goes there:
git's credentials only when the hosts fetch the code themselves (`app.fetch:
hosts`); by default the controller fetches it and sends bundles, and the
repository's credentials never leave the controller.
"""
import os
import re
import shlex
import urllib.parse

from fab import secrets, shell
from fab.settings.build import FETCH_HOSTS

#: Variables the credential helper below reads.
GIT_USERNAME, GIT_PASSWORD = "FAB_GIT_USERNAME", "FAB_GIT_PASSWORD"

# Answers git's `get` with the variables; ignores `store` and `erase`. The empty
# helper first drops the host's own helpers, so none of them stores the token.
_HELPER = ('!f() { if [ "$1" = get ]; then printf "username=%s\\npassword=%s\\n" '
           f'"${GIT_USERNAME}" "${GIT_PASSWORD}"; fi; }}; f')
GIT_HELPER_OPTIONS = ("-c", "credential.helper=", "-c", f"credential.helper={_HELPER}")

def split_url(url):
    """(the URL without its credentials, user, password) when `url` carries a secret
    (a password, or a token as an http(s) user); else (url, None, None)."""
    if not secrets.credentials_in(url):
        return url, None, None
    parts = urllib.parse.urlsplit(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    public = urllib.parse.urlunsplit(parts._replace(netloc=host))
    return public, urllib.parse.unquote(user), urllib.parse.unquote(password)


def public_url(url):
    """`url` as it may go on a command line or into a config file."""
    return split_url(url)[0]


def git_environment(repo):
    """{variable: value} the credential helper needs for `repo` ({} if it has no credentials)."""
    _, user, password = split_url(repo)
    return {} if user is None else {GIT_USERNAME: user, GIT_PASSWORD: password}


def git_options(repo):
    """git's options that make it ask the helper (none if `repo` has no credentials)."""
    return GIT_HELPER_OPTIONS if git_environment(repo) else ()


def controller_git(repo):
    """(the start of a git command line, its environment) for git run on the controller
    against `repo`: credentials from the helper, never a prompt."""
    return ["git", *git_options(repo)], {**os.environ, "GIT_TERMINAL_PROMPT": "0", **git_environment(repo)}


def split_pip_args(pip_args):
    """(the pip arguments with every URL's credentials taken out, {host: (user,
    password)} of those credentials). pip and uv read these from a netrc file: pip
    passes its index URLs on to the pip it runs to build an sdist, on its command
    line, so the credentials must not be part of them. ValueError if two URLs on one
    host carry different credentials (a netrc file tells hosts apart, not paths) or
    a credential holds a space or a quote (netrc cannot write it)."""
    public, logins = [], {}
    for arg in map(str, pip_args):
        match = _URL.search(arg)
        if match and secrets.credentials_in(match.group(0)):
            url, user, password = split_url(match.group(0))
            host = urllib.parse.urlsplit(url).hostname or ""
            if any(char in user + password for char in " \t\n\"'"):
                raise ValueError(f"the credentials of {secrets.mask_url(match.group(0))} hold a space or a quote, "
                                 "which a netrc file cannot hold")
            if logins.get(host, (user, password)) != (user, password):
                raise ValueError(f"two URLs on {host} carry different credentials")
            logins[host] = (user, password)
            arg = arg[:match.start()] + url + arg[match.end():]
        if secrets.credentials_in(arg):
            raise ValueError("give each URL with credentials as an argument of its own")
        public.append(arg)
    return public, logins


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")


def netrc_text(logins):
    """A netrc file's text for {host: (user, password)}."""
    return "".join(f"machine {host} login {user} password {password or chr(34) * 2}\n"
                   for host, (user, password) in sorted(logins.items()))


def hosts_git_environment(env):
    """git_environment of what the hosts' git needs: the repository's credentials when
    the hosts fetch it themselves (app.fetch: hosts), none when the controller does."""
    return git_environment(env.app.repo) if env.app.fetch == FETCH_HOSTS else {}


def needed_on(host):
    """Whether `host` needs credentials to fetch the code or the packages."""
    return bool(hosts_git_environment(host.env) or index_logins(host))


def index_logins(host):
    """{index host: (user, password)} the pip of `host` needs: none where wheels are
    built once (a builder host gets its own, for its build only: fab.operations.wheels)
    or where it runs no app code (it installs no packages)."""
    logins = split_pip_args(host.env.pip_args)[1]
    return logins if (logins and host.env.wheels.build == "each_host"
                      and host.env.topology.runs_app(host.name)) else {}


def variables_text(host):
    """`host`'s variables file: one KEY='value' line each, safe to source from sh."""
    values = dict(hosts_git_environment(host.env))
    if index_logins(host):
        values["NETRC"] = host.paths.netrc_file
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in sorted(values.items()))


def load_line(host):
    """Shell for a step that runs git or pip: export the credentials' variables into
    its own environment; remove the files an earlier deploy left that the host needs
    no more (all of them without credentials, the netrc where it installs no packages)."""
    paths = host.paths
    load = needed_on(host)
    kept = {paths.credentials_file} if load else set()
    kept |= {paths.netrc_file} if index_logins(host) else set()
    stale = [f for f in (paths.credentials_file, paths.netrc_file) if f not in kept]
    lines = [f"set -a; . {shell.quote(paths.credentials_file)}; set +a"] if load else []
    if stale:
        files = " ".join(shell.quote(f) for f in stale)
        lines.append(f"for fab_stale in {files}; do if [ -e \"$fab_stale\" ]; then rm -f \"$fab_stale\"; fi; done")
    return "\n".join(lines)


def upload(host):
    """Put the credentials on the host: files of mode 0600, written over SFTP."""
    from fab.operations.shared import write_private

    write_private(host, host.paths.credentials_file, variables_text(host))
    logins = index_logins(host)
    if logins:
        write_private(host, host.paths.netrc_file, netrc_text(logins))
    return "credentials for git and pip in files of mode 0600"

"""Credentials for fetching code and packages, kept off every command line.

Runs on: all roles, and on the controller. A token in `app.repo`
(`https://user:TOKEN@host/app.git`) or a password in an index URL of `pip_args`
would show in every host's process list (`ps`) if git or pip got it as an
argument, and a clone keeps its URL in its config (mode 0644). So git gets the
repository URL without its user part (`public_url`) and the credentials from a
credential helper that reads them from its environment; pip and uv get the index
options that carry credentials as environment variables (PIP_INDEX_URL, ...).
Those variables reach a host in one file, `<code_root>/.deploy-credentials`
(mode 0600, sent over SFTP by `upload`, rewritten at each deploy), which the
steps that run git or pip load into their own environment (`load_line`).
"""
import posixpath
import shlex
import urllib.parse

from fab import secrets, shell

#: Variables the credential helper below reads.
GIT_USERNAME, GIT_PASSWORD = "FAB_GIT_USERNAME", "FAB_GIT_PASSWORD"

# Answers git's `get` with the variables; ignores `store` and `erase`. The empty
# helper first drops the host's own helpers, so none of them stores the token.
_HELPER = ('!f() { if [ "$1" = get ]; then printf "username=%s\\npassword=%s\\n" '
           f'"${GIT_USERNAME}" "${GIT_PASSWORD}"; fi; }}; f')
GIT_HELPER_OPTIONS = ("-c", "credential.helper=", "-c", f"credential.helper={_HELPER}")

#: pip's options that take a URL: {option: (its short form, pip's variable, uv's variable, uv's separator)}.
_PIP_URL_OPTIONS = {
    "--index-url": ("-i", "PIP_INDEX_URL", "UV_INDEX_URL", " "),
    "--extra-index-url": (None, "PIP_EXTRA_INDEX_URL", "UV_EXTRA_INDEX_URL", " "),
    "--find-links": ("-f", "PIP_FIND_LINKS", "UV_FIND_LINKS", ","),
}


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


def split_pip_args(pip_args):
    """(the pip arguments that may go on a command line, {variable: value} for the
    rest): each URL option of a kind (`--index-url`, `--extra-index-url`,
    `--find-links`) of which one value carries credentials becomes pip's and uv's
    variable for it. ValueError if a credential is left in some other argument."""
    found = []  # (index of the option, how many arguments, option, value)
    index = 0
    while index < len(pip_args):
        arg = str(pip_args[index])
        for option, (short, *_) in _PIP_URL_OPTIONS.items():
            if arg == option or (short and arg == short):
                if index + 1 < len(pip_args):
                    found.append((index, 2, option, str(pip_args[index + 1])))
                    index += 1
                break
            if arg.startswith(option + "="):
                found.append((index, 1, option, arg[len(option) + 1:]))
                break
            if short and arg.startswith(short) and len(arg) > len(short) and not arg.startswith("--"):
                found.append((index, 1, option, arg[len(short):]))
                break
        index += 1
    hidden = {option for _, _, option, value in found if secrets.credentials_in(value)}
    environment, dropped = {}, set()
    for start, count, option, value in found:
        if option in hidden:
            dropped.update(range(start, start + count))
            _, pip_variable, uv_variable, separator = _PIP_URL_OPTIONS[option]
            several = option != "--index-url"
            environment[pip_variable] = (f"{environment[pip_variable]} {value}"
                                         if several and pip_variable in environment else value)
            environment[uv_variable] = (f"{environment[uv_variable]}{separator}{value}"
                                        if several and uv_variable in environment else value)
    public = [str(arg) for position, arg in enumerate(pip_args) if position not in dropped]
    if any(secrets.credentials_in(arg) for arg in public):
        raise ValueError("a URL with a password or token is allowed only as the value of "
                         "--index-url (-i), --extra-index-url or --find-links (-f)")
    return public, environment


def file_text(env):
    """The host's credentials file: one KEY='value' line each, safe to source from sh."""
    values = {**git_environment(env.app.repo), **split_pip_args(env.pip_args)[1]}
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in sorted(values.items()))


def needed(env):
    """Whether the hosts need credentials to fetch the code or the packages."""
    return bool(file_text(env))


def path(paths):
    return posixpath.join(paths.code_root, ".deploy-credentials")


def load_line(host):
    """Shell for a step that runs git or pip: export the credentials into its own
    environment; without credentials, remove a file an earlier deploy left."""
    where = shell.quote(path(host.paths))
    if needed(host.env):
        return f"set -a; . {where}; set +a"
    return f"if [ -e {where} ]; then rm -f {where}; fi"


def upload(host):
    """Put the credentials on the host (mode 0600, over SFTP)."""
    from fab.operations.shared import write_private

    write_private(host, path(host.paths), file_text(host.env))
    return "credentials for git and pip in a 0600 file"

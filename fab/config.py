"""Environment files (`<deploy folder>/environments/<env>.yml`): finding, loading, validating.

A deploy folder holds `environments/*.yml` and `templates/` (and whatever local
files its environments name: secrets, shared files). An application keeps its
own (`deploy/` in its repository, or DEPLOY_DIR); the deployer ships one too
(`fab/builtin`: the stock templates and the `sandbox` environment). Every
setting, template and local file is checked on load, before any host is
touched; an invalid one is one line naming the file and the field. The
settings themselves (the schema) are `fab.settings`.
"""
import os
import re

import yaml
from pydantic import ValidationError

from fab import notify, secrets, templates
from fab.errors import ConfigError
from fab.folders import available_environments, deploy_folder, find_environment
from fab.operations import credentials
from fab.settings import Environment


def load_environment(name, directory=None):
    """Read and validate environment `name` (from `directory`, or the first folder of
    `fab.precedence.environment_dirs` that has it) and every local file it names;
    ConfigError in one line otherwise."""
    path = find_environment(name, directory)
    if path is None:
        known = ", ".join(available_environments(directory)) or "none"
        raise ConfigError(f"unknown environment {name!r} (environments: {known})")
    shown = os.path.relpath(path) if os.path.abspath(path).startswith(os.getcwd() + os.sep) else path
    try:
        with open(path) as handle:
            text = handle.read(MAX_FILE_BYTES + 1)
        if len(text) > MAX_FILE_BYTES:
            raise ConfigError(f"{shown}: larger than {MAX_FILE_BYTES} bytes")
        data = yaml.safe_load(text)
    except UnicodeDecodeError as error:
        raise ConfigError(f"{shown}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{shown}:{where} not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{shown}: expected a mapping of settings at the top level")
    for derived in ("name", "folder"):
        if derived in data:
            raise ConfigError(f"{shown}: {derived}: unknown setting (the file's name and place give it)")
    data = {**data, "name": name, "folder": deploy_folder(os.path.dirname(path))}
    try:
        check_values(data)
        env = Environment.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{shown}: {describe_validation_error(error)}") from None
    except ValueError as error:
        raise ConfigError(f"{shown}: {error}") from None
    try:
        # pip echoes its index URLs (and their passwords or tokens) in its errors.
        register_credentials(env)
        check_local_files(env)
        env._secret_values.update(read_secrets(env))
    except ValueError as error:
        raise ConfigError(f"{shown}: {error}") from None
    return env


#: Bounds on what an environment file may hold, checked before its settings are read.
MAX_FILE_BYTES = 1 << 20
MAX_STRING = 4096
MAX_ITEMS = 10_000  # in one list or mapping (a role's hosts)
MAX_VALUES = 100_000  # in the whole file (YAML aliases may repeat a value many times)
MAX_NUMBER = 10**9  # seconds, counts, days: a larger number is a mistake or an overflow
#: Control characters (tab excepted): in a value rendered into a config file, a newline
#: starts a line of its own (an `environment` value overrode the supervisor `command=`).
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
#: Settings that are shell script text run as a whole (never rendered into a config
#: line): these may span lines, as a YAML `|` block does.
_SCRIPT_SETTING = re.compile(
    r"(build_commands|checks|hooks\.\w+|predeploy\.commands)\.\d+|migrate\.command|services\.[^.]+\.(before|after)")
_SCRIPT_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def check_values(data):
    """Every string, number, list and mapping in the environment file's `data` is
    within bounds and no string holds a control character; ValueError naming the
    setting otherwise."""
    counted = 0

    def check(value, where):
        nonlocal counted
        counted += 1
        if counted > MAX_VALUES:
            raise ValueError(f"more than {MAX_VALUES} values (YAML aliases repeating a value count each time)")
        if isinstance(value, str):
            if len(value) > MAX_STRING:
                raise ValueError(f"{where}: longer than {MAX_STRING} characters")
            control = (_SCRIPT_CONTROL if _SCRIPT_SETTING.fullmatch(where) else _CONTROL).search(value)
            if control:
                hint = "; write it on one line (in YAML, `>-` folds lines into one)" if control.group() in "\r\n" else ""
                raise ValueError(f"{where}: contains a control character ({control.group()!r}){hint}")
        elif isinstance(value, bool) or value is None:
            pass
        elif isinstance(value, (int, float)):
            if not -MAX_NUMBER <= value <= MAX_NUMBER:  # False for nan
                raise ValueError(f"{where}: {value!r} is out of range (at most {MAX_NUMBER})")
        elif isinstance(value, (list, dict)):
            if len(value) > MAX_ITEMS:
                raise ValueError(f"{where}: more than {MAX_ITEMS} entries")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(value, dict):
                    check(key, f"{where}.{key!r}" if where else repr(key))  # before it names a setting
                check(item, f"{where}.{key}" if where else str(key))

    check(data, "")


def register_credentials(env):
    """Mask the credentials of the repository's and the pip arguments' URLs, and the
    webhooks' URLs (fab.notify.url_secrets), in all output (ValueError naming the
    setting if one is too short to mask)."""
    for setting, values in (("app.repo", [env.app.repo]), ("pip_args", env.pip_args)):
        try:
            secrets.register_credentials_in(values)
        except secrets.SecretTooShort as error:
            raise ValueError(f"{setting}: a URL's password or token is {error}") from None
    for number, webhook in enumerate(env.notify):
        try:
            for secret in notify.url_secrets(webhook.url):
                secrets.register(secret)
        except secrets.SecretTooShort as error:
            raise ValueError(f"notify.{number}.url: a URL's password or token is {error}") from None
    try:
        credentials.split_pip_args(env.pip_args)
    except ValueError as error:
        raise ValueError(f"pip_args: {error}") from None


def check_local_files(env):
    """Every local file and template the environment names exists and is usable
    (ValueError naming the setting otherwise)."""
    if env.ssh_config and not os.path.isfile(env.ssh_config_path()):
        raise ValueError(f"ssh_config file {env.ssh_config_path()} does not exist")
    if env.shared_files_from and not os.path.isdir(env.local_path(env.shared_files_from)):
        raise ValueError(f"shared_files_from: {env.local_path(env.shared_files_from)} is not a folder")
    for name, service in env.services.items():
        if service.template:
            problem = templates.check(env.template_dirs, service.template,
                                      templates.sample_service_context(env, name, service))
            if problem:
                raise ValueError(f"services.{name}.template: {problem}")


def read_secrets(env):
    """{name: value} from the secrets file and the deployer's environment, each value
    registered so that no output ever shows it."""
    if env.secrets is None:
        return {}
    values = {}
    if env.secrets.file:
        path = env.local_path(env.secrets.file)
        try:
            with open(path) as handle:
                values.update(secrets.parse_env_file(handle.read()))
        except OSError as error:
            raise ValueError(f"secrets.file: cannot read {path}: {error.strerror}") from None
        except ValueError as error:
            raise ValueError(f"secrets.file: {path}: {error}") from None
    missing = [name for name in env.secrets.environment if name not in os.environ]
    if missing:
        raise ValueError(f"secrets.environment: {', '.join(missing)} not set in the deployer's environment")
    values.update({name: os.environ[name] for name in env.secrets.environment})
    for name, value in values.items():
        try:
            secrets.register(value)
        except secrets.SecretTooShort as error:
            raise ValueError(f"secret {name} is {error}") from None
    return values


def describe_validation_error(error):
    """Pydantic's errors as one line: `field.path: message; ...`. A setting that may
    take one of several kinds (`workers: 2` or `auto`) gets one message, not one per kind."""
    parts, alternatives = [], {}
    for item in error.errors():
        loc = [str(p) for p in item["loc"]]
        message = item["msg"]
        if loc and _UNION_MEMBER.match(loc[-1]) and message.startswith("Input should be "):
            key = ".".join(loc[:-1]) or "(top level)"
            if key not in alternatives:
                alternatives[key] = ([], item.get("input"))
                parts.append(key)
            alternatives[key][0].append(message[len("Input should be "):].split(", ")[0])
            continue
        if item["type"] == "extra_forbidden":
            message = "unknown setting"
        elif message.startswith("Value error, "):
            message = message[len("Value error, "):]
        parts.append(f"{'.'.join(loc) or '(top level)'}: {message}")
    return "; ".join(
        f"{part}: should be {' or '.join(alternatives[part][0])} (got {alternatives[part][1]!r})"
        if part in alternatives else part for part in parts)


#: How pydantic names the kind of a Union's member in an error's location.
_UNION_MEMBER = re.compile(r"^(int|str|float|bool|(list|dict|literal)\[.*\])$")

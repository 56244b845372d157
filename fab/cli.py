"""Fabric-1 style task arguments (`deploy:resume=yes`, `rollback:2026-01-01_00.00.00`).

Fabric 3 (invoke) only knows `task --flag value`. `translate` rewrites the
Fabric-1 spelling into that before invoke parses the task list, and checks every
task name and typed value on the way, so a typo is one line, not a traceback.
Both spellings may be mixed on one command line. What invoke's parser would
refuse (a missing required argument, a flag without its value, an unknown option)
is refused here first, as our own error: a `--json` run then still prints its JSON.
"""
import inspect
import re

from fab.errors import UsageError

_TRUE = {"yes", "y", "true", "t", "on", "1"}
_FALSE = {"no", "n", "false", "f", "off", "0"}


#: The default of a parameter that has none: the task requires it (invoke: a positional argument).
REQUIRED = inspect.Parameter.empty


def flag_name(param):
    return "--" + param.replace("_", "-")


def inverse_flag_name(param):
    return "--no-" + param.replace("_", "-")


def task_flags(params):
    """The flags invoke knows for a task of `params`: one per parameter, and `--no-x`
    for a flag that is set by default."""
    return {flag_name(p) for p, _ in params} | {inverse_flag_name(p) for p, default in params if default is True}


def split_fabric1_args(text):
    """`a,b=c\\,d` -> ['a', 'b=c,d']: commas separate, a backslash escapes one."""
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


#: Fabric's own options that choose hosts, keys, timeouts or a dry run. This deployer
#: reads all of that from the environment file and would silently ignore them, or (-H)
#: run every task once per host: each is refused before any task runs.
FABRIC_OPTIONS_REFUSED = {
    "hosts": ("-H/--hosts", "runs the whole task once per host given; the hosts come from the "
                            "environment file: limit a task with `deploy:hosts=web1,web2` (hosts or roles)"),
    "dry": ("-R/--dry", "is no dry run here: `deploy:plan=yes` (also rollback) shows what a task would do"),
    "identity": ("-i/--identity", "is not used: keys and users come from the environment's ssh_config"),
    "ssh_config": ("-S/--ssh-config", "is not used: set ssh_config in the environment file"),
    "connect_timeout": ("-t/--connect-timeout", "is not used: set ConnectTimeout in the environment's ssh_config"),
    "command_timeout": ("-T/--command-timeout", "is not used: each step has its own timeout"),
    "prompt_for_login_password": ("--prompt-for-login-password", "is not used: hosts are reached with keys"),
    "prompt_for_passphrase": ("--prompt-for-passphrase", "is not used: load the key into ssh-agent"),
    "prompt_for_sudo_password": ("--prompt-for-sudo-password", "is not used: nothing runs with sudo"),
}


def refuse_fabric_options(given):
    """UsageError for the first of Fabric's own options in `given` (their names) that
    this deployer does not honour (see FABRIC_OPTIONS_REFUSED)."""
    for name, (flag, why) in FABRIC_OPTIONS_REFUSED.items():
        if name in given:
            raise UsageError(f"fab {flag} {why}")


def parse_bool(task, param, value):
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise UsageError(f"{task}: {param} must be yes or no, got {value!r}")


#: The largest whole number a task takes (days, a limit, an operation id): what a
#: database integer holds; a larger one is a typo, not a wish.
MAX_WHOLE_NUMBER = 2**31 - 1


def check_value(task, param, default, value):
    """Reject a value invoke would choke on (an int parameter given 'abc' or 10**30)."""
    if isinstance(default, int) and not isinstance(default, bool):
        if not whole_number(value):
            raise UsageError(
                f"{task}: {param} must be a whole number from 0 to {MAX_WHOLE_NUMBER}, got {value!r}"
            )
    return value


def whole_number(text, most=MAX_WHOLE_NUMBER):
    """Whether `text` is a whole number from 0 to `most`, in ASCII digits."""
    text = str(text).strip()
    return bool(re.fullmatch(r"[0-9]{1,12}", text)) and int(text) <= most


HELP = ("-h", "--help")


def help_asked(argv, tasks, spell=str):
    """The task whose help `argv` asks for (`fab prod manage -h`), or None.

    Asked for after a task, help must be read before invoke parses the tasks: it
    would take `-h` as the value of a task's missing positional argument (`manage -h`
    ran a management command "-h").
    """
    task = None
    for token in argv:
        if token in HELP and task is not None:
            return spell(task)
        name = token.partition(":")[0]
        if name in tasks:
            task = name
    return None


def named(argv, environments):
    """(environment, task, json asked) as the raw command line `argv` names them, as far
    as it can be read: to report an error found before the task runs in the form it asked."""
    environment, task, json = "", "", False
    for token in argv:
        if token == "--json":
            json = True
        if token.startswith("-"):
            continue
        name, _, arg_text = token.partition(":")
        if name in environments and not environment and not task:
            environment = name
        elif not task:
            task = name
        for part in split_fabric1_args(arg_text) if arg_text else ():
            key, eq, value = part.partition("=")
            if key == "json" and (not eq or value.strip().lower() in _TRUE):
                json = True
    return environment, task, json


def translate(argv, tasks, environments=(), spell=str, core_flags=None):
    """Rewrite `argv` (the tokens after the core flags) into invoke's spelling.

    `tasks` maps each task name to its parameters as (name, default) pairs, in
    order; a bool default makes a flag, REQUIRED a parameter that must be given.
    `environments` only improves the message for an unknown name. `spell` gives a
    task name as invoke's collection knows it (an environment `prod-eu` is its
    task `prod_eu` there). `core_flags`: fab's own flags (None: not checked); one
    left before the first task is one invoke's core parse did not know.
    """
    out = []
    current = None  # the task whose flags we are reading
    given = set()  # the parameters of `current` given so far
    tokens = list(argv)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token.startswith("-"):
            if current is None:
                if core_flags is not None and token.partition("=")[0] not in core_flags:
                    raise UsageError(f"unknown option {token} (`fab --help` lists fab's own options)")
                out.append(token)
                continue
            param, consumed = _native_flag(current, tasks[current], token, tokens, index)
            if param in given and not isinstance(dict(tasks[current])[param], bool):  # invoke: 'No idea what...'
                raise UsageError(f"{current}: {param} given twice")
            given.update([param] if param else [])
            out.extend(tokens[index - 1 : index + consumed])
            index += consumed
            continue
        name, sep, arg_text = token.partition(":")
        if name not in tasks:
            raise UsageError(_unknown(name, tasks, environments))
        _require(current, tasks, given)
        current, given = name, set()
        out.append(spell(name))
        if sep:
            flags, named = _fabric1_flags(name, tasks[name], arg_text)
            out.extend(flags)
            given.update(named)
    _require(current, tasks, given)
    return out


def _require(task, tasks, given):
    """UsageError if `task` (None: no task yet) lacks a required parameter (not in `given`)."""
    for param, default in tasks.get(task, ()) if task else ():
        if default is REQUIRED and param not in given:
            raise UsageError(f'{task}: {param} is required ({task}:"<{param}>" or {task} {flag_name(param)} '
                             f'"<{param}>")')


def _native_flag(task, params, token, tokens, index):
    """Check one `--flag[=value]` of `task`; return (its parameter, None for help;
    how many value tokens follow it)."""
    defaults = dict(params)
    flag, eq, value = token.partition("=")
    for param, default in params:
        if flag == flag_name(param) or (default is True and flag == inverse_flag_name(param)):
            if isinstance(default, bool):
                if eq:
                    raise UsageError(f"{task}: {flag} takes no value")
                return param, 0
            if eq:
                check_value(task, param, defaults[param], value)
                return param, 0
            # Invoke takes a flag of the task's as the next flag, not as this one's value.
            if index >= len(tokens) or tokens[index] in task_flags(params):
                raise UsageError(f"{task}: {flag} needs a value")
            check_value(task, param, defaults[param], tokens[index])
            return param, 1
    if flag in HELP:
        return None, 0
    known = ", ".join(flag_name(p) for p, _ in params) or "none"
    raise UsageError(f"{task}: unknown option {flag} (options: {known})")


def _fabric1_flags(task, params, arg_text):
    """(invoke's flags for `task:arg_text`, the parameters it gives)."""
    if not params:
        raise UsageError(f"{task} takes no arguments")
    defaults = dict(params)
    given = {}
    positional = []
    for part in split_fabric1_args(arg_text):
        key, eq, value = part.partition("=")
        if not eq and isinstance(defaults.get(key), bool):
            eq, value = "=", "yes"  # a flag named alone (`deploy:plan`) is set
        if eq and key in defaults:
            if key in given:
                raise UsageError(f"{task}: {key} given twice")
            given[key] = value
        elif eq and key.isidentifier():
            known = ", ".join(p for p, _ in params)
            raise UsageError(f"{task}: unknown argument {key!r} (arguments: {known})")
        else:
            positional.append(part)
    free = [p for p, _ in params if p not in given]
    if len(positional) > len(free):
        raise UsageError(f"{task}: too many arguments: {','.join(positional)}")
    given.update(zip(free, positional))
    flags = []
    for param, value in given.items():
        default = defaults[param]
        if isinstance(default, bool):
            wanted = parse_bool(task, param, value)
            if wanted != default:
                flags.append(flag_name(param) if wanted else inverse_flag_name(param))
        else:
            flags.append(f"{flag_name(param)}={check_value(task, param, default, value)}")
    return flags, set(given)


def _unknown(name, tasks, environments):
    envs = ", ".join(sorted(environments)) or "none"
    if not name:
        return "empty task name"
    return (
        f"unknown task or environment {name!r} "
        f"(environments: {envs}; `fab -l` lists the tasks)"
    )

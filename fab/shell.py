"""Building remote shell commands: the one place that quotes.

Every value that reaches a remote shell goes through `quote` (directly, via
`command`, or as an argument of a script in fab/remote/). Paths may start with
`~/`, which is kept expandable by the remote shell.
"""
import functools
import os
import re
import shlex

REMOTE_SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "remote")


def quote(value):
    """Quote one argument for a POSIX shell, keeping a leading `~/` expandable."""
    value = str(value)
    if value == "~":
        return '"$HOME"'
    if value.startswith("~/"):
        return '"$HOME"/' + shlex.quote(value[2:])
    return shlex.quote(value)


def command(*args):
    """One shell command from separate arguments, each quoted."""
    return " ".join(quote(arg) for arg in args)


def script(*lines):
    """Several commands run as one remote round trip, stopping at the first failure."""
    return "set -e\n" + "\n".join(line for line in lines if line)


@functools.lru_cache(maxsize=None)
def remote_script(name):
    """The text of fab/remote/<name> (`.sh` unless named): a script that takes its
    values as arguments, with the text of each script it includes (a line
    `#@include <file>`: functions it calls) in its place. A shell script's opening
    comments (what it takes and prints, for its readers here: a third of its bytes)
    are left out, since every command carries the text of its scripts to every host."""
    file_name = name if "." in name else f"{name}.sh"
    with open(os.path.join(REMOTE_SCRIPTS, file_name)) as handle:
        text = handle.read()
    if not file_name.endswith(".sh"):
        return text
    return _INCLUDE.sub(lambda line: remote_script(line[1]), _without_opening_comments(text))


#: A line that puts another remote script's text (its functions) in its place.
_INCLUDE = re.compile(r"^#@include ([a-z_]+\.sh)\n", re.MULTILINE)


def _without_opening_comments(text):
    """`text` from its first line that is neither blank nor a comment, an `#@include`
    line counting as code (no string or here-document can be open before it)."""
    lines = text.splitlines(keepends=True)
    first = next((i for i, line in enumerate(lines) if line.startswith("#@include ")
                  or line.strip() and not line.lstrip().startswith("#")), len(lines))
    return "".join(lines[first:])


def script_command(name, *args):
    """The one-line command that runs fab/remote/<name>.sh with `args` as $1..."""
    return " ".join([_running(name), *(quote(arg) for arg in args)])


@functools.lru_cache(maxsize=None)
def _running(name):
    """`bash -c '<the script>' <name>`, quoted once: every host's steps carry it."""
    return command("bash", "-c", remote_script(name), name)


def step_script(name, *args):
    """A step's last command: fab/remote/<name>.sh run in the step's own shell (a
    subshell of fab/remote/batch.sh) with `args` as $1..., as a fresh bash would
    start it (errexit off), but without starting one: a bash costs a host about
    2 ms, and each host runs several per deploy. The step's shell is not fresh:
    a script assigns every variable it reads (batch.sh's own are named fab_*)."""
    return with_arguments(remote_script(name), args)


def with_arguments(text, args=()):
    """Shell that runs script `text` with `args` as $1... in the shell it is given to
    (errexit off, as in a fresh bash), each argument one quoted word."""
    return f"set +e -- {command(*args)}\n{text}"


@functools.lru_cache(maxsize=None)
def printed_at_end(text):
    """Script `text`, its stdout held until it ends and then printed at once (its exit
    status kept), for a command whose output nobody watches as it comes (a read).
    Each write a host's command makes apart from the others reaches the controller as
    a packet that wakes two of its threads, one per host: the state read made ten or
    so, its programs printing in turn."""
    return (f"fab_printed=$(\n{text}\n)\nfab_status=$?\n"
            '[ -z "$fab_printed" ] || printf \'%s\\n\' "$fab_printed"\nexit "$fab_status"\n')


def step_command(text, args=()):
    """The command that runs script `text` with `args` ($1...) as one step on a host.

    The script and each argument travel as separate quoted words, so no value is
    ever parsed as shell; fab/remote/step.sh makes the step die with its connection.
    """
    return command("bash", "-c", remote_script("step"), "fab", text, *args)


def write_file(path, content, mode=None):
    """Commands that write `content` to `path` atomically (temp file, then rename).

    The content travels as one quoted word written by the shell's own printf, so
    no byte of it is ever parsed by the shell and no process is started for it.
    """
    temp = f"{path}.tmp.$$"
    lines = [f"printf %s {quote(content)} > {quote_with_pid(temp)}"]
    if mode is not None:
        lines.append(f"chmod {mode:o} {quote_with_pid(temp)}")
    lines.append(f"mv -f {quote_with_pid(temp)} {quote(path)}")
    return "\n".join(lines)


def quote_with_pid(path_with_pid):
    """Quote a path that ends in the shell's `$$` (a per-process temporary name)."""
    base = path_with_pid[: -len("$$")]
    return quote(base) + "$$"

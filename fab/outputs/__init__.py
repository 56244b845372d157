"""Which outputs a task gets, chosen once per task from the environment and the command line.

People at a terminal get the live view; CI, pipes and anyone who asks get plain
lines; a JSON summary is added on request. Every output is a subscriber of the
event stream (`fab.events`) and never knows how events came about.

    FAB_OUTPUT=auto|live|plain   auto (default): live at a terminal unless CI is set
                                 or TERM=dumb; live forces it on (even into a pipe)
    FAB_JSON=1|<path>            a JSON summary to stdout (1, yes, -) or to a file;
                                 `json=yes` on any task asks for stdout
    FAB_COLOR=auto|always|never  colour codes: auto lets rich decide (terminal,
                                 FORCE_COLOR, NO_COLOR)

Which of these wins is decided in fab.precedence.outputs.
"""
import contextlib
import os
import sys

from rich.console import Console

from fab import precedence
from fab.errors import UsageError
from fab.outputs.live import LiveView
from fab.outputs.plain import PlainLines, plain_console
from fab.outputs.summary import JsonSummary
from fab.precedence import LIVE, STDOUT


def subscribers(choice, stdout, stderr):
    """The output subscribers for `choice`, writing to the given streams."""
    people_file = stderr if choice.people_on_stderr else stdout
    if choice.people == LIVE:
        console = Console(file=people_file, force_terminal=True if choice.forced_live or choice.color else None,
                          no_color=choice.color is False, highlight=False)
        outputs = [LiveView(console)]
    else:
        outputs = [PlainLines(plain_console(people_file, choice.color))]
    if choice.json:
        outputs.append(JsonSummary(stdout if choice.json == STDOUT else choice.json))
    return outputs


def attach(stream, json_requested=False, environ=None):
    """Subscribe one task's outputs to `stream`; returns an ExitStack that detaches them.

    With the JSON summary on stdout, everything else that would print to stdout
    (the people's output, a task's own prints) goes to stderr meanwhile, so
    stdout holds the JSON document and nothing else. A bad setting raises
    UsageError before anything is subscribed.
    """
    environ = os.environ if environ is None else environ
    stdout, stderr = sys.stdout, sys.stderr
    choice = precedence.outputs(environ, json_requested, _isatty(stdout), _isatty(stderr))
    if choice.json not in (None, STDOUT):
        directory = os.path.dirname(os.path.abspath(choice.json))
        if not os.path.isdir(directory):
            raise UsageError(f"FAB_JSON: directory {directory} does not exist")
    outputs = subscribers(choice, stdout, stderr)
    stack = contextlib.ExitStack()
    if choice.people_on_stderr:
        stack.enter_context(contextlib.redirect_stdout(stderr))
    for output in outputs:
        stream.subscribe(output)
        stack.callback(stream.unsubscribe, output)
        stack.callback(output.close)
    return stack


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False

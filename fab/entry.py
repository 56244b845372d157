"""Setting up `fab`'s entry point for a fabfile's tasks: one task per environment
(`fab <env> <task>` selects it), each option's help (fab.options), Fabric-1 style
arguments (`task:a=b`) rewritten before invoke parses them, and a quick exit.
"""
import atexit
import gc
import os
import sys

from invoke import Collection, Task
from invoke.exceptions import ParseError

from fab import cli, options, runner
from fab.errors import DeployError, UsageError
from fab.folders import available_environments, find_environment, use_fabfile_dir
from fab.runner import select_environment, user_errors


def set_up(namespace, *task_modules):
    """Add the tasks of `task_modules` and an environment task per environment to a
    fabfile's `namespace` (its globals), rewrite the command line's Fabric-1
    arguments for its tasks, and return the names of its tasks (its `__all__`)."""
    # `fab` ends right after its tasks, and the interpreter's garbage collections at exit
    # walked every object fabric, paramiko, SQLAlchemy and pydantic made: about 0.2 s of
    # every run. Frozen, those objects are freed at exit all the same, without the walks.
    atexit.register(gc.freeze)
    fabfile_dir = loaded_fabfile_dir()
    if fabfile_dir is not None:
        collect_less_while_running()
    use_fabfile_dir(fabfile_dir)
    for module in task_modules:
        namespace.update((name, obj) for name, obj in vars(module).items() if isinstance(obj, Task))
    for name in available_environments():
        namespace[f"env_{name}"] = environment_task(name)
    for obj in namespace.values():
        if isinstance(obj, Task):  # `fab --help <task>` explains each option
            obj.help = options.help_for(obj.name, obj.argspec(obj.body).parameters, obj.help)
    translate_fabric1_arguments(namespace)
    return [name for name, obj in namespace.items() if isinstance(obj, Task)]


#: Allocations between two collections of the youngest objects (Python's default: 700).
YOUNGEST_COLLECTED_EVERY = 10_000


def collect_less_while_running():
    """The garbage collector's walks, fewer for a run of `fab`: the modules loaded so far
    (fabric, paramiko, pydantic, the tasks) live as long as the process, so they are set
    apart (gc.freeze), and the youngest objects are collected every YOUNGEST_COLLECTED_EVERY
    allocations. A deploy allocates some 1,500 objects per host (its connection, its
    packets, its events); each collection walks what survived the last ones, and the
    older ones whatever was not frozen: 0.8 ms of the controller's CPU per host before."""
    gc.freeze()
    gc.set_threshold(YOUNGEST_COLLECTED_EVERY, *gc.get_threshold()[1:])


def loaded_fabfile_dir():
    """The directory of the fabfile `fab` is loading (None: not run by `fab`). Invoke
    files it in sys.modules under its collection name before running it."""
    import fabric.main

    program = fabric.main.program
    if getattr(program, "core", None) is None:
        return None
    fabfile = sys.modules.get(program.config.tasks.collection_name or "fabfile")
    path = getattr(fabfile, "__file__", None)
    if not path:
        return None
    directory = os.path.dirname(os.path.abspath(path))
    # A fabfile package (fabfile/__init__.py) sits in the app's directory as a fabfile.py would.
    return os.path.dirname(directory) if os.path.basename(path) == "__init__.py" else directory


def environment_task(name):
    def select(c):
        select_environment(c, name)

    path = find_environment(name)
    shown = os.path.relpath(path) if path.startswith(os.getcwd() + os.sep) else path
    select.__doc__ = f"Select environment {name}.\n\nRead from {shown}."
    return Task(user_errors(select), name=name)


def translate_fabric1_arguments(namespace):
    """Rewrite `task:a=b` into invoke's `task --a=b` before invoke parses the tasks."""
    import fabric.main

    program = fabric.main.program
    core = getattr(program, "core", None)
    if core is None:  # imported outside `fab` (tests, tools): nothing to translate
        return
    # Task names as written (setup_release, not setup-release), whichever
    # directory the fabfile is in (no fabric.yaml needed beside it).
    program.config.tasks.auto_dash_names = False
    for obj in namespace.values():
        if isinstance(obj, Task):
            # Long flags only: invoke's automatic short flags gave `-h` to `--hosts` and
            # `--host`, taking it from help (and `task:a=b` has no short spelling anyway).
            obj.auto_shortflags = False
    tasks = {
        obj.name: [(p.name, p.default) for p in obj.argspec(obj.body).parameters.values()]
        for obj in namespace.values() if isinstance(obj, Task)
    }
    # Invoke files a task under its name with dashes made underscores (`prod-eu`, an
    # environment's file name, is its task `prod_eu`): the names people type go in so.
    spell = Collection(auto_dash_names=False).transform
    runner.command_line = runner.CommandLine(*cli.named(core.unparsed, available_environments()))
    try:
        cli.refuse_fabric_options({name.replace("-", "_") for arg in core[0].args.values() if arg.got_value
                                   for name in arg.names})
        asked = cli.help_asked(core.unparsed, tasks, spell)
        if asked:  # `fab --help=<task>`'s help, and nothing runs
            core[0].args.help.value, core.unparsed[:] = asked, []
            return
        core_flags = {*core[0].flags, *core[0].inverse_flags}
        core.unparsed[:] = cli.translate(core.unparsed, tasks, available_environments(), spell, core_flags)
    except DeployError as error:
        refuse(error)
    program.parse_tasks = refusing_parse_errors(program.parse_tasks)


def refusing_parse_errors(parse_tasks):
    """invoke's parse of the tasks, a ParseError of which (one `cli.translate` did not
    foresee) is refused as our errors are, rather than printed as invoke's plain text
    with no JSON for a `--json` run."""
    def parse():
        try:
            parse_tasks()
        except ParseError as error:
            refuse(UsageError(str(error)))

    return parse


def refuse(error):
    """End `fab` on `error`, found before any task ran: its JSON (if asked), one line, its exit code."""
    runner.refused_in_json(error)
    print(f"error: {error}", file=sys.stderr)
    sys.exit(error.exit_code)



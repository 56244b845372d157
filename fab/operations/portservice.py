"""Port-based service control, as pbdeploy does it: no pidfiles, no daemon.

Runs on: the hosts of the roles of services with `control: port`. A service is
running when something listens on its port; its pid is the pid on that port
(the process whose parent is not itself listening there, i.e. the master).
Start it if nothing listens, otherwise run its reload command (e.g. SIGHUP).
Safe to rerun. The shell is fab/remote/portservice.sh.
"""
from fab import shell
from fab.commands import expand, hook, service_variables
from fab.steps import Reporting

ROLES = "roles with port-controlled services"


def script(name):
    """The text of fab/remote/<name>.sh after service_functions.sh, whose functions
    (run_hook, pid_on_port, wait_for_listener) it calls."""
    return shell.remote_script("service_functions") + shell.remote_script(name)


def script_command(name, *args):
    """One line running fab/remote/<name>.sh (after service_functions.sh) with `args`."""
    return shell.command("bash", "-c", script(name), name, *args)


#: How portservice.sh's result line reads in a note.
_DID = {"started": "started pid {}", "reloaded": "reloaded pid {}",
        "running": "running as pid {} (no reload command)"}


def start_or_reload(host, service_name, service, timeout=30):
    """The command (a Reporting) that starts the service if nothing listens on its
    port, else reloads it; its note: "<service>: started pid N" (or reloaded...)."""
    variables = service_variables(host, service_name, service)
    command = script_command(
        "portservice", service_name, variables["current"], f"{variables['log']}/{variables['program']}.out",
        int(service.port), int(timeout), expand(service.start, variables),
        "daemonizes" if service.daemonizes else "", expand(service.reload, variables) if service.reload else "",
        hook(host, service_name, service, "before"), hook(host, service_name, service, "after"))

    def describe(line):
        did, _, pid = line.partition(" ")
        return f"{service_name}: {_DID[did].format(pid)}"

    return Reporting(command, describe)

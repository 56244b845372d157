"""Service configs rendered per host and release; supervisor programs applied and restarted.

Runs on: the hosts of the roles that have services. supervisord includes
`<code_root>/current/services/supervisor/*.conf`, so the swap of `current`
switches service definitions together with the code. Each program's config names
its release's absolute path: after a swap `update` restarts every program whose
release changed (no process keeps old code through a resolved symlink), and
removes programs that no longer exist.
"""
import posixpath
import re

from fab import shell, templates
from fab.commands import hook
from fab.hosts import RemoteCommandFailed
from fab.operations import portservice
from fab.operations.release import once
from fab.operations.state import config_digest
from fab.steps import Reporting

ROLES = "roles with services"

#: How `restart` treats programs: "changed" restarts only programs whose config
#: changed; "all" restarts every program (but those it is told to reload);
#: "graceful" sends SIGHUP instead of a restart to unchanged programs of services
#: with `restart: reload`.
RESTART_MODES = ("changed", "all", "graceful")


def render_service_configs(host, release_name):
    """{remote path: text} of every service config for this host (local, no round trip)."""
    env = host.env
    paths = host.paths
    facts = {"name": host.name, "address": host.address, "cpus": host.state.cpus}
    rendered = {}
    for service_name, service in env.topology.services_on(host.name).items():
        if not service.template:
            continue
        context = templates.service_context(env, paths, facts, service_name, service, release_name)
        path = paths.release_service_config(release_name, service.control, context["program"])
        rendered[path] = templates.render(env.template_dirs, service.template, **context)
    return rendered


def configs_by_program(host, release_name):
    """{program: config text} of every service config of the host in a release (local):
    supervisor programs and port services (fab/remote/state.sh digests the same files)."""
    return {posixpath.basename(path).removesuffix(".conf"): text
            for path, text in render_service_configs(host, release_name).items()}


def digests(configs):
    """{program: digest} of {program: config text}, as HostState.configs has them."""
    return {program: config_digest(text) for program, text in configs.items()}


def nothing_to_apply(recorded, rendered, recorded_ports, ports):
    """True if applying service configs changes nothing: on every host the configs
    rendered now ({host: {program: text}}) are those its current release has
    ({host: {program: digest}}, HostState.configs: same programs, same texts), and
    the release records the ports ({service: port}) they are rendered with."""
    return dict(recorded_ports) == ports and all(
        recorded.get(name) == digests(configs) for name, configs in rendered.items())


def renders_as_current(hosts, recorded_ports, ports):
    """True if rendering the service configs of `hosts` again for their current release
    (which records `recorded_ports`) with `ports` changes nothing (no round trip)."""
    return nothing_to_apply(
        {host.name: host.state.configs.get(host.state.current, {}) for host in hosts},
        {host.name: configs_by_program(host, host.state.current) for host in hosts},
        recorded_ports, ports)


def _write_configs_script(host, release_name):
    paths = host.paths
    rendered = render_service_configs(host, release_name)
    services_dir = paths.release_services(release_name).rsplit("/", 1)[0]
    dirs = sorted({path.rsplit("/", 1)[0] for path in rendered})
    return "\n".join([
        f"if [ -e {shell.quote(services_dir)} ]; then {shell.command('rm', '-rf', services_dir)}; fi",
        # A host with no service (a code-only one) gets no directory for them: a process less.
        *([shell.command("mkdir", "-p", paths.release_services(release_name), *dirs)] if rendered else []),
        *(shell.write_file(path, text) for path, text in rendered.items()),
        f"echo '{len(rendered)} service config(s) rendered'",
    ])


def install_service_configs(host, release_name):
    """Step: render this host's service configs into a new release (once per release)."""
    return once(host, release_name, "services", _write_configs_script(host, release_name))


def rerender_current(host):
    """Render the service configs again into the current release (set_supervisor_config)."""
    release_name = host.state.current
    if not release_name:
        raise RuntimeError("no current release")
    output = host.run("set -e\n" + _write_configs_script(host, release_name))
    return output.strip().splitlines()[-1]


def changed_programs(host):
    """Programs whose config on disk differs from what supervisord runs (reread)."""
    return parse_reread(host.run(f"{host.env.supervisorctl} reread"))


def reloads_in_place(host, mode):
    """True if `restart(host, mode)` restarts no program with a port (no drain needed)."""
    if mode == "all":
        return False
    env = host.env
    web = {env.topology.program_name(n): s for n, s in env.topology.supervised_on(host.name).items() if s.port}
    changed = set(changed_programs(host)) & set(web)
    if changed:
        return False
    return mode == "changed" or all(s.restart == "reload" for s in web.values())


def restart(host, mode="all", expect_programs=True, reloads=(), timeout=60):
    """The command (a Reporting) that applies config changes (reread/update) and
    restarts programs as `mode` says, with the services' before/after hooks, then
    waits until every program is RUNNING (fab/remote/supervisor.sh); its note:
    "running: <programs>".

    Programs in `reloads` (the caller knows their config and virtualenv did not
    change) get SIGHUP instead of a restart; when that is every program, nothing
    is reread or restarted at all, and the health check proves the reload (its
    note: "reloaded in place: <programs>"). With `expect_programs` false (no
    release is current any more) it only applies the removal. Safe to rerun.
    """
    if mode not in RESTART_MODES:
        raise ValueError(f"unknown restart mode {mode!r}")
    env = host.env
    services = env.topology.supervised_on(host.name) if expect_programs else {}
    programs = [env.topology.program_name(name) for name in services]
    reloads = [p for p in programs if p in set(reloads)]
    cwd = host.paths.current if expect_programs else host.paths.code_root
    in_place = programs and len(reloads) == len(programs)
    items = []
    for name, service in services.items():
        program = env.topology.program_name(name)
        if in_place:
            items += ["reload", program, service.port or ""]
        else:  # what `update` did not already restart ("changed": left alone)
            items += [action_after_update(mode, service, program in reloads), program]
    args = ["reload", env.supervisorctl, cwd] if in_place else ["restart", env.supervisorctl, cwd, int(timeout)]
    items = [*_hooks(host, services, "before"), *items, *_hooks(host, services, "after")]
    return Reporting(portservice.script_command("supervisor", *args, *items), describe_restart)


def _hooks(host, services, which):
    """supervisor.sh's items for the services' `which` (before/after) hooks."""
    items = []
    for name, service in services.items():
        command = hook(host, name, service, which)
        if command:
            items += [which, name, command]
    return items


def action_after_update(mode, service, reloads):
    """What supervisor.sh does to a program `update` did not restart."""
    if mode == "changed":
        return "keep"
    return "hup" if reloads or (mode == "graceful" and service.restart == "reload") else "restart"


def describe_restart(line):
    """supervisor.sh's result line ("running p1 p2", "reloaded p1") in a note's words."""
    did, *programs = line.split()
    if did == "reloaded":
        return f"reloaded in place: {', '.join(programs)}"
    return f"running: {', '.join(programs) or 'no programs'}"


def start_programs(host, programs, timeout=60, steady=2):
    """Start programs and check they stay RUNNING for `steady` seconds."""
    if not programs:
        return "no programs"
    host.run(portservice.script("supervisor"), ["start", host.env.supervisorctl, int(timeout), int(steady), *programs])
    return f"running: {', '.join(programs)}"


def stop_programs(host, programs):
    """Stop programs; supervisorctl waits for each to exit. Returns their states."""
    if not programs:
        return "no programs"
    output = host.run(portservice.script("supervisor"), ["stop", host.env.supervisorctl, *programs])
    states = parse_status(output)
    not_stopped = [p for p in programs if states.get(p) not in ("STOPPED", "EXITED")]
    if not_stopped:
        raise RemoteCommandFailed(f"still running: {', '.join(not_stopped)}", output)
    return f"stopped: {', '.join(programs)}"


def run_ctl(host, words):
    """Any supervisorctl command (words quoted); returns (exit code, output)."""
    result = host.execute(f"{host.env.supervisorctl} {shell.command(*words)}")
    return result.exited, (result.stdout + result.stderr).rstrip()


_STATUS_LINE = re.compile(r"^(\S+)\s+([A-Z]+)\b")
_REREAD_LINE = re.compile(r"^([^:\s]+): (changed|available|disappeared)$")


def parse_status(output):
    """`supervisorctl status` output -> {program: state}."""
    states = {}
    for line in output.splitlines():
        match = _STATUS_LINE.match(line)
        if match:
            states[match.group(1)] = match.group(2)
    return states


def parse_reread(output):
    """`supervisorctl reread` output -> [programs added or changed]."""
    return [m.group(1) for m in map(_REREAD_LINE.match, output.splitlines())
            if m and m.group(2) != "disappeared"]

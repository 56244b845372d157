"""Service configs rendered per host and release; supervisor programs applied and restarted.

Runs on: the hosts of the roles that have services. supervisord includes
`<code_root>/current/services/supervisor/*.conf`, so the swap of `current`
switches service definitions together with the code. Each program's config names
its release's absolute path: after a swap `update` restarts every program whose
release changed (no process keeps old code through a resolved symlink), and
removes programs that no longer exist.
"""
import re

from fab import shell, templates
from fab.commands import hook
from fab.hosts import RemoteCommandFailed
from fab.operations.portservice import pid_on_port_script
from fab.operations.release import once
from fab.operations.state import config_digest

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
    """{program: config text} of the host's supervisor programs in a release (local)."""
    return {path.rsplit("/", 1)[-1].removesuffix(".conf"): text
            for path, text in render_service_configs(host, release_name).items()
            if path.startswith(host.paths.release_services(release_name, "supervisor") + "/")}


def _write_configs_script(host, release_name):
    paths = host.paths
    rendered = render_service_configs(host, release_name)
    services_dir = paths.release_services(release_name).rsplit("/", 1)[0]
    dirs = sorted({path.rsplit("/", 1)[0] for path in rendered})
    return "\n".join([
        shell.command("rm", "-rf", services_dir),
        shell.command("mkdir", "-p", paths.release_services(release_name), *dirs),
        *(shell.write_file(path, text) for path, text in rendered.items()),
        f"echo '{len(rendered)} service config(s) rendered'",
    ])


def install_service_configs(host, release_name):
    """Step: render this host's service configs into a new release (once per release)."""
    def remember(note):
        """The host's state learns the new release's configs (reload decisions use them)."""
        host.state.configs[release_name] = {
            program: config_digest(text) for program, text in configs_by_program(host, release_name).items()}
        return note

    return once(host, release_name, "services", _write_configs_script(host, release_name), then=remember)


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
    """Shell that applies config changes (reread/update) and restarts programs as
    `mode` says, with the services' before/after hooks, then waits until every
    program is RUNNING; it appends what it did to $notes.

    Programs in `reloads` (the caller knows their config and virtualenv did not
    change) get SIGHUP instead of a restart; when that is every program, nothing
    is reread or restarted at all, and the health check proves the reload. With
    `expect_programs` false (no release is current any more) it only applies the
    removal. Safe to rerun.
    """
    if mode not in RESTART_MODES:
        raise ValueError(f"unknown restart mode {mode!r}")
    env = host.env
    ctl = env.supervisorctl  # a trusted command prefix from the environment file
    services = env.topology.supervised_on(host.name) if expect_programs else {}
    programs = [env.topology.program_name(name) for name in services]
    reloads = [p for p in programs if p in set(reloads)]
    hooks_before = "\n".join(h for h in (hook(host, n, s, "before") for n, s in services.items()) if h)
    hooks_after = "\n".join(h for h in (hook(host, n, s, "after") for n, s in services.items()) if h)
    cwd = shell.quote(host.paths.current if expect_programs else host.paths.code_root)
    if programs and len(reloads) == len(programs):
        ports = {env.topology.program_name(name): service.port for name, service in services.items()}
        return f"""
cd {cwd}
{hooks_before}
{chr(10).join(reload_script(ctl, program, ports.get(program)) for program in reloads)}
{hooks_after}
notes="${{notes:+$notes; }}reloaded in place: {', '.join(reloads)}"
"""
    # Programs `update` did not already restart; "changed" leaves them alone. What
    # supervisorctl says goes to stderr: shown if the step fails ("ERROR (not running)").
    untouched_by_update = {} if mode == "changed" else services
    per_program = []
    for name, service in untouched_by_update.items():
        program = env.topology.program_name(name)
        if program in reloads or (mode == "graceful" and service.restart == "reload"):
            action = f"{ctl} signal HUP {shell.quote(program)} >&2"
        else:
            action = f"{ctl} restart {shell.quote(program)} >&2"
        per_program.append(f'case " $changed " in *" "{shell.quote(program)}" "*) ;; *) {action} ;; esac')
    return f"""
cd {cwd}
{hooks_before}
changed=$({ctl} reread | sed -n 's/^\\([^: ]*\\): \\(changed\\|available\\)$/\\1/p' | tr '\\n' ' ')
{ctl} update >&2
{chr(10).join(per_program)}
{wait_running_script(ctl, programs, timeout)}
{hooks_after}
notes="${{notes:+$notes; }}running: {', '.join(programs) or 'no programs'}"
"""


def reload_script(ctl, program, port=None):
    """Shell that sends SIGHUP to `program` (starting it if it is not running).

    With a port, the signal goes straight to the master listening there: no
    supervisorctl (a Python start-up) on the way.
    """
    through_supervisor = (f"{ctl} signal HUP {shell.quote(program)} >&2 || "
                          f"{ctl} start {shell.quote(program)} >&2")
    if not port:
        return through_supervisor
    return f"""{pid_on_port_script(port)}
if [ -n "$pid" ]; then kill -HUP "$pid"; else {through_supervisor}; fi"""


def wait_running_script(ctl, programs, timeout, steady=0):
    """Shell: poll `status` until every program is RUNNING (and still is `steady` s later)."""
    expected = " ".join(shell.quote(p) for p in programs) or '""'
    expected_pattern = "|".join(re.escape(p) for p in programs) or "-"
    return f"""
deadline=$(( $(date +%s) + {int(timeout)} ))
steadied=0
while :; do
  out=$({ctl} status 2>&1 || true)
  missing=""
  for program in {expected}; do
    [ -n "$program" ] || continue
    printf '%s\\n' "$out" | grep -Eq "^$program +RUNNING" || missing="$missing $program"
  done
  if [ -z "$missing" ]; then
    [ "$steadied" = 1 ] || [ {int(steady)} -eq 0 ] && break
    sleep {int(steady)}; steadied=1; continue
  fi
  fatal=$(printf '%s\n' "$out" | grep -E "^({expected_pattern}) +FATAL" || true)
  if [ -n "$fatal" ]; then
    printf '%s\n' "$out" >&2
    echo "gave up starting (FATAL): $(printf '%s' "$fatal" | cut -d' ' -f1 | tr '\n' ' ')" >&2
    exit 1
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    printf '%s\\n' "$out" >&2
    echo "not RUNNING after {int(timeout)}s:$missing" >&2
    exit 1
  fi
  steadied=0
  sleep 0.1
done
"""


def start_programs(host, programs, timeout=60, steady=2):
    """Start programs and check they stay RUNNING for `steady` seconds."""
    if not programs:
        return "no programs"
    ctl = host.env.supervisorctl
    host.run(f"""
set -e
{ctl} start {shell.command(*programs)} >/dev/null || true
{wait_running_script(ctl, programs, timeout, steady=steady)}
""")
    return f"running: {', '.join(programs)}"


def stop_programs(host, programs):
    """Stop programs; supervisorctl waits for each to exit. Returns their states."""
    if not programs:
        return "no programs"
    ctl = host.env.supervisorctl
    output = host.run(f"{ctl} stop {shell.command(*programs)} >/dev/null || true\n{ctl} status {shell.command(*programs)} || true")
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

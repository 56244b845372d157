"""Supervisor programs: rendered per host and release, applied with reread/update.

Runs on: the hosts of the roles that have services (every host with a service).
supervisord includes `<code_root>/current/services/supervisor/*.conf`, so the
swap of `current` switches service definitions together with the code; each
program's config names its release's absolute path, so `update` restarts every
program whose release changed and removes programs that no longer exist.
"""
import re

from fab import shell, templates
from fab.operations.release import once

ROLES = "roles with services"


def render_programs(host, release_name):
    """{program name: config text} for this host's services (local, no round trip)."""
    env = host.env
    paths = host.facts["paths"]
    state = host.facts["state"]
    rendered = {}
    for service_name, service in env.services_on(host.name).items():
        program = env.program_name(service_name)
        rendered[program] = templates.render(
            service.template,
            env={"name": env.name, "code_root": paths.code_root},
            host={"name": host.name, "address": host.address, "cpus": state.cpus},
            service={"name": service_name, **service.model_dump()},
            program=program,
            release={"name": release_name, "path": paths.release(release_name)},
            paths=paths,
        )
    return rendered


def install_programs(host, release_name):
    """Write this host's rendered programs into the release's services/supervisor/."""
    programs = render_programs(host, release_name)
    services = host.facts["paths"].release_services(release_name)
    writes = [
        shell.write_file(f"{services}/{program}.conf", text) for program, text in programs.items()
    ]
    body = "\n".join([
        shell.command("rm", "-rf", services),
        shell.command("mkdir", "-p", services),
        *writes,
        f"echo '{len(programs)} program(s) rendered'",
    ])
    return once(host, release_name, "services", body)


def restart(host, timeout=60):
    """Restart this environment's programs on the host (their config is unchanged)."""
    programs = [host.env.program_name(name) for name in host.env.services_on(host.name)]
    if not programs:
        return "no programs"
    host.run(f"{host.env.supervisorctl} restart {shell.command(*programs)}", timeout=timeout)
    return apply(host, timeout=timeout)


def apply(host, timeout=60, expect_programs=True):
    """reread + update, then wait until this environment's programs are RUNNING.

    With `expect_programs` false (no release is current any more) it only applies
    the removal. Safe to rerun: with nothing changed, `update` does nothing.
    """
    env = host.env
    ctl = env.supervisorctl  # a trusted command prefix from the environment file
    programs = [env.program_name(name) for name in env.services_on(host.name)] if expect_programs else []
    expected = " ".join(shell.quote(p) for p in programs) or '""' 
    output = host.run(
        f"""
set -e
{ctl} reread >/dev/null
{ctl} update
deadline=$(( $(date +%s) + {int(timeout)} ))
while :; do
  out=$({ctl} status 2>&1 || true)
  missing=""
  for program in {expected}; do
    [ -n "$program" ] || continue
    printf '%s\\n' "$out" | grep -Eq "^$program +RUNNING" || missing="$missing $program"
  done
  [ -z "$missing" ] && break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    printf '%s\\n' "$out" >&2
    echo "not RUNNING after {int(timeout)}s:$missing" >&2
    exit 1
  fi
  sleep 0.2
done
printf '%s\\n' "$out"
"""
    )
    states = parse_status(output)
    running = sorted(p for p in programs if states.get(p) == "RUNNING")
    return f"running: {', '.join(running) or 'no programs'}"


_STATUS_LINE = re.compile(r"^(\S+)\s+([A-Z]+)\b")


def parse_status(output):
    """`supervisorctl status` output -> {program: state}."""
    states = {}
    for line in output.splitlines():
        match = _STATUS_LINE.match(line)
        if match:
            states[match.group(1)] = match.group(2)
    return states

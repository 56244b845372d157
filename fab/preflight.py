"""The preflight's judgement: what is wrong on a host before a deploy, each problem
with its fix. Pure: `problems` reads the facts fab.operations.preflight found on a
host (and the controller's clock around that round trip) and the environment's
settings, nothing else, so tests/test_preflight.py checks every verdict.

Used by `fab <env> check` and by `deploy:plan=yes` (the same problems, in the plan).
"""
import dataclasses

from fab.paths import Paths

#: Seconds a host's clock may differ from the controller's beyond the round trip's
#: own uncertainty: release names, keep-until dates and the lock's ages are the
#: controller's times compared with the hosts'.
MAX_CLOCK_SKEW = 5.0
#: Free space a host needs under its code root before its first release (KiB).
MIN_FREE_KIB = 100 * 1024

SSH_FIX = "make `ssh <host>` work with the environment's ssh_config and known_hosts (the key verified)"


@dataclasses.dataclass(frozen=True)
class Problem:
    host: str
    check: str  # ssh, python, venv, git, supervisord, include, disk, code_root, port, clock, proxy
    problem: str
    fix: str

    def line(self):
        return f"{self.host}: {self.problem}; fix: {self.fix}"

    def to_dict(self):
        return dataclasses.asdict(self)


def unreachable(host, why):
    """The Problem of a host the preflight could not reach or read (`why`: one line)."""
    return Problem(host, "ssh", f"cannot check it: {why}", SSH_FIX.replace("<host>", host))


def problems(env, host, read):
    """[Problem] on `host` of environment `env`, from its fab.operations.preflight.Read."""
    facts, found = read.facts, []

    def problem(check, what, fix):
        found.append(Problem(host, check, what, fix))

    if facts.python_error:
        problem("python", f"python {env.python} does not run ({facts.python_error})",
                "install it, or set `python:` in the environment file to an interpreter the host has")
    if facts.venv_tool_error:
        problem("venv", f"virtualenv ({env.virtualenv}) does not run ({facts.venv_tool_error})",
                "install virtualenv for the deploy user, or uv with `uv:` in the environment file")
    if facts.git == "":
        problem("git", "git is not installed (releases are exported from the host's git cache)",
                "install git on the host")
    supervisor_problems(env, facts, problem)
    skew = clock_skew(read)
    if skew is not None and abs(skew) > MAX_CLOCK_SKEW + (read.received - read.sent) / 2:
        problem("clock", f"its clock is {abs(skew):.0f}s {'ahead of' if skew > 0 else 'behind'} the controller's",
                "run NTP (chrony or systemd-timesyncd) on the host and on the controller")
    if facts.writable is False:
        problem("code_root", f"the deploy user cannot write {facts.writable_dir} (for {env.code_root})",
                f"create {env.code_root} owned by the deploy user")
    needed = max(facts.release_kib, MIN_FREE_KIB)
    if facts.free_kib is not None and facts.free_kib < needed:
        last = f"the current release takes {mib(facts.release_kib)}" if facts.release_kib else "there is no release yet"
        problem("disk", f"{mib(facts.free_kib)} free under {env.code_root}; {last}, a deploy needs {mib(needed)}",
                f"free disk space, or delete old releases (`fab {env.name} clean_releases`)")
    if facts.proxy_dir_writable is False:
        problem("proxy", f"the deploy user cannot write the proxy's config directory ({facts.proxy_dir})",
                f"make {Paths(env.code_root).proxy} writable by the deploy user")
    services = env.topology.services_on(host)
    for port, (state, pid, said) in sorted(facts.ports.items()):
        if state != "other":
            continue
        names = ", ".join(name for name, service in services.items() if service.port == port)
        holder = f"pid {pid} ({said.strip()})" if pid else said.strip("() ") or "another process"
        problem("port", f"port {port} of {names or 'a service'} is held by {holder}, not by {env.name}'s program",
                "stop that process, or give the service another port in the environment file")
    return found


def supervisor_problems(env, facts, problem):
    """supervisord running and including the code root's programs."""
    if facts.supervisord_down is not None:
        problem("supervisord", f"supervisord does not answer ({env.supervisorctl} pid: {facts.supervisord_down})",
                "start supervisord as the deploy user, or fix `supervisorctl:` in the environment file")
    wanted = Paths(env.code_root).current_service_config("supervisor", "*")
    if facts.supervisor_config == "":
        problem("include", "supervisorctl's config file is not found",
                f"name it in the environment's `supervisorctl:` ({env.supervisorctl} -c <file>), "
                f"with {wanted} in its [include] files=")
    elif facts.included is False:
        problem("include", f"supervisord does not include {wanted}",
                f"add it to `files =` under [include] in {facts.supervisor_config}, then run `supervisorctl update`")


def clock_skew(read):
    """Seconds the host's clock is ahead of the controller's (None: unknown), taking the
    host's reading as made halfway through the round trip."""
    if read.facts.clock is None:
        return None
    return read.facts.clock - (read.sent + read.received) / 2


def mib(kib):
    return f"{kib / 1024:.0f} MiB"


def verdict(env, reads, unread):
    """[Problem] of every host of `env`, in its order: `reads` {host: Read} of the hosts
    read, `unread` {host: why} of those that could not be reached or read."""
    found = []
    for host in env.hosts:
        if host in unread:
            found.append(unreachable(host, unread[host]))
        elif host in reads:
            found += problems(env, host, reads[host])
    return found

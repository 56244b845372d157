"""The built-in sandbox: a local fleet of real SSH hosts on loopback addresses.

Each host is an OpenSSH `sshd` listening on its own 127.0.0.x address, reached
as its own unix user whose home is that host's filesystem, with its own
`supervisord` including `<code_root>/current/services/supervisor/*.conf`.
Needs root (it creates users and runs sshd).

    python -m fab.sandbox up        # start (idempotent) and print the hosts
    python -m fab.sandbox down      # stop the processes it started
    python -m fab.sandbox destroy   # stop, remove the users and every file

This module is the fleet (what it is, starting and stopping it); its hosts and their
daemons are `daemons`, the tools and sample app they share are `tools`, the command
line is `__main__`.
"""
import dataclasses
import json
import os
import pwd
import shutil
import sys

from fab.sandbox import daemons, tools


@dataclasses.dataclass
class FleetSpec:
    root: str
    user_prefix: str
    hosts: dict  # host alias -> loopback address
    #: Each host's own supervisord (False: code-only hosts, no services to run).
    supervisord: bool = True
    #: sshd's LogLevel, e.g. VERBOSE to log every connection and remote command.
    sshd_log_level: str = "INFO"

    def user(self, host):
        return f"{self.user_prefix}-{host}"

    def host_dir(self, host):
        return os.path.join(self.root, "hosts", host)

    def home(self, host):
        return os.path.join(self.host_dir(host), "home")

    @property
    def client_dir(self):
        return os.path.join(self.root, "client")

    @property
    def ssh_config(self):
        return os.path.join(self.client_dir, "ssh_config")

    @property
    def known_hosts(self):
        return os.path.join(self.client_dir, "known_hosts")

    @property
    def identity(self):
        return os.path.join(self.client_dir, "id_ed25519")

    @property
    def app_repo(self):
        """The bare repository hosts fetch the sample app from."""
        return os.path.join(self.root, "app.git")

    @property
    def app_workdir(self):
        """A working clone of the sample app, where new commits are made."""
        return os.path.join(self.root, "app-src")

    @property
    def state_file(self):
        return os.path.join(self.root, "fleet.json")


SANDBOX = FleetSpec(
    root="/srv/fab-sandbox",
    user_prefix="fabsbx",
    hosts={"web1": "127.0.0.11", "web2": "127.0.0.12", "pillow1": "127.0.0.13", "proxy1": "127.0.0.14"},
)


def up(spec):
    """Start the fleet (or keep it running); safe to run again."""
    if os.geteuid() != 0:
        sys.exit("sandbox: must run as root (it creates one user per host and runs sshd)")
    with tools.tools_lock():
        tools.ensure_tools()
    os.makedirs(spec.root, exist_ok=True)
    os.chmod(spec.root, 0o755)
    daemons.ensure_client_key(spec)
    state = {"hosts": {}}
    for host, address in spec.hosts.items():
        daemons.ensure_user(spec, host)
        state["hosts"][host] = {
            "address": address,
            "user": spec.user(host),
            "sshd_pid": daemons.ensure_sshd(spec, host, address),
        }
    daemons.write_client_config(spec)
    for host in spec.hosts:
        if spec.supervisord:
            state["hosts"][host]["supervisord_pid"] = daemons.ensure_supervisord(spec, host)
    daemons.write(spec.state_file, json.dumps(state, indent=2), 0o644)
    tools.ensure_app_repo(spec)
    with tools.tools_lock():
        tools.ensure_wheelhouse()
    return state


def down(spec):
    """Stop the sshd and supervisord processes this sandbox started, by their pids."""
    if not os.path.exists(spec.state_file):
        return
    with open(spec.state_file) as handle:
        state = json.load(handle)
    for host, info in state["hosts"].items():
        # supervisord stops the programs it runs before it exits.
        # By pid, only while that pid is still ours (it may be another process's since).
        daemons.stop_pid(daemons.recorded_daemon(spec, host, info, "supervisord_pid"), f"supervisord of {host}",
                         grace=30)
        daemons.stop_daemonized_proxies(spec, host)
        daemons.stop_pid(daemons.recorded_daemon(spec, host, info, "sshd_pid"), f"sshd of {host}", grace=5)
    os.remove(spec.state_file)


def destroy(spec):
    """Stop the fleet, remove its users and every file under its root."""
    down(spec)
    for host in spec.hosts:
        try:
            pwd.getpwnam(spec.user(host))
        except KeyError:
            continue
        tools.sh("userdel", spec.user(host), capture_output=True, check=False)
    shutil.rmtree(spec.root, ignore_errors=True)

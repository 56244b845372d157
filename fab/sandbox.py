"""The built-in sandbox: a local fleet of real SSH hosts on loopback addresses.

Each host is an OpenSSH `sshd` listening on its own 127.0.0.x address, reached
as its own unix user whose home is that host's filesystem, with its own
`supervisord` including `<code_root>/current/services/supervisor/*.conf`.
Needs root (it creates users and runs sshd).

    python -m fab.sandbox up        # start (idempotent) and print the hosts
    python -m fab.sandbox down      # stop the processes it started
    python -m fab.sandbox destroy   # stop, remove the users and every file
"""
import argparse
import contextlib
import dataclasses
import fcntl
import glob
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time

from fab import BUILTIN_DIR
from fab.paths import Paths

TOOLS = "/opt/fab-sandbox-tools"
SAMPLE_APP = os.path.join(BUILTIN_DIR, "sample_app")
SSH_PORT = 2222
SYSTEM_PYTHON = "/usr/bin/python3"


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

WHEELHOUSE = os.path.join(TOOLS, "wheelhouse")


def sh(*args, **kwargs):
    kwargs.setdefault("check", True)
    return subprocess.run(args, **kwargs)


def log(text):
    print(f"sandbox: {text}", flush=True)


# --- shared tools -------------------------------------------------------------


@contextlib.contextmanager
def tools_lock():
    """Serialise building the shared tools and wheelhouse (parallel test workers share them)."""
    os.makedirs(os.path.dirname(TOOLS), exist_ok=True)
    with open(TOOLS + ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def ensure_tools():
    """A system-wide venv with supervisor and virtualenv, usable by every host user."""
    requirements = os.path.join(BUILTIN_DIR, "sandbox-hosts-requirements.txt")
    marker = os.path.join(TOOLS, ".installed-" + file_digest(requirements))
    if os.path.exists(marker):
        return
    log(f"installing host tools into {TOOLS}")
    if not os.path.exists(os.path.join(TOOLS, "bin", "python")):
        sh(SYSTEM_PYTHON, "-m", "venv", TOOLS)
    sh(os.path.join(TOOLS, "bin", "pip"), "install", "-q", "-r", requirements)
    os.chmod(TOOLS, 0o755)
    open(marker, "w").close()


def ensure_wheelhouse():
    """Wheels for the sample app's requirements, built once, so deploys stay offline."""
    requirements = os.path.join(SAMPLE_APP, "requirements.txt")
    marker = os.path.join(WHEELHOUSE, ".built-" + file_digest(requirements))
    if os.path.exists(marker):
        return WHEELHOUSE
    log(f"building the sample app's wheelhouse in {WHEELHOUSE}")
    os.makedirs(WHEELHOUSE, exist_ok=True)
    sh(os.path.join(TOOLS, "bin", "pip"), "wheel", "-q", "-w", WHEELHOUSE, "-r", requirements)
    for path in [WHEELHOUSE] + [os.path.join(WHEELHOUSE, f) for f in os.listdir(WHEELHOUSE)]:
        os.chmod(path, 0o755 if os.path.isdir(path) else 0o644)
    open(marker, "w").close()
    return WHEELHOUSE


def file_digest(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()[:16]


# --- the sample app's repository ----------------------------------------------

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Sandbox",
    "GIT_AUTHOR_EMAIL": "sandbox@localhost",
    "GIT_COMMITTER_NAME": "Sandbox",
    "GIT_COMMITTER_EMAIL": "sandbox@localhost",
}


def git(*args, cwd=None):
    env = {**os.environ, **GIT_IDENTITY}
    return sh("git", *args, cwd=cwd, env=env, capture_output=True, text=True).stdout.strip()


def ensure_app_repo(spec):
    """Create the sample app's repository (bare, readable by every host) once."""
    if os.path.isdir(spec.app_repo):
        return
    log(f"creating the sample app repository {spec.app_repo}")
    shutil.copytree(SAMPLE_APP, spec.app_workdir, ignore=shutil.ignore_patterns("__pycache__"))
    git("init", "-q", "-b", "main", cwd=spec.app_workdir)
    git("add", "-A", cwd=spec.app_workdir)
    git("commit", "-q", "-m", "Sample app", cwd=spec.app_workdir)
    git("clone", "-q", "--bare", "--", spec.app_workdir, spec.app_repo)
    git("remote", "add", "--", "origin", spec.app_repo, cwd=spec.app_workdir)
    git("fetch", "-q", "--", "origin", cwd=spec.app_workdir)
    git("branch", "-q", "--set-upstream-to=origin/main", "main", cwd=spec.app_workdir)
    sh("chmod", "-R", "a+rX", spec.app_repo)


def commit_app_change(spec, path, content, message):
    """Commit a change to the sample app and push it; return the new commit."""
    full = os.path.join(spec.app_workdir, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as handle:
        handle.write(content)
    git("add", "-A", cwd=spec.app_workdir)
    # --allow-empty: a test may write what the file already holds; it still wants a new commit.
    git("commit", "-q", "--allow-empty", "-m", message, cwd=spec.app_workdir)
    git("push", "-q", "--", "origin", "HEAD:main", cwd=spec.app_workdir)
    sh("chmod", "-R", "a+rX", spec.app_repo)
    return git("rev-parse", "HEAD", cwd=spec.app_workdir)


# --- hosts --------------------------------------------------------------------

SSHD_CONFIG = """\
ListenAddress {address}:{port}
HostKey {host_dir}/sshd/ssh_host_ed25519_key
PidFile {host_dir}/sshd/sshd.pid
AllowUsers {user}
AuthorizedKeysFile .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
UsePAM no
StrictModes yes
X11Forwarding no
PrintMotd no
MaxStartups 50:30:100
MaxSessions 50
Subsystem sftp internal-sftp
LogLevel {log_level}
"""

SUPERVISORD_CONFIG = """\
[unix_http_server]
file={home}/supervisor/supervisor.sock
chmod=0700

[supervisord]
logfile={home}/supervisor/supervisord.log
pidfile={home}/supervisor/supervisord.pid
directory={home}
identifier={host}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{home}/supervisor/supervisor.sock

[include]
files = {programs}
"""


def ensure_client_key(spec):
    os.makedirs(spec.client_dir, mode=0o700, exist_ok=True)
    if not os.path.exists(spec.identity):
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fab-sandbox", "-f", spec.identity)


def ensure_user(spec, host):
    user, home = spec.user(host), spec.home(host)
    os.makedirs(spec.host_dir(host), exist_ok=True)
    os.chmod(spec.host_dir(host), 0o755)
    try:
        pwd.getpwnam(user)
        sh("usermod", "--home", home, user, capture_output=True)
    except KeyError:
        sh("useradd", "--home-dir", home, "--no-create-home", "--shell", "/bin/bash", "--user-group", user)
    # "*": no password, but not a locked account (sshd refuses locked ones).
    sh("usermod", "--password", "*", user)
    os.makedirs(os.path.join(home, ".ssh"), exist_ok=True)
    os.makedirs(os.path.join(home, "supervisor"), exist_ok=True)
    with open(spec.identity + ".pub") as handle:
        write(os.path.join(home, ".ssh", "authorized_keys"), handle.read(), 0o600)
    # Hosts fetch the sample app from a repository root owns.
    write(os.path.join(home, ".gitconfig"), "[safe]\n\tdirectory = *\n", 0o644)
    write(
        os.path.join(home, "supervisor", "supervisord.conf"),
        SUPERVISORD_CONFIG.format(home=home, host=host, programs=every_environment(home).current_service_config(
            "supervisor", "*")),
        0o644,
    )
    sh("chown", "-R", f"{user}:{user}", home)
    os.chmod(home, 0o700)
    os.chmod(os.path.join(home, ".ssh"), 0o700)


def write(path, content, mode):
    with open(path, "w") as handle:
        handle.write(content)
    os.chmod(path, mode)


def ensure_sshd(spec, host, address):
    sshd_dir = os.path.join(spec.host_dir(host), "sshd")
    os.makedirs(sshd_dir, exist_ok=True)
    key = os.path.join(sshd_dir, "ssh_host_ed25519_key")
    if not os.path.exists(key):
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host, "-f", key)
    config = os.path.join(sshd_dir, "sshd_config")
    write(config, SSHD_CONFIG.format(
        address=address, port=SSH_PORT, host_dir=spec.host_dir(host), user=spec.user(host),
        log_level=spec.sshd_log_level,
    ), 0o600)
    pid = read_pid(os.path.join(sshd_dir, "sshd.pid"))
    if pid and alive(pid):
        return pid
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
    sh("/usr/sbin/sshd", "-f", config, "-E", os.path.join(sshd_dir, "sshd.log"))
    pidfile = os.path.join(sshd_dir, "sshd.pid")
    # Its pidfile, not only an open port: a stray listener on the address would
    # answer for it (and be left unstopped) while this sshd failed to bind.
    wait_for(lambda: read_pid(pidfile) and alive(read_pid(pidfile)) and port_open(address, SSH_PORT),
             f"sshd of {host} on {address}:{SSH_PORT} (is something else listening there?)")
    return read_pid(pidfile)


def ensure_supervisord(spec, host):
    home = spec.home(host)
    pidfile = os.path.join(home, "supervisor", "supervisord.pid")
    pid = read_pid(pidfile)
    if pid and alive(pid):
        return pid
    sh(
        "runuser", "-u", spec.user(host), "--",
        os.path.join(TOOLS, "bin", "supervisord"), "-c",
        os.path.join(home, "supervisor", "supervisord.conf"),
        cwd="/",
    )
    wait_for(lambda: read_pid(pidfile) and alive(read_pid(pidfile)), f"supervisord of {host}")
    return read_pid(pidfile)


def write_client_config(spec):
    """ssh_config with one alias per host, and known_hosts with their real keys."""
    blocks, known = [], []
    for host, address in spec.hosts.items():
        blocks.append(
            f"Host {host}\n"
            f"  HostName {address}\n"
            f"  Port {SSH_PORT}\n"
            f"  User {spec.user(host)}\n"
            f"  IdentityFile {spec.identity}\n"
            f"  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {spec.known_hosts}\n"
            f"  StrictHostKeyChecking yes\n"
        )
        with open(os.path.join(spec.host_dir(host), "sshd", "ssh_host_ed25519_key.pub")) as handle:
            key_type, key = handle.read().split()[:2]
        known.append(f"[{address}]:{SSH_PORT} {key_type} {key}\n")
    write(spec.ssh_config, "\n".join(blocks), 0o644)
    write(spec.known_hosts, "".join(known), 0o644)


def up(spec):
    """Start the fleet (or keep it running); safe to run again."""
    if os.geteuid() != 0:
        sys.exit("sandbox: must run as root (it creates one user per host and runs sshd)")
    with tools_lock():
        ensure_tools()
    os.makedirs(spec.root, exist_ok=True)
    os.chmod(spec.root, 0o755)
    ensure_client_key(spec)
    state = {"hosts": {}}
    for host, address in spec.hosts.items():
        ensure_user(spec, host)
        state["hosts"][host] = {
            "address": address,
            "user": spec.user(host),
            "sshd_pid": ensure_sshd(spec, host, address),
        }
    write_client_config(spec)
    for host in spec.hosts:
        if spec.supervisord:
            state["hosts"][host]["supervisord_pid"] = ensure_supervisord(spec, host)
    write(spec.state_file, json.dumps(state, indent=2), 0o644)
    ensure_app_repo(spec)
    with tools_lock():
        ensure_wheelhouse()
    return state


def down(spec):
    """Stop the sshd and supervisord processes this sandbox started, by their pids."""
    if not os.path.exists(spec.state_file):
        return
    with open(spec.state_file) as handle:
        state = json.load(handle)
    for host, info in state["hosts"].items():
        # supervisord stops the programs it runs before it exits.
        stop_pid(info.get("supervisord_pid"), f"supervisord of {host}", grace=30)
        stop_daemonized_proxies(spec, host)
        stop_pid(info.get("sshd_pid"), f"sshd of {host}", grace=5)
    os.remove(spec.state_file)


def every_environment(home):
    """The remote paths of every environment a sandbox host has (code roots ~/www/<env>),
    as glob patterns."""
    return Paths(os.path.join(home, "www", "*"))


def stop_daemonized_proxies(spec, host):
    """Stop the nginx that deploys started on `host` (it daemonizes: no supervisord stops
    it), by the pid in its pidfile, when that process is the host user's."""
    try:
        uid = pwd.getpwnam(spec.user(host)).pw_uid
    except KeyError:
        return
    for pidfile in glob.glob(os.path.join(every_environment(spec.home(host)).proxy, "*.pid")):
        pid = read_pid(pidfile)
        if pid and alive(pid) and _owner(pid) == uid:
            stop_pid(pid, f"nginx of {host}", grace=10)


def _owner(pid):
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def destroy(spec):
    """Stop the fleet, remove its users and every file under its root."""
    down(spec)
    for host in spec.hosts:
        try:
            pwd.getpwnam(spec.user(host))
        except KeyError:
            continue
        sh("userdel", spec.user(host), capture_output=True, check=False)
    shutil.rmtree(spec.root, ignore_errors=True)


# --- processes ----------------------------------------------------------------


def read_pid(path):
    try:
        with open(path) as handle:
            return int(handle.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited; only its parent has not collected it yet.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(pid, what, grace):
    if not pid or not alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        log(f"{what} (pid {pid}) ignored SIGTERM for {grace}s; killing it")
        os.kill(pid, signal.SIGKILL)


def port_open(address, port):
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((address, port)) == 0


def wait_for(condition, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fab.sandbox", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["up", "down", "destroy", "status"])
    args = parser.parse_args(argv)
    if args.action == "up":
        state = up(SANDBOX)
        for host, info in state["hosts"].items():
            log(f"{host:<8} {info['user']}@{info['address']}:{SSH_PORT} (sshd pid {info['sshd_pid']}, supervisord pid {info['supervisord_pid']})")
        log(f"ssh config: {SANDBOX.ssh_config}; app repository: {SANDBOX.app_repo}")
    elif args.action == "down":
        down(SANDBOX)
        log("stopped")
    elif args.action == "destroy":
        destroy(SANDBOX)
        log("destroyed")
    else:
        if not os.path.exists(SANDBOX.state_file):
            log("not running")
            return 1
        with open(SANDBOX.state_file) as handle:
            state = json.load(handle)
        for host, info in state["hosts"].items():
            running = all(alive(info[k]) for k in ("sshd_pid", "supervisord_pid"))
            log(f"{host:<8} {info['address']} {'running' if running else 'NOT running'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The sandbox's hosts: one unix user per host (its home is the host's filesystem),
each with its own `sshd` on its loopback address and its own `supervisord`; the
client's ssh_config and known_hosts; and the processes started, found and stopped
by their pids only.
"""
import glob
import os
import pwd
import signal
import socket
import time

from fab.paths import Paths
from fab.sandbox.tools import TOOLS, log, sh

SSH_PORT = 2222


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


def sshd_config_path(spec, host):
    return os.path.join(spec.host_dir(host), "sshd", "sshd_config")


def supervisord_config_path(spec, host):
    return os.path.join(spec.home(host), "supervisor", "supervisord.conf")


_DAEMON_CONFIGS = {"sshd_pid": sshd_config_path, "supervisord_pid": supervisord_config_path}


def ensure_sshd(spec, host, address):
    sshd_dir = os.path.join(spec.host_dir(host), "sshd")
    os.makedirs(sshd_dir, exist_ok=True)
    key = os.path.join(sshd_dir, "ssh_host_ed25519_key")
    if not os.path.exists(key):
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host, "-f", key)
    config = sshd_config_path(spec, host)
    write(config, SSHD_CONFIG.format(
        address=address, port=SSH_PORT, host_dir=spec.host_dir(host), user=spec.user(host),
        log_level=spec.sshd_log_level,
    ), 0o600)
    pid = read_pid(os.path.join(sshd_dir, "sshd.pid"))
    if started_with(pid, config):
        return pid
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
    sh("/usr/sbin/sshd", "-f", config, "-E", os.path.join(sshd_dir, "sshd.log"))
    pidfile = os.path.join(sshd_dir, "sshd.pid")
    # Its pidfile, not only an open port: a stray listener on the address would
    # answer for it (and be left unstopped) while this sshd failed to bind.
    # Read once per look: sshd may be writing the file between two reads.
    wait_for(lambda: started_with(read_pid(pidfile), config) and port_open(address, SSH_PORT),
             f"sshd of {host} on {address}:{SSH_PORT} (is something else listening there?)")
    return read_pid(pidfile)


def ensure_supervisord(spec, host):
    home = spec.home(host)
    pidfile = os.path.join(home, "supervisor", "supervisord.pid")
    config = supervisord_config_path(spec, host)
    pid = read_pid(pidfile)
    if started_with(pid, config):
        return pid
    sh("runuser", "-u", spec.user(host), "--", os.path.join(TOOLS, "bin", "supervisord"), "-c", config, cwd="/")
    wait_for(lambda: started_with(read_pid(pidfile), config), f"supervisord of {host}")
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


# --- processes ----------------------------------------------------------------


def read_pid(path):
    try:
        with open(path) as handle:
            return int(handle.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def recorded_daemon(spec, host, info, key):
    """The pid a host's state (`info`) records under `key` ("sshd_pid",
    "supervisord_pid"), if that process is still the daemon it was (`started_with`
    its config); None otherwise."""
    pid = info.get(key)
    return pid if started_with(pid, _DAEMON_CONFIGS[key](spec, host)) else None


def started_with(pid, config):
    """Whether `pid` (None: no pid) is a live process started with the file `config`
    among its arguments: our daemon. A pidfile or a state file can outlive its process,
    and its pid be another process's since (after a reboot, on a busy machine): that
    one must be neither taken for ours nor stopped."""
    if not pid or not alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            arguments = handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    # sshd rewrites its title ("sshd: /usr/sbin/sshd -f <config> ... [listener] ..."): still there.
    return f" {config} " in f" {arguments} "


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


def every_environment(home):
    """The remote paths of every environment a sandbox host has (code roots ~/www/<env>),
    as glob patterns."""
    return Paths(os.path.join(home, "www", "*"))

"""`fab` in this very process, counting the remote commands the deployer runs on each
host: every command (fab.hosts.Host.execute, whether it runs in the host's Shell
or in a session of its own), the lock's command (fab.held_lock.HeldLock.acquire)
and every SFTP upload (fab.hosts.Host.upload): the round trips, which sshd's log no
longer shows one by one since a host's commands share a session.

    FAB_BENCH_COMMANDS=<file.json> python bench/_count_commands.py <fab arguments>

Run from the project's folder (Fabric loads ./fabfile.py). At exit, writes
{host: commands} to the file.
"""
import atexit
import collections
import json
import os
import sys
import threading

_lock = threading.Lock()
_commands = collections.Counter()


def counting(method, host_of):
    def counted(self, *args, **kwargs):
        with _lock:
            _commands[host_of(self)] += 1
        return method(self, *args, **kwargs)
    return counted


def report():
    with open(os.environ["FAB_BENCH_COMMANDS"], "w") as handle:
        json.dump(dict(_commands), handle)


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    from fab import held_lock, hosts

    hosts.Host.execute = counting(hosts.Host.execute, lambda host: host.name)
    hosts.Host.upload = counting(hosts.Host.upload, lambda host: host.name)
    held_lock.HeldLock.acquire = counting(held_lock.HeldLock.acquire, lambda lock: lock.host.name)
    atexit.register(report)
    from fabric.main import program

    sys.argv[0] = "fab"
    sys.exit(program.run())

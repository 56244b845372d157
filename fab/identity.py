"""Who runs the deployer, and on which machine: the names written into history rows,
claims and release metadata."""
import getpass
import os
import socket

from fab import precedence


def controller_name():
    """The machine the deployer runs on (FAB_CONTROLLER overrides its host name)."""
    return precedence.controller_name(os.environ, socket.gethostname)


def who_am_i():
    """The person (or CI job) running the deployer: user@machine."""
    return f"{getpass.getuser()}@{controller_name()}"

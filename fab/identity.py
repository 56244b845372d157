"""Who runs the deployer, and on which machine: the names written into history rows,
claims and release metadata."""
import getpass
import os
import socket

#: Overrides the controller's name (a CI runner in a throwaway container, tests
#: that play two controllers on one machine).
CONTROLLER_VARIABLE = "FAB_CONTROLLER"


def controller_name():
    """The machine the deployer runs on."""
    return os.environ.get(CONTROLLER_VARIABLE) or socket.gethostname()


def who_am_i():
    """The person (or CI job) running the deployer: user@machine."""
    return f"{getpass.getuser()}@{controller_name()}"

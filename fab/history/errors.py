"""What can go wrong with the history store, each one line for the user."""
from fab.errors import LockHeld, PreflightError, UsageError


class StoreUnavailable(PreflightError):
    """The store cannot be reached or opened (the message names its URL, masked)."""


class SchemaMismatch(PreflightError):
    """The store was made by an older or newer deployer; the message says what to run."""

    exit_code = 2


class ClaimHeld(LockHeld):
    """Another controller holds the environment's claim in the store (exit code 3)."""


class NoSuchOperation(UsageError):
    """`deploy_log:<id>` names no operation of this environment."""

"""What can go wrong with the history store, each one line for the user."""
from fab.errors import LockHeld, PreflightError, UsageError


class StoreUnavailable(PreflightError):
    """The store cannot be reached or opened (the message names its URL, masked)."""


class StoreMisconfigured(StoreUnavailable):
    """The store's URL can never work as given (not a database URL, an unsupported
    kind, a variable that is not set, a directory that does not exist)."""

    exit_code = 2


class SchemaMismatch(PreflightError):
    """The store was made by an older or newer deployer; the message says what to run."""

    exit_code = 2


class ClaimHeld(LockHeld):
    """Another controller holds the environment's claim in the store (exit code 3)."""


class NoSuchOperation(UsageError):
    """`deploy_log:<id>` names no operation of this environment."""

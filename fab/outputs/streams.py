"""stdout and stderr that outlive the terminal or pipe they write to.

A closed terminal (SIGHUP: a laptop lid, a dropped SSH session to a jump box)
makes every later write to it fail with EIO, a pipe whose reader went away
with EPIPE. The deployer must still put hosts back and record the task then,
so a write that fails this way never raises: the stream's file descriptor is
pointed at /dev/null, and everything written afterwards (by us, rich, invoke
or paramiko, buffered or not) is dropped quietly.
"""
import errno
import os
import sys

#: Errors of a stream whose other end is gone (a hung-up terminal, a closed pipe).
GONE = {errno.EPIPE, errno.EIO, errno.ENXIO, errno.ECONNRESET}


class SurvivingStream:
    """A text stream (sys.stdout, sys.stderr) whose write and flush survive its reader going away."""

    def __init__(self, wrapped):
        self._wrapped = wrapped

    def write(self, text):
        try:
            return self._wrapped.write(text)
        except OSError as error:
            self._gone(error)
            return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        try:
            self._wrapped.flush()
        except OSError as error:
            self._gone(error)

    def _gone(self, error):
        if error.errno not in GONE:
            raise error
        try:  # from now on its descriptor writes into /dev/null: the buffer drains there too
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._wrapped.fileno())
            os.close(null)
            self._wrapped.flush()
        except (OSError, ValueError):
            pass

    def __getattr__(self, name):
        return getattr(self._wrapped, name)


def survive_closed_output():
    """Make sys.stdout and sys.stderr survive a closed terminal or pipe (idempotent)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, SurvivingStream):
            setattr(sys, name, SurvivingStream(stream))

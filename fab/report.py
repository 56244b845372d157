"""Moved to fab/outputs/plain.py; kept so `from fab.report import PlainLines` still works."""
from fab.outputs.plain import PlainLines, host_line  # noqa: F401

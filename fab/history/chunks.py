"""Log chunks (Buildbot's logchunks): a run of consecutive log lines stored as one row.

A chunk is written per flush, so a follower reads a few rows, not one per line.
Chunks larger than COMPRESS_ABOVE are zlib-compressed; a follower's usual small
chunk stays plain. Pure functions: no database here.
"""
import zlib

PLAIN, ZLIB = 0, 1
COMPRESS_ABOVE = 2048  # bytes
MAX_CHUNK_BYTES = 64 * 1024


def encode(lines):
    """(data, compression) for a list of lines."""
    data = "\n".join(lines).encode("utf-8")
    if len(data) > COMPRESS_ABOVE:
        packed = zlib.compress(data, 6)
        if len(packed) < len(data):
            return packed, ZLIB
    return data, PLAIN


def decode(data, compression):
    """The lines of a stored chunk."""
    if compression == ZLIB:
        data = zlib.decompress(data)
    elif compression != PLAIN:
        raise ValueError(f"unknown log chunk compression {compression!r}")
    text = bytes(data).decode("utf-8")
    return text.split("\n")


def split(lines, max_bytes=MAX_CHUNK_BYTES):
    """Consecutive groups of `lines`, each at most `max_bytes` (a longer line goes alone)."""
    groups, current, size = [], [], 0
    for line in lines:
        length = len(line.encode("utf-8")) + 1
        if current and size + length > max_bytes:
            groups.append(current)
            current, size = [], 0
        current.append(line)
        size += length
    if current:
        groups.append(current)
    return groups

"""Silencing of C-level chatter: pybullet prints its build time on import and a line per link while
merging URDF links, straight from C, past Python's ``sys.stdout``/``sys.stderr``."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator

_libc = ctypes.CDLL(None)


@contextlib.contextmanager
def quiet_c_output() -> Iterator[None]:
    """Send writes to file descriptors 1 and 2 to /dev/null for the duration."""
    streams = []
    for stream in (sys.stdout, sys.stderr):
        try:
            streams.append((stream, stream.fileno()))
        except (AttributeError, OSError, ValueError):  # not a real file (e.g. captured): leave it
            continue
    saved = []
    try:
        with open(os.devnull, "w") as devnull:
            for stream, fd in streams:
                stream.flush()
                saved.append((fd, os.dup(fd)))
                os.dup2(devnull.fileno(), fd)
            yield
    finally:
        _libc.fflush(None)  # C's buffers still hold what was printed: drop it here
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)

"""Silencing of C-level stdout chatter (pybullet prints on import and while loading URDFs)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Iterator

_libc = ctypes.CDLL(None)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send writes to file descriptor 1 to /dev/null for the duration (Python and C alike)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no real stdout (e.g. captured by pytest)
        yield
        return
    sys.stdout.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        _libc.fflush(None)  # C's stdout buffer still holds what was printed: drop it here
        os.dup2(saved, fd)
        os.close(saved)

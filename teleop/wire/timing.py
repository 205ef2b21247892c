"""Fixed-rate loops: sleeping to absolute deadlines with sub-millisecond precision."""

from __future__ import annotations

import time
from collections.abc import Callable

#: The OS sleep overshoots by up to a few hundred microseconds; the last stretch is spun.
SPIN_S = 0.0003


def sleep_until(deadline_s: float, clock: Callable[[], float] = time.monotonic) -> None:
    """Return at ``deadline_s`` on ``clock`` (s): an OS sleep to within ``SPIN_S``, then a spin."""
    remaining = deadline_s - clock()
    if remaining > SPIN_S:
        time.sleep(remaining - SPIN_S)
    while clock() < deadline_s:
        pass

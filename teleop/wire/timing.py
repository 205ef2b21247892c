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


class FixedRate:
    """The deadlines of a fixed-rate loop on ``clock`` (s): ``advance`` moves ``deadline_s`` one
    period on and, when the loop has fallen more than a period behind, restarts from now instead of
    running periods back to back to catch up (``restarts`` counts those). The caller waits for
    ``deadline_s`` its own way (``sleep_until``, a poll, serving a socket meanwhile)."""

    def __init__(self, period_s: float, clock: Callable[[], float] = time.monotonic, start_s: float | None = None):
        if period_s <= 0:
            raise ValueError(f"period_s must be positive, got {period_s}")
        self.period_s = period_s
        self.clock = clock
        self.deadline_s = clock() if start_s is None else start_s
        self.restarts = 0

    def advance(self) -> bool:
        """The next deadline; True when the loop was over a period late and restarted from now."""
        self.deadline_s += self.period_s
        now = self.clock()
        if now > self.deadline_s + self.period_s:
            self.deadline_s = now
            self.restarts += 1
            return True
        return False

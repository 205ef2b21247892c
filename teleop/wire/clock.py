"""NTP-style clock sync between the console and the robot over the control channel.

The console sends ``Ping(t1)`` (its clock), the robot answers ``Pong(t1, t2, t3)`` (its clock at
receive and send), the console notes ``t4`` on arrival. Per exchange:

    offset = ((t2 - t1) + (t3 - t4)) / 2      # robot clock − console clock
    rtt    = (t4 - t1) - (t3 - t2)            # network round trip

The offset error of one exchange is at most rtt / 2, so the estimator keeps a window of recent
exchanges and trusts the one with the smallest round trip (queueing only ever adds delay). Its
uncertainty, rtt / 2 of that sample, is what the supervisor allows a command to look "sent after
it was received".
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class ClockSync:
    """Robot clock − console clock (s), and the sync's uncertainty (half its round trip, s)."""

    offset_s: float = 0.0
    uncertainty_s: float = 0.0


@dataclass(frozen=True)
class SyncSample:
    offset_s: float
    rtt_s: float
    at_console_s: float


def exchange(t1: float, t2: float, t3: float, t4: float) -> SyncSample:
    """One ping exchange (t1, t4 on the console clock; t2, t3 on the robot clock)."""
    values = (t1, t2, t3, t4)
    if not all(math.isfinite(t) for t in values):
        raise ValueError(f"clock-sync timestamps must be finite, got {values}")
    rtt = (t4 - t1) - (t3 - t2)
    if rtt < 0 or t3 < t2 or t4 < t1:
        raise ValueError(f"inconsistent clock-sync timestamps {values} (negative round trip)")
    return SyncSample(((t2 - t1) + (t3 - t4)) / 2.0, rtt, t4)


class ClockEstimator:
    """Offset and round trip from the best of the last ``window`` exchanges."""

    def __init__(self, window: int = 16, jump_margin_s: float = 0.002) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.samples: deque[SyncSample] = deque(maxlen=window)
        self.jump_margin_s = jump_margin_s
        #: How many clock jumps were detected (each restarted the estimate).
        self.jumps = 0

    def add(self, t1: float, t2: float, t3: float, t4: float) -> SyncSample:
        """Add one exchange. A sample whose offset disagrees with the current best by more than
        both their uncertainties (plus ``jump_margin_s``) means a clock jumped (or the other side
        restarted): the window is emptied and the estimate restarts from the new sample, so a
        stale pre-jump sample with a short round trip cannot keep the estimate wrong."""
        sample = exchange(t1, t2, t3, t4)
        if self.samples:
            best = self.best()
            if abs(sample.offset_s - best.offset_s) > (sample.rtt_s + best.rtt_s) / 2 + self.jump_margin_s:
                self.samples.clear()
                self.jumps += 1
        self.samples.append(sample)
        return sample

    @property
    def ready(self) -> bool:
        return bool(self.samples)

    def best(self) -> SyncSample:
        if not self.samples:
            raise RuntimeError("no clock-sync exchange yet")
        return min(self.samples, key=lambda s: s.rtt_s)

    def sync(self) -> ClockSync:
        """The estimate as the supervisor uses it: offset and uncertainty (rtt / 2)."""
        best = self.best()
        return ClockSync(offset_s=best.offset_s, uncertainty_s=best.rtt_s / 2.0)

    def reset(self) -> None:
        """Forget all samples (after a reconnect or a detected clock jump)."""
        self.samples.clear()

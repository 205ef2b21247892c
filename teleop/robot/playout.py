"""The robot's de-jitter (playout) buffer: accepted commands are played out at their send time plus
one steady delay, not at their arrival times.

Why: a command's target is the hand's position at its send time. Applied at arrival, every message's
delay error (jitter) becomes a position error of delay error × hand speed: broadband noise on the
tool that lands in the tremor band. At motion scale 0.2 over ``delay=200ms jitter=20ms`` it was
five times the 8–12 Hz power the tool had at 0 ms, and faster, predicted targets made it worse.
Played out by send time, the target path on the robot is the path the console sent, delayed by
``delay_s``.

How (robot clock, seconds):
- an accepted command's send time on the robot clock is ``sent_console_s + clock offset`` (the
  supervisor's clock sync) and its age at arrival ``received − sent``;
- its *need* is the delay at which it arrives before the play point leaves the previous command
  received, less the console's send period, and at least its age (see ``_learn``): over a clean
  link the age; where the link held commands back and the socket conflated them, more;
- the playout delay aims at the ``quantile`` of the needs of the last ``window_s`` less
  ``tolerated_jitter_s`` (finer jitter is not worth a delay: the loop samples once per period), at
  least the least need, at most ``max_added_s`` above the median need and never above
  ``max_delay_s`` (the supervisor passes its ``max_age_s``, so nothing is played older than may be
  applied); the delay moves toward its aim at most ``slew`` seconds per second, so replayed motion
  is sped up or slowed down by at most that fraction and never jumps;
- the target at robot time ``now`` is the commands' path at ``now − delay``, interpolated linearly
  (target and jaw) between the last command sent before that time and the next one received, so a
  conflated or lost command inside the buffer's slack leaves no step; a command that arrives after
  its play time is applied as it arrives, exactly as without the buffer;
- the command "applied" (echoed in telemetry) is the newest one the play point has passed, with the
  robot time it did.

Cost: the delay (measured over ``delay=200ms jitter=20ms``: about 20 ms above a command's typical
arrival, bounded by ``max_added_s``); over a link without jitter, none. Stopping is never delayed:
the supervisor acts on clutch release, stale commands, the watchdog and e-stop at once and
``clear``s the buffer. Plain logic: no clock, no transport.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

#: Send and play times closer than this count as equal (s): float rounding must not hold a command
#: that is due for another control period.
_EPS_S = 1e-6


@dataclass(frozen=True)
class PlayoutConfig:
    """The de-jitter buffer (SI units). ``enabled = false`` applies commands at arrival."""

    enabled: bool = True
    #: The share of the recent commands that should arrive before their playout time.
    quantile: float = 0.95
    #: The ages (s) the delay is chosen from: those of the commands received in the last ``window_s``.
    window_s: float = 2.0
    #: The most (s) the playout delay exceeds the median age in the window: the latency the buffer
    #: may add to a typical command.
    max_added_s: float = 0.05
    #: Jitter (s) left alone: the delay aims this far below the quantile (never below the youngest
    #: age). Below one control period a buffer buys nothing: the loop samples once per period anyway.
    tolerated_jitter_s: float = 0.002
    #: The most the playout delay changes per second of robot time (s/s).
    slew: float = 0.05
    #: Recompute the quantile every this many commands (cost: one sort of the window).
    update_every: int = 8

    def __post_init__(self) -> None:
        if not 0.0 < self.quantile <= 1.0:
            raise ValueError(f"playout quantile must be in (0, 1], got {self.quantile}")
        if self.window_s <= 0 or self.max_added_s < 0 or self.tolerated_jitter_s < 0 or not 0 < self.slew < 1:
            raise ValueError("playout needs window_s > 0, max_added_s >= 0, tolerated_jitter_s >= 0 and 0 < slew < 1")
        if self.update_every < 1:
            raise ValueError(f"playout update_every must be >= 1, got {self.update_every}")


@dataclass(frozen=True)
class Played:
    """One accepted command in the buffer: send time on the robot clock (s), its console send time
    and sequence (echoed in telemetry), target (m, base frame) and jaw opening."""

    sent_robot_s: float
    sent_console_s: float
    seq: int
    target_m: np.ndarray
    jaw: float


class Playout:
    """See the module docstring. ``push`` each accepted command, ``target_at`` once per control period."""

    def __init__(self, config: PlayoutConfig | None = None, max_delay_s: float = math.inf) -> None:
        self.config = config or PlayoutConfig()
        self.max_delay_s = max_delay_s
        #: The playout delay (s) in use; None until the first command of a session.
        self.delay_s: float | None = None
        self._aim_s = 0.0
        self._needs: deque[tuple[float, float]] = deque()
        #: The console's send period (s per sequence step): recent spacings and their median.
        self._intervals: deque[float] = deque(maxlen=64)
        self._period_s = 0.0
        self._pushes = 0
        self._pending: deque[Played] = deque()
        self._current: Played | None = None
        #: The newest command the playout has reached, and the robot time it reached it (s).
        self.applied: Played | None = None
        self.applied_robot_s = 0.0
        self._last_now_s: float | None = None

    def reset(self) -> None:
        """A new session: forget the commands and the ages (a new console, maybe a new link)."""
        self.clear()
        self.applied = None
        self.applied_robot_s = 0.0
        self.delay_s = None
        self._needs.clear()
        self._intervals.clear()
        self._period_s = 0.0
        self._pushes = 0

    def clear(self) -> None:
        """Drop the commands not yet played and the path (the arm holds); the delay is kept."""
        self._pending.clear()
        self._current = None

    def push(self, cmd: Played, received_s: float) -> None:
        """An accepted command, received at ``received_s`` (robot clock)."""
        cfg = self.config
        last = self._pending[-1] if self._pending else self._current
        self._learn(cmd, last, received_s)
        if not cfg.enabled:
            self._reach(cmd, received_s)
            return
        if last is not None and cmd.sent_robot_s < last.sent_robot_s:
            # A clock-offset update moved the send times back: keep the path monotonic in time.
            cmd = Played(last.sent_robot_s, cmd.sent_console_s, cmd.seq, cmd.target_m, cmd.jaw)
        self._pending.append(cmd)
        # Already due (a clean link, or a late command): applied as it arrives.
        play_s = received_s - (self.delay_s or 0.0)
        while self._pending and self._pending[0].sent_robot_s <= play_s + _EPS_S:
            self._reach(self._pending.popleft(), received_s)

    def _learn(self, cmd: Played, last: Played | None, received_s: float) -> None:
        """Add this command's need to the window and update the delay's aim.

        The need: the delay at which this command arrives before the play point leaves the previous
        command received (so the path interpolates instead of waiting), less the console's send
        period (the median time per sequence step of the recent commands: a clean stream, or a
        console whose ticks wander, plays each command as it arrives, as without the buffer) — at
        least its own age. Commands the link held back and the socket conflated widen the gap, so a
        survivor's need exceeds its own age by the commands it stands for."""
        cfg = self.config
        need = received_s - cmd.sent_robot_s
        if last is not None and cmd.sent_robot_s > last.sent_robot_s and cmd.seq > last.seq:
            per_step = (cmd.sent_robot_s - last.sent_robot_s) / (cmd.seq - last.seq)
            self._intervals.append(per_step)
            if self._period_s == 0.0 and len(self._intervals) >= 8:
                self._period_s = sorted(self._intervals)[len(self._intervals) // 2]
            # Until the period is known, this command's own spacing stands in (its need: its age).
            period = self._period_s or per_step
            need = max(need, received_s - last.sent_robot_s - period)
        self._needs.append((received_s, need))
        while self._needs and self._needs[0][0] < received_s - cfg.window_s:
            self._needs.popleft()
        if self.delay_s is None or self._pushes % cfg.update_every == 0:
            # Plain Python, not np.quantile: its first call takes ~12 ms (a stall of the loop) and
            # every call ~0.14 ms; sorting 500 floats takes ~30 µs.
            needs = sorted(n for _, n in self._needs)
            last_i = len(needs) - 1
            least, median, high = needs[0], needs[last_i // 2], needs[round(cfg.quantile * last_i)]
            aim = min(max(high - cfg.tolerated_jitter_s, least), median + cfg.max_added_s)
            self._aim_s = min(max(aim, 0.0), self.max_delay_s)
            if self._intervals:
                self._period_s = sorted(self._intervals)[len(self._intervals) // 2]
        self._pushes += 1
        if self.delay_s is None:
            self.delay_s = self._aim_s

    def target_at(self, now_s: float) -> tuple[np.ndarray, float] | None:
        """The target (m) and jaw to servo toward at robot time ``now_s``, or None before the first
        command since the last ``clear``."""
        cfg = self.config
        if self.delay_s is not None and self._last_now_s is not None:
            step = cfg.slew * max(now_s - self._last_now_s, 0.0)
            self.delay_s += min(max(self._aim_s - self.delay_s, -step), step)
        self._last_now_s = now_s
        play_s = now_s - (self.delay_s or 0.0)
        while self._pending and self._pending[0].sent_robot_s <= play_s + _EPS_S:
            self._reach(self._pending.popleft(), now_s)
        cur = self._current
        if cur is None:
            return None
        if not self._pending:
            return cur.target_m, cur.jaw
        nxt = self._pending[0]
        span = nxt.sent_robot_s - cur.sent_robot_s
        f = 0.0 if span <= 0 else min(max((play_s - cur.sent_robot_s) / span, 0.0), 1.0)
        return cur.target_m + f * (nxt.target_m - cur.target_m), cur.jaw + f * (nxt.jaw - cur.jaw)

    def stop(self, cmd: Played, now_s: float) -> None:
        """A command that stops motion (clutch released): drop the buffer, count it applied now."""
        self.clear()
        self.applied = cmd
        self.applied_robot_s = now_s

    def _reach(self, cmd: Played, now_s: float) -> None:
        self._current = cmd
        self.applied = cmd
        self.applied_robot_s = now_s

"""The browser surgeon page as an input device: the page reads the keyboard and the gamepad and sends
timestamped, sequenced input events (``PageEvent``); this device turns the newest of them into the
hand motion the console core maps, corrects and commands (rate control: the page sends velocities,
never positions, so no step is lost or repeated).

Events arrive from the web front end's thread (``telesurg.teleop.console.web``) on an unordered,
non-retransmitting WebRTC data channel; the console thread reads the device once per tick:

- an event whose sequence number is not newer than the last one accepted is dropped (out of order);
- an event later than ``stale_s`` behind the page's clock (mapped to the console's by the smallest
  arrival − page-time difference seen: the least-delayed event) is dropped (stale);
- no accepted event for ``silence_s`` while clutched: the clutch is released and the velocity is
  zero, so motion commands stop (the page went away, froze, or its channel broke);
- the page says when it is hidden or closing: the clutch is released at once.

Button presses (engage, e-stop, reset) are not read here: they come on the page's reliable control
channel as requests, which the front end serves in the console thread.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from dataclasses import dataclass

import msgspec
import numpy as np

from telesurg.teleop.console.inputs import HandInput
from telesurg.teleop.console.mapping import HandToTool
from telesurg.teleop.wire import protocol as p


class PageEvent(msgspec.Struct, forbid_unknown_fields=True):
    """One input event from the page. ``t_page_ms``: the page's clock (``performance.now()``, ms);
    ``axes``: hand velocity as a fraction of full speed (x right, y up, z toward the surgeon; each in
    [-1, 1]); ``jaw``: jaw velocity as a fraction of full speed (+1 opens); ``clutch``: held;
    ``fine``: fine speed; ``visible``: false when the page is hidden or closing (releases the clutch)."""

    seq: int
    t_page_ms: float
    axes: tuple[float, float, float]
    jaw: float = 0.0
    clutch: bool = False
    fine: bool = False
    visible: bool = True


_decode = msgspec.json.Decoder(PageEvent)


@dataclass(frozen=True)
class PageInputConfig:
    """Speeds of the page's rate control (hand space, m/s at full deflection; jaw: opening per s),
    ``fine_scale`` for the fine modifier; ``stale_s``: an event this much later than the page's
    least-delayed one is dropped; ``silence_s``: no event this long while clutched releases the
    clutch; ``dead_zone``: axes below it count as zero (gamepad sticks rest slightly off centre)."""

    speed_m_s: float = 0.03
    fine_scale: float = 0.2
    jaw_per_s: float = 1.5
    stale_s: float = 0.1
    silence_s: float = 0.25
    dead_zone: float = 0.1

    def __post_init__(self) -> None:
        if self.speed_m_s <= 0 or not 0 < self.fine_scale <= 1:
            raise ValueError("speed_m_s must be positive and fine_scale in (0, 1]")
        if self.stale_s <= 0 or self.silence_s <= 0:
            raise ValueError("stale_s and silence_s must be positive")
        if not 0 <= self.dead_zone < 1:
            raise ValueError("dead_zone must be in [0, 1)")


class PageInput:
    """See the module docstring. ``push`` (any thread) takes one event as JSON with its arrival time
    on the console's clock; ``read`` (the console thread) integrates the newest accepted one."""

    def __init__(self, config: PageInputConfig | None = None) -> None:
        self.config = config or PageInputConfig()
        self.hand_m = np.zeros(3)
        self.jaw = 0.0
        self._lock = threading.Lock()
        self._event: PageEvent | None = None
        self._arrival_s = -math.inf
        self._last_seq = -1
        self._min_delay_s = math.inf
        self._last_read_s: float | None = None
        #: Events dropped as out of order, as stale, and as malformed.
        self.dropped = {"order": 0, "stale": 0, "malformed": 0}
        self.accepted = 0
        self._engage = False
        #: Signalled when an accepted event changes what the surgeon commands (a key or button
        #: pressed or released, a stick moved, the page hidden or gone): the console's loop waits on
        #: it too and ticks at once rather than at its next period (``run_browser``).
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        #: An accepted event changed what the surgeon commands since the console last read.
        self.input_changed = False

    def push(self, data: str | bytes, arrival_s: float) -> bool:
        """Take one event (JSON) that arrived at ``arrival_s`` (console clock, s); False if dropped."""
        try:
            event = _decode.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            with self._lock:
                self.dropped["malformed"] += 1
            return False
        with self._lock:
            if event.seq <= self._last_seq:
                self.dropped["order"] += 1
                return False
            delay = arrival_s - event.t_page_ms / 1e3
            self._min_delay_s = min(self._min_delay_s, delay)
            self._last_seq = event.seq
            if delay - self._min_delay_s > self.config.stale_s:
                self.dropped["stale"] += 1
                return False
            previous = self._event
            self._event, self._arrival_s = event, arrival_s
            self.accepted += 1
        dz = self.config.dead_zone
        if previous is None or _intent(previous, dz) != _intent(event, dz):
            self.input_changed = True
            self.wake()
        return True

    def woken(self) -> bool:
        """Clear ``wake_fd`` and ``input_changed`` (the console is about to read the device):
        whether it was signalled."""
        self.input_changed = False
        try:
            os.eventfd_read(self.wake_fd)
        except (OSError, ValueError):  # not signalled (BlockingIOError), or closed (-1)
            return False
        return True

    def wake(self) -> None:
        """Signal ``wake_fd`` (new input here, or a request from the page for the console)."""
        with contextlib.suppress(OSError, ValueError):  # closed, or signalled 2^64 times unread
            os.eventfd_write(self.wake_fd, 1)

    def press_engage(self) -> None:
        """The surgeon re-engages while engaged (after the console's stale-video hold): the next
        read carries an engage press, which ends the hold once video is fresh."""
        self._engage = True

    def page_left(self) -> None:
        """The page closed or its channel broke: release the clutch now."""
        with self._lock:
            self._event = None
        self.input_changed = True
        self.wake()

    def reset_clock(self) -> None:
        """A new page (or a reload): its clock and sequence start afresh."""
        with self._lock:
            self._event, self._last_seq, self._min_delay_s = None, -1, math.inf

    def read(self, now_s: float, telemetry: p.Telemetry | None, mapping: HandToTool) -> HandInput:
        cfg = self.config
        with self._lock:
            event, arrival = self._event, self._arrival_s
        dt = 0.0 if self._last_read_s is None else min(0.1, max(0.0, now_s - self._last_read_s))
        self._last_read_s = now_s
        engage, self._engage = self._engage, False
        live = event is not None and event.visible and now_s - arrival <= cfg.silence_s
        if not live or event is None:
            return HandInput(hand_m=self.hand_m, jaw=self.jaw, clutch=False, engage=engage)
        axes = np.clip(np.asarray(event.axes, dtype=float), -1.0, 1.0)
        axes = np.where(np.abs(axes) < cfg.dead_zone, 0.0, axes)
        speed = cfg.speed_m_s * (cfg.fine_scale if event.fine else 1.0)
        if event.clutch:
            self.hand_m = self.hand_m + speed * axes * dt
        jaw_rate = 0.0 if abs(event.jaw) < cfg.dead_zone else float(np.clip(event.jaw, -1.0, 1.0))
        self.jaw = float(np.clip(self.jaw + cfg.jaw_per_s * jaw_rate * dt, 0.0, 1.0))
        return HandInput(hand_m=self.hand_m, jaw=self.jaw, clutch=event.clutch, engage=engage)

    def close(self) -> None:
        fd, self.wake_fd = self.wake_fd, -1  # no other thread writes to a number the OS reuses
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


def _intent(event: PageEvent, dead_zone: float) -> tuple:
    """What of an event the surgeon commands (not its sequence or time; a resting stick's jitter
    inside the dead zone commands nothing)."""
    axes = tuple(0.0 if abs(a) < dead_zone else min(max(a, -1.0), 1.0) for a in event.axes)
    jaw = 0.0 if abs(event.jaw) < dead_zone else min(max(event.jaw, -1.0), 1.0)
    return (axes, jaw, event.clutch, event.fine, event.visible)

"""The robot-side safety supervisor: plain logic, no transport, authoritative over what reaches the arm.

States: IDLE (nobody drives), ENGAGED (a console's commands are applied), HOLD (the arm is held still:
watchdog, stale command, clutch released), ESTOP (latched until ``reset``). The server feeds it
control requests (``engage``, ``disengage``, ``estop``, ``reset``), every decoded command
(``on_command``, with the robot-clock receive time and the clock sync) and, once per control period,
the measured state (``tick``), which returns the setpoint to servo toward.

Guarantees, whatever the commands say:
- only the engaged session's commands count, with a strictly rising sequence, and only while fresh:
  command age = receive time − (console send time + clock offset); above ``age_slowdown_s`` the
  speed limit shrinks linearly, above ``max_age_s`` the command is refused and the arm holds. A
  command that would have been sent after it was received (console clock ahead of the sync) is
  refused, so a console clock jump cannot make commands look fresher than they are;
- accepted commands are played out by ``telesurg.teleop.robot.playout`` at their send time + a steady delay (a
  de-jitter buffer: at most ``playout.max_added_s`` beyond a command's own age, never past
  ``max_age_s``); clutch release, stale commands, the watchdog and e-stop act at once and drop the
  buffer;
- no valid command for ``watchdog_s`` → HOLD at the measured tip position;
- the setpoint moves at most ``max_tip_speed_m_s`` (scaled by age) and the jaw at most
  ``max_jaw_rate_per_s``; leaving HOLD starts from where the arm is, so there is never a jump;
- the setpoint stays inside the workspace box and never enters a forbidden region;
- the envs force shield limits motion into tissue and backs off above its ceiling;
- e-stop (request or a Command's flag) latches until ``reset``; every transition is logged with
  its reason (``events``) and the current one is reported in telemetry.
"""

from __future__ import annotations

import itertools
import math
import secrets
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from telesurg.envs.safety import ForceLimits, ForceShield, ShieldConfig
from telesurg.teleop.robot.playout import Played, Playout, PlayoutConfig
from telesurg.teleop.wire.clock import ClockSync


class State(StrEnum):
    IDLE = "IDLE"
    ENGAGED = "ENGAGED"
    HOLD = "HOLD"
    ESTOP = "ESTOP"


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in the robot base frame (m)."""

    low_m: tuple[float, float, float]
    high_m: tuple[float, float, float]

    def __post_init__(self) -> None:
        if not all(lo < hi for lo, hi in zip(self.low_m, self.high_m, strict=True)):
            raise ValueError(f"box needs low < high on every axis, got {self.low_m} / {self.high_m}")

    def contains(self, p: np.ndarray, margin_m: float = 0.0) -> bool:
        return all(lo - margin_m <= x <= hi + margin_m for x, lo, hi in zip(p, self.low_m, self.high_m, strict=True))

    def entry_fraction(self, start: np.ndarray, end: np.ndarray, margin_m: float) -> float | None:
        """Fraction of the segment start→end at which it enters the box grown by ``margin_m``
        (slab method), or None when it does not enter."""
        t0, t1 = 0.0, 1.0
        for axis in range(3):
            lo, hi = self.low_m[axis] - margin_m, self.high_m[axis] + margin_m
            d = end[axis] - start[axis]
            if abs(d) < 1e-15:
                if not lo <= start[axis] <= hi:
                    return None
                continue
            a, b = (lo - start[axis]) / d, (hi - start[axis]) / d
            t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
            if t0 > t1:
                return None
        return t0


@dataclass(frozen=True)
class SupervisorConfig:
    """Limits of the supervisor (SI units; positions in the robot base frame)."""

    watchdog_s: float = 0.1
    age_slowdown_s: float = 0.3
    max_age_s: float = 0.75
    #: Slack for a command whose send time (robot clock) is after its receive time, beyond the
    #: clock sync's own uncertainty (half its round trip).
    clock_tolerance_s: float = 0.005
    max_tip_speed_m_s: float = 0.1
    max_jaw_rate_per_s: float = 1.0
    workspace_low_m: tuple[float, float, float] = (-0.08, -0.38, -0.10)
    workspace_high_m: tuple[float, float, float] = (0.08, -0.22, 0.02)
    forbidden: tuple[Box, ...] = ()
    #: Distance (m) the setpoint keeps from forbidden regions.
    forbidden_margin_m: float = 0.0005
    limits: ForceLimits = field(default_factory=ForceLimits)
    shield: ShieldConfig = field(default_factory=ShieldConfig)
    #: The de-jitter buffer: accepted commands are played out at send time + a steady delay.
    playout: PlayoutConfig = field(default_factory=PlayoutConfig)
    max_events: int = 1000
    #: Negative controls for the safety harness ONLY (prove its checks can fail): never set these on an arm.
    test_disable_watchdog: bool = False
    test_disable_speed_limit: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.age_slowdown_s < self.max_age_s:
            raise ValueError("need 0 < age_slowdown_s < max_age_s")
        if self.watchdog_s <= 0 or self.max_tip_speed_m_s <= 0 or self.max_jaw_rate_per_s <= 0:
            raise ValueError("watchdog_s, max_tip_speed_m_s and max_jaw_rate_per_s must be positive")
        Box(self.workspace_low_m, self.workspace_high_m)  # validates the workspace


@dataclass(frozen=True)
class Verdict:
    """The supervisor's answer. ``code`` is a short machine-readable reason (counted in telemetry):
    "" when accepted, else one of ``REFUSAL_CODES``."""

    accepted: bool
    reason: str = ""
    session: str = ""
    code: str = ""


REFUSAL_CODES = (
    "estop_requested",
    "estop_latched",
    "foreign_session",
    "out_of_order",
    "invalid_target",
    "clock_ahead",
    "stale",
    "engaged_elsewhere",
    "not_engaged",
)


@dataclass(frozen=True)
class Transition:
    time_s: float
    previous: State
    state: State
    reason: str


@dataclass(frozen=True)
class Setpoint:
    tip_m: np.ndarray
    jaw: float


class Supervisor:
    """See the module docstring. All times are robot-clock seconds."""

    def __init__(self, config: SupervisorConfig | None = None, now_s: float = 0.0) -> None:
        self.config = config or SupervisorConfig()
        self.state = State.IDLE
        self.reason = "started"
        self.session = ""
        self.client = ""
        self.events: deque[Transition] = deque(maxlen=self.config.max_events)
        #: Transitions logged since start (``events`` keeps only the newest ``max_events``).
        self.events_total = 0
        self.shield = ForceShield(self.config.limits, self.config.shield)
        self.playout = Playout(self.config.playout, max_delay_s=self.config.max_age_s)
        self.last_seq = 0
        self.last_sent_console_s = 0.0
        self.last_valid_s = -math.inf
        self._ids = itertools.count(1)
        self._target: np.ndarray | None = None
        self._jaw_target = 0.0
        self._speed_scale = 1.0
        self._setpoint: np.ndarray | None = None
        self._jaw = 0.0
        self._hold_at: np.ndarray | None = None
        self._workspace = Box(self.config.workspace_low_m, self.config.workspace_high_m)
        self.events.append(Transition(now_s, State.IDLE, State.IDLE, "started"))
        self.events_total = 1

    # ------------------------------------------------------------------ control requests
    def engage(self, client: str, now_s: float) -> Verdict:
        if self.state == State.ESTOP:
            return Verdict(False, f"e-stop latched ({self.reason}); reset first", code="estop_latched")
        if self.session:
            return Verdict(False, f"arm is engaged by {self.client}", code="engaged_elsewhere")
        # 128 random bits: on a channel without identities (the command channel without CURVE) the
        # session id is what a command must know; it must not be guessable.
        self.session = f"{next(self._ids)}-{secrets.token_hex(16)}"
        self.client = client
        self.last_seq = 0
        self._target = None
        self.playout.reset()
        self.last_valid_s = now_s  # the watchdog starts now: the console must command within it
        self._transition(State.ENGAGED, f"engaged by {client}", now_s)
        return Verdict(True, session=self.session)

    def disengage(self, session: str, now_s: float) -> Verdict:
        if not self.session or session != self.session:
            return Verdict(False, "not the engaged session", code="not_engaged")
        self.session, self.client = "", ""
        if self.state != State.ESTOP:
            self._transition(State.IDLE, "disengaged", now_s)
        return Verdict(True)

    def estop(self, reason: str, now_s: float) -> Verdict:
        self.session, self.client = "", ""
        self._transition(State.ESTOP, f"e-stop: {reason}", now_s)
        return Verdict(True)

    def reset(self, now_s: float) -> Verdict:
        if self.state != State.ESTOP:
            return Verdict(True, "nothing to reset")
        self._transition(State.IDLE, "e-stop reset", now_s)
        return Verdict(True)

    def rebase(self) -> None:
        """Forget the setpoint and hold point: the next ``tick`` starts from the measured tip (after
        the arm was moved by something other than the supervisor, e.g. a scene reset while idle)."""
        if self.session:
            raise RuntimeError("cannot rebase while a session is engaged")
        self._setpoint = None
        self._hold_at = None
        self._target = None
        self.playout.reset()
        self.shield.reset()

    # ------------------------------------------------------------------ commands
    @property
    def applied_seq(self) -> int:
        """Sequence of the newest command the playout reached (0 before any in this session)."""
        return self.playout.applied.seq if self.playout.applied is not None else 0

    @property
    def applied_sent_console_s(self) -> float:
        """Console send time of that command (s, console clock)."""
        return self.playout.applied.sent_console_s if self.playout.applied is not None else 0.0

    @property
    def applied_robot_s(self) -> float:
        """When the playout reached it (s, robot clock)."""
        return self.playout.applied_robot_s

    def on_command(
        self,
        session: str,
        seq: int,
        sent_console_s: float,
        target_m: np.ndarray,
        jaw: float,
        clutch: bool,
        estop: bool,
        received_s: float,
        clock: ClockSync,
    ) -> Verdict:
        """Judge one decoded command received at ``received_s`` (robot clock)."""
        cfg = self.config
        if estop:
            self.estop(f"flag in command {seq} of session {session}", received_s)
            return Verdict(False, "e-stop requested", code="estop_requested")
        if self.state == State.ESTOP:
            return Verdict(False, "e-stop latched", code="estop_latched")
        if not self.session or session != self.session:
            return Verdict(False, "foreign session", code="foreign_session")
        if seq <= self.last_seq:
            return Verdict(False, f"sequence {seq} not above {self.last_seq}", code="out_of_order")
        target = np.asarray(target_m, dtype=float)
        if target.shape != (3,) or not np.all(np.isfinite(target)) or not (math.isfinite(jaw) and 0 <= jaw <= 1):
            return Verdict(False, "invalid target", code="invalid_target")
        sent_robot_s = sent_console_s + clock.offset_s
        if sent_robot_s > received_s + clock.uncertainty_s + cfg.clock_tolerance_s:
            return Verdict(
                False,
                f"sent {sent_robot_s - received_s:.3f} s after it was received: console clock ahead",
                code="clock_ahead",
            )
        age = received_s - sent_robot_s
        if age > cfg.max_age_s:
            self._enter_hold(f"stale command: {age * 1000:.0f} ms old", received_s)
            return Verdict(False, f"stale: {age * 1000:.0f} ms old", code="stale")
        self.last_seq = seq
        self.last_sent_console_s = sent_console_s
        self.last_valid_s = received_s
        band = cfg.max_age_s - cfg.age_slowdown_s
        self._speed_scale = 1.0 if age <= cfg.age_slowdown_s else max(0.0, (cfg.max_age_s - age) / band)
        played = Played(sent_robot_s, sent_console_s, seq, target, float(jaw))
        if not clutch:
            self._target = None
            self.playout.stop(played, received_s)
            self._enter_hold("clutch released", received_s)
            return Verdict(True, "clutch released: holding")
        self.playout.push(played, received_s)
        if self.state == State.HOLD:
            self._transition(State.ENGAGED, "valid commands resumed", received_s)
        return Verdict(True)

    # ------------------------------------------------------------------ control period
    def tick(
        self,
        now_s: float,
        tip_m: np.ndarray,
        jaw: float,
        dt_s: float,
        force_N: np.ndarray | None = None,
        force_peak_N: float | None = None,
    ) -> Setpoint:
        """The setpoint for this control period of ``dt_s`` seconds, given the measured tip (m),
        jaw opening and contact force (N, base frame) and its peak since the last tick."""
        cfg = self.config
        tip = np.asarray(tip_m, dtype=float)
        if self._setpoint is None:
            self._setpoint, self._jaw = tip.copy(), float(jaw)
        if self.state == State.ENGAGED and now_s - self.last_valid_s > cfg.watchdog_s and not cfg.test_disable_watchdog:
            gap = now_s - self.last_valid_s
            self._enter_hold(f"watchdog: no valid command for {gap * 1000:.0f} ms", now_s)
        if self.state == State.ENGAGED:
            played = self.playout.target_at(now_s)
            if played is not None:
                self._target, self._jaw_target = played
        if self.state != State.ENGAGED or self._target is None:
            if self.state != State.ENGAGED and self._hold_at is None:
                self._hold_at = tip.copy()
            if self._hold_at is not None:
                self._setpoint = self._hold_at.copy()
            step = np.zeros(3)
        else:
            self._hold_at = None
            step = self._target - self._setpoint
            limit = cfg.max_tip_speed_m_s * self._speed_scale * dt_s
            dist = float(np.linalg.norm(step))
            if dist > limit and not cfg.test_disable_speed_limit:
                step *= limit / dist
            jaw_step = float(
                np.clip(self._jaw_target - self._jaw, -cfg.max_jaw_rate_per_s * dt_s, cfg.max_jaw_rate_per_s * dt_s)
            )
            self._jaw = float(np.clip(self._jaw + jaw_step, 0.0, 1.0))
        if force_N is not None:
            step = self.shield.filter(step, np.asarray(force_N, dtype=float), force_peak_N, dt_s)
            # The shield's back-off out of tissue obeys the speed limit too (never a jump).
            cap = cfg.max_tip_speed_m_s * dt_s
            dist = float(np.linalg.norm(step))
            if dist > cap and not cfg.test_disable_speed_limit:
                step *= cap / dist
        new = self._constrain(self._setpoint, self._setpoint + step)
        self._setpoint = new
        if self._hold_at is not None and force_N is not None:
            self._hold_at = new.copy()  # the shield may back a held tool out of tissue
        return Setpoint(new.copy(), self._jaw)

    # ------------------------------------------------------------------ helpers
    def _constrain(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Clamp to the workspace and stop short of any forbidden region along start→end."""
        cfg = self.config
        end = np.clip(end, cfg.workspace_low_m, cfg.workspace_high_m)
        for box in cfg.forbidden:
            if box.contains(start, cfg.forbidden_margin_m):
                # Already inside (e.g. the region was added around the tool): only moves that leave count.
                continue
            t = box.entry_fraction(start, end, cfg.forbidden_margin_m)
            if t is not None:
                end = start + max(0.0, t - 1e-6) * (end - start)
        return end

    def _enter_hold(self, reason: str, now_s: float) -> None:
        """ENGAGED → HOLD (IDLE and ESTOP hold already); the hold point is the measured tip at the
        next tick."""
        if self.state == State.ENGAGED:
            self._transition(State.HOLD, reason, now_s)

    def _transition(self, state: State, reason: str, now_s: float) -> None:
        if state != State.ENGAGED:
            self._target = None
            self.playout.clear()
        if self.state == State.ENGAGED and state != State.ENGAGED:
            self._hold_at = None  # latched at the next tick from the measured tip
        self.events.append(Transition(now_s, self.state, state, reason))
        self.events_total += 1
        self.state = state
        self.reason = reason

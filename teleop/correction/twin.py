"""The local twin: a kinematic model of the arm on the console that responds to the surgeon's
commands at once and is corrected by every telemetry message.

The robot's supervisor moves its setpoint toward the newest commanded target at most
``max_tip_speed_m_s`` (and the arm follows it closely), so the twin is:

- the tool tip the newest telemetry measured (what the robot had done by then), continued toward
  the command the robot had last applied for what is left of its period,
- then moved toward each command sent since (not yet applied by the robot) for one console period
  each, at most ``max_tip_speed_m_s``; commands with the clutch open hold still.

That is where the tool will be once the commands in flight arrive: what the surgeon's hand has
asked for, ahead of the delayed video. Its joints come from the PSM's inverse kinematics with the
measured wrist angles, and its forward-kinematics skeleton (``PsmKinematics.skeleton``) is what
the console draws over the video as a ghost (``telesurg.teleop.video.overlay.draw_ghost``), projected with the
camera pose and intrinsics the telemetry carries. Nothing is simulated or rendered: a few
microseconds per command.

Not modelled: the supervisor's slow-down of late commands (above ``age_slowdown_s``, 0.3 s by
default), forbidden-region and contact shielding, and contact itself: the telemetry corrects those
one delay later.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from telesurg.envs.kinematics import PsmKinematics, psm_kinematics
from telesurg.teleop.wire import protocol as p


@dataclass(frozen=True)
class TwinConfig:
    """``max_tip_speed_m_s``: the robot supervisor's tip speed limit (m/s); ``period_s``: how long
    each command stands before the next (the console's period, s); ``max_pending``: commands kept
    waiting for the robot to apply them (older ones are dropped; 400 = 2 s at 200 Hz)."""

    max_tip_speed_m_s: float = 0.1
    period_s: float = 0.005
    max_pending: int = 400

    def __post_init__(self) -> None:
        if self.max_tip_speed_m_s <= 0 or self.period_s <= 0 or self.max_pending < 1:
            raise ValueError("max_tip_speed_m_s, period_s and max_pending must be positive")


def _toward(x: list[float], target: tuple[float, float, float], step_m: float) -> list[float]:
    dx, dy, dz = target[0] - x[0], target[1] - x[1], target[2] - x[2]
    d = math.sqrt(dx * dx + dy * dy + dz * dz)
    if d <= step_m or d == 0.0:
        return [target[0], target[1], target[2]]
    f = step_m / d
    return [x[0] + dx * f, x[1] + dy * f, x[2] + dz * f]


class LocalTwin:
    """See the module docstring. ``sent`` after each command, ``observe`` on each telemetry."""

    def __init__(self, config: TwinConfig | None = None, kinematics: PsmKinematics | None = None) -> None:
        self.config = config or TwinConfig()
        self.kin = kinematics or psm_kinematics()
        self._sent: OrderedDict[int, tuple[float, float, float] | None] = OrderedDict()
        self._base: list[float] | None = None
        self._wrist = (0.0, 0.0, 0.0)
        self._applied_seq = 0
        self._applied_left_s = 0.0
        self._tip: np.ndarray | None = None
        self.camera: p.Camera | None = None

    def sent(self, seq: int, target_m: np.ndarray | None) -> None:
        """Command ``seq`` left with ``target_m`` (base frame), or with the clutch open (None)."""
        self._sent[seq] = None if target_m is None else (float(target_m[0]), float(target_m[1]), float(target_m[2]))
        while len(self._sent) > self.config.max_pending:
            self._sent.popitem(last=False)
        self._tip = None

    def observe(self, telemetry: p.Telemetry) -> None:
        """Correct the twin with the robot's measured state."""
        self._base = list(telemetry.tool.pos_m)
        q = telemetry.joint_pos
        if len(q) >= 6:
            self._wrist = (float(q[3]), float(q[4]), float(q[5]))
        self._applied_seq = telemetry.last_cmd_seq
        since = telemetry.robot_s - telemetry.last_cmd_accepted_robot_s
        self._applied_left_s = min(max(self.config.period_s - since, 0.0), self.config.period_s)
        while self._sent and next(iter(self._sent)) < self._applied_seq:
            self._sent.popitem(last=False)
        if telemetry.camera is not None:
            self.camera = telemetry.camera
        self._tip = None

    @property
    def ready(self) -> bool:
        return self._base is not None

    def tip_m(self) -> np.ndarray:
        """The twin's tool tip (m, base frame): where the tool will be once every command sent has
        been applied."""
        if self._base is None:
            raise RuntimeError("the twin has no telemetry yet")
        if self._tip is None:
            step = self.config.max_tip_speed_m_s * self.config.period_s
            x = self._base
            applied = self._sent.get(self._applied_seq)
            if applied is not None and self._applied_left_s > 0:
                x = _toward(x, applied, self.config.max_tip_speed_m_s * self._applied_left_s)
            for seq, target in self._sent.items():
                if seq > self._applied_seq and target is not None:
                    x = _toward(x, target, step)
            self._tip = np.array(x)
        return self._tip

    def pending(self) -> int:
        """Commands sent that the robot has not applied yet (as far as the telemetry says)."""
        return sum(1 for s in self._sent if s > self._applied_seq)

    def joints(self) -> np.ndarray:
        """Joints (6,) of the twin: inverse kinematics of its tip with the measured wrist angles."""
        q, _ = self.kin.inverse_position(self.tip_m(), self._wrist)
        return q

    def skeleton_m(self) -> np.ndarray:
        """The twin's forward-kinematics skeleton (5 × 3, m, base frame; ``PsmKinematics.skeleton``)."""
        return self.kin.skeleton(self.joints())

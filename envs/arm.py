"""The simulated patient-side manipulator: the PSM URDF in a ``Sim``, servoed in Cartesian space.

Public quantities are in the robot base frame (metres, radians, newtons). The base is placed so
that the remote centre of motion (RCM) lands on the trocar; its orientation is the world's, so
base-frame axes are parallel to the patient frame (x right, y toward the arm's mount, z up).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from telesurg.envs.geometry import Frame
from telesurg.envs.kinematics import (
    ARM_JOINTS,
    JAW_JOINTS,
    PSM_URDF,
    PsmKinematics,
    psm_kinematics,
)
from telesurg.envs.sim import Sim


@dataclass(frozen=True)
class ArmConfig:
    """Servo settings of the simulated arm.

    ``home_depth_m`` places the default home pose: the tool tip that far below the RCM, shaft
    vertical (environments replace it with the scene's ``home_tip_m`` through ``set_home``).
    ``position_gain`` is Bullet's position-servo gain (fraction of the joint error removed per
    physics step); ``effort_scale`` scales the URDF effort limits used as the motors' maximum force.
    """

    home_depth_m: float = 0.07
    position_gain: float = 0.3
    jaw_position_gain: float = 0.2
    effort_scale: float = 1.0
    #: Wrist-orientation refinements per command. Each command warm-starts from the last, so during
    #: smooth motion one is enough; the tip position is exact regardless.
    ik_iterations: int = 1


class ArmState:
    """One reading of the arm, in the base frame.

    ``joint_positions`` (6,) in the order of ``ARM_JOINTS`` (rad, insertion in m); ``tip_position_m``
    (3,); ``tip_rotation`` (3×3, computed on first use); ``jaw_opening`` in [0, 1] (0 closed).
    """

    __slots__ = (
        "_kin",
        "_rotation",
        "jaw_opening",
        "joint_positions",
        "tip_position_m",
    )

    def __init__(
        self,
        kin: PsmKinematics,
        joint_positions: np.ndarray,
        tip_position_m: np.ndarray,
        jaw_opening: float,
    ) -> None:
        self._kin = kin
        self.joint_positions = joint_positions
        self.tip_position_m = tip_position_m
        self.jaw_opening = jaw_opening
        self._rotation: np.ndarray | None = None

    @property
    def tip_rotation(self) -> np.ndarray:
        if self._rotation is None:
            self._rotation = self._kin.shaft_rotation(self.joint_positions) @ self._kin.wrist_rotation(
                self.joint_positions
            )
        return self._rotation


class SurgicalArm:
    """The PSM in a ``Sim``: reset, Cartesian tool-tip targets through RCM-preserving IK, readings."""

    def __init__(
        self,
        sim: Sim,
        trocar_m: np.ndarray,
        config: ArmConfig | None = None,
        name: str = "psm",
    ) -> None:
        self.sim = sim
        self.config = config or ArmConfig()
        self.name = name
        self.kin = psm_kinematics()
        trocar = np.asarray(trocar_m, dtype=float)
        # The base frame is the world frame translated so that the RCM lands on the trocar.
        self.base = Frame(trocar - self.kin.rcm_in_base_m, np.eye(3))
        # The fixed tool-tip link is merged into the wrist-yaw link (one body less per physics
        # step); ``tip_link`` is that link and ``tip_offset_m`` the tip in its frame.
        sim.load_urdf(name, str(PSM_URDF), self.base.position_m, fixed_base=True, merge_fixed_links=True)
        self._arm_idx = [sim.joint(name, j) for j in ARM_JOINTS]
        self._jaw_idx = [sim.joint(name, j) for j in JAW_JOINTS]
        self._all_idx = self._arm_idx + self._jaw_idx
        self.tip_link = sim.link(name, "wrist_yaw_link")
        self.tip_offset_m = self.kin.tip_offset_m.copy()
        jaw_effort = [j.max_effort for j in self.kin.jaws]
        self._forces = list(self.kin.max_effort * self.config.effort_scale) + [
            e * self.config.effort_scale for e in jaw_effort
        ]
        self._gains = [self.config.position_gain] * len(self._arm_idx) + [self.config.jaw_position_gain] * 2
        for link in range(-1, sim.num_links(name)):
            sim.set_link_damping(name, link, 0.0, 0.0)
        self._down = np.eye(3)
        self.home_q = self.home_for_tip(self.kin.rcm_in_base_m + np.array([0.0, 0.0, -self.config.home_depth_m]))
        self.target_q = self.home_q.copy()
        self.target_jaw = 0.0

    # ------------------------------------------------------------------ frames
    @property
    def trocar_m(self) -> np.ndarray:
        """The RCM (trocar point) in the base frame."""
        return self.kin.rcm_in_base_m.copy()

    def outside_links(self) -> tuple[int, ...]:
        """The arm's links that stay outside the patient (above the RCM): the base, the outer yaw
        and pitch links. Everything from the insertion stage on enters through the trocar."""
        return (-1, self.sim.link(self.name, "yaw_link"), self.sim.link(self.name, "pitch_link"))

    def world_to_base(self, p_world: np.ndarray) -> np.ndarray:
        return self.base.from_parent(p_world)

    def base_to_world(self, p_base: np.ndarray) -> np.ndarray:
        return self.base.to_parent(p_base)

    def home_for_tip(self, tip_m: np.ndarray) -> np.ndarray:
        """Joints putting the tool tip at ``tip_m`` (base frame), jaws pointing down."""
        q, reachable = self.kin.inverse_pose(np.asarray(tip_m, dtype=float), self._down, iterations=8)
        if not reachable:
            raise ValueError(f"home tool-tip position {np.round(tip_m, 4).tolist()} m (base frame) is out of reach")
        return q

    def set_home(self, tip_m: np.ndarray) -> None:
        """Make ``tip_m`` (base frame) the pose ``reset()`` returns to."""
        self.home_q = self.home_for_tip(tip_m)

    # ------------------------------------------------------------------ control
    def reset(self, q: np.ndarray | None = None, jaw_opening: float = 0.0) -> None:
        """Teleport to joints ``q`` (default: home) at rest with the jaw at ``jaw_opening``."""
        q = self.home_q if q is None else self.kin.clamp(np.asarray(q, dtype=float))
        jaw_q = jaw_opening * self.kin.jaw_max_rad
        self.sim.reset_joints(self.name, self._all_idx, [*q, jaw_q, jaw_q])
        self.target_q = q.copy()
        self.target_jaw = float(jaw_opening)
        self._drive()

    def command_tip(self, tip_m: np.ndarray, jaw_opening: float, rotation: np.ndarray | None = None) -> bool:
        """Servo the tool tip toward ``tip_m`` (base frame) with orientation ``rotation`` (3×3,
        base frame; default: jaws pointing straight down) and the jaw toward ``jaw_opening``.

        The wrist holds the orientation as the shaft pivots about the RCM, as a surgical robot
        does when the surgeon translates. Returns whether the target is reachable; if not, the
        arm goes to the solution clamped to its joint limits.
        """
        rot = self._down if rotation is None else rotation
        q, reachable = self.kin.inverse_pose(tip_m, rot, self.target_q, iterations=self.config.ik_iterations)
        self.target_q = q
        self.target_jaw = float(min(max(jaw_opening, 0.0), 1.0))
        self._drive()
        return reachable

    def hold(self) -> None:
        """Servo to the current joint positions (stop where the arm is)."""
        q, _ = self.sim.joint_states(self.name, self._arm_idx)
        self.target_q = q
        self._drive()

    def _drive(self) -> None:
        jaw_q = self.target_jaw * self.kin.jaw_max_rad
        self.sim.drive_joints(
            self.name,
            self._all_idx,
            [*self.target_q.tolist(), jaw_q, jaw_q],
            self._forces,
            self._gains,
        )

    # ------------------------------------------------------------------ readings
    def read(self) -> ArmState:
        """Joint positions and the tool-tip pose from forward kinematics of the measured joints."""
        q_all = self.sim.joint_positions(self.name, self._all_idx)
        q = q_all[:6]
        jaw = min(max((q_all[6] + q_all[7]) / (2 * self.kin.jaw_max_rad), 0.0), 1.0)
        return ArmState(self.kin, np.array(q), self.kin.tip_position(q), jaw)

    def joint_limits(self) -> tuple[np.ndarray, np.ndarray]:
        return self.kin.lower.copy(), self.kin.upper.copy()

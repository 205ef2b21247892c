"""Kinematics of telesurg's patient-side manipulator (PSM): forward kinematics and an
analytic inverse for tool-tip position that keeps the shaft through the remote centre of motion.

Pure numpy; the chain (joint origins, axes, limits) is read from the URDF in ``assets/psm`` so the
simulator and this model cannot drift apart. All quantities are in the robot base frame: metres,
radians, and the joint order of ``ARM_JOINTS``.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from telesurg.envs.geometry import rot_x, rot_y, rot_z

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
PSM_URDF = ASSETS_DIR / "psm" / "psm.urdf"

#: Joints that position and orient the tool, in chain order.
ARM_JOINTS = (
    "outer_yaw",
    "outer_pitch",
    "insertion",
    "tool_roll",
    "wrist_pitch",
    "wrist_yaw",
)
#: The two jaw joints, each opening by up to its upper limit (rad) from closed (0).
JAW_JOINTS = ("jaw_left", "jaw_right")
TIP_FRAME = "tool_tip"


@dataclass(frozen=True)
class JointSpec:
    """One URDF joint: ``origin_m`` in the parent link frame, unit ``axis``, limits in rad or m."""

    name: str
    kind: str
    origin_m: np.ndarray
    axis: np.ndarray
    lower: float
    upper: float
    max_effort: float
    max_velocity: float


def _parse_joints(urdf: Path) -> dict[str, JointSpec]:
    root = ET.parse(urdf).getroot()
    joints: dict[str, JointSpec] = {}
    for j in root.findall("joint"):
        origin = j.find("origin")
        xyz = np.zeros(3)
        if origin is not None:
            xyz = np.array([float(v) for v in origin.get("xyz", "0 0 0").split()])
            rpy = [float(v) for v in origin.get("rpy", "0 0 0").split()]
            if any(abs(v) > 1e-12 for v in rpy):
                raise ValueError(f"{urdf}: joint {j.get('name')} has a rotated origin; the PSM model expects rpy=0")
        axis_el = j.find("axis")
        axis = np.array([float(v) for v in axis_el.get("xyz").split()]) if axis_el is not None else np.zeros(3)
        limit = j.find("limit")
        lo = float(limit.get("lower", 0)) if limit is not None else 0.0
        hi = float(limit.get("upper", 0)) if limit is not None else 0.0
        effort = float(limit.get("effort", 0)) if limit is not None else 0.0
        vel = float(limit.get("velocity", 0)) if limit is not None else 0.0
        joints[j.get("name")] = JointSpec(j.get("name"), j.get("type"), xyz, axis, lo, hi, effort, vel)
    return joints


class PsmKinematics:
    """Forward and inverse kinematics of the PSM from its URDF.

    The tool tip is the ``tool_tip`` frame: the centre of the jaw-tip sphere. ``forward`` gives its
    position (m) and orientation in the base frame; ``inverse_position`` finds joints that put it at
    a point while the wrist holds given angles. Both outer joints rotate about the RCM, so every
    solution keeps the shaft through the trocar; joint limits are always respected (unreachable
    targets are clamped and flagged).
    """

    def __init__(self, urdf: Path = PSM_URDF) -> None:
        spec = _parse_joints(urdf)
        missing = [n for n in (*ARM_JOINTS, *JAW_JOINTS, TIP_FRAME) if n not in spec]
        if missing:
            raise ValueError(f"{urdf}: missing joints {missing}")
        self.joints = tuple(spec[n] for n in ARM_JOINTS)
        self.jaws = tuple(spec[n] for n in JAW_JOINTS)
        self.tip_offset_m = spec[TIP_FRAME].origin_m.copy()
        yaw, pitch, ins, roll, wp, wy = self.joints
        for j in (pitch, ins, roll, wp):
            if np.linalg.norm(j.origin_m) > 1e-12:
                raise ValueError(f"{urdf}: {j.name} must sit at its parent's origin for the RCM model")
        if not (np.allclose(yaw.axis, [0, 1, 0]) and np.allclose(pitch.axis, [1, 0, 0])):
            raise ValueError(f"{urdf}: outer yaw must turn about +y and outer pitch about +x")
        if not (
            np.allclose(ins.axis, [0, 0, -1])
            and np.allclose(roll.axis, [0, 0, 1])
            and np.allclose(wp.axis, [1, 0, 0])
            and np.allclose(wy.axis, [0, 1, 0])
            and np.allclose(wy.origin_m[:2], 0)
            and np.allclose(spec[TIP_FRAME].origin_m[:2], 0)
        ):
            raise ValueError(f"{urdf}: the tool chain does not have the PSM layout this model solves")
        self.rcm_in_base_m = yaw.origin_m.copy()
        self.insertion_axis = ins.axis / np.linalg.norm(ins.axis)
        self.lower = np.array([j.lower for j in self.joints])
        self.upper = np.array([j.upper for j in self.joints])
        self.max_velocity = np.array([j.max_velocity for j in self.joints])
        self.max_effort = np.array([j.max_effort for j in self.joints])
        self.jaw_max_rad = min(j.upper for j in self.jaws)
        self._wrist_len = -float(wy.origin_m[2])
        self._tip_len = -float(self.tip_offset_m[2])
        self._lower = [float(v) for v in self.lower]
        self._upper = [float(v) for v in self.upper]

    # ----------------------------------------------------------------------------- forward
    # The chain is fixed by the checks in __init__ (yaw about y, pitch about x, insertion along
    # -z, roll about z, wrist pitch about x, wrist yaw about y, wrist and tip offsets along -z), so
    # the hot paths below are written out in scalar math: numpy's per-call overhead on 3-vectors
    # would otherwise dominate a control step.

    def _wrist_vector(self, roll: float, pitch: float, yaw: float) -> tuple[float, float, float]:
        """Tip position relative to the shaft's distal end, in the shaft frame (m)."""
        x1 = -self._tip_len * math.sin(yaw)
        z1 = -self._wrist_len - self._tip_len * math.cos(yaw)
        y2 = -z1 * math.sin(pitch)
        z2 = z1 * math.cos(pitch)
        c4, s4 = math.cos(roll), math.sin(roll)
        return c4 * x1 - s4 * y2, s4 * x1 + c4 * y2, z2

    def shaft_rotation(self, q: np.ndarray) -> np.ndarray:
        """Orientation of the insertion link (shaft frame, +z up the shaft) in the base frame."""
        return rot_y(q[0]) @ rot_x(q[1])

    def wrist_rotation(self, q: np.ndarray) -> np.ndarray:
        """Orientation of the tool tip in the shaft frame."""
        return rot_z(q[3]) @ rot_x(q[4]) @ rot_y(q[5])

    def tip_position(self, q: np.ndarray) -> np.ndarray:
        """Tool-tip position (m) in the base frame for joints ``q`` (6,)."""
        wx, wy, wz = self._wrist_vector(q[3], q[4], q[5])
        vz = wz - q[2]
        c2, s2 = math.cos(q[1]), math.sin(q[1])
        uy = wy * c2 - vz * s2
        uz = wy * s2 + vz * c2
        c1, s1 = math.cos(q[0]), math.sin(q[0])
        r = self.rcm_in_base_m
        return np.array([r[0] + c1 * wx + s1 * uz, r[1] + uy, r[2] - s1 * wx + c1 * uz])

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tool-tip position (m) and rotation matrix in the base frame for joints ``q`` (6,)."""
        return self.tip_position(q), self.shaft_rotation(q) @ self.wrist_rotation(q)

    def skeleton(self, q: np.ndarray, shaft_above_rcm_m: float = 0.05) -> np.ndarray:
        """Points (5 × 3, m, base frame) of the tool's visible chain for joints ``q``: on the shaft
        ``shaft_above_rcm_m`` outside the remote centre of motion, the RCM, the shaft's distal end
        (the wrist pitch axis), the wrist yaw axis and the tool tip."""
        rot = self.shaft_rotation(q)
        r = self.rcm_in_base_m
        wrist = rot_z(q[3]) @ rot_x(q[4]) @ np.array([0.0, 0.0, -self._wrist_len])
        return np.stack(
            [
                r + rot @ np.array([0.0, 0.0, shaft_above_rcm_m]),
                r,
                r + rot @ np.array([0.0, 0.0, -q[2]]),
                r + rot @ (np.array([0.0, 0.0, -q[2]]) + wrist),
                self.tip_position(q),
            ]
        )

    # ----------------------------------------------------------------------------- inverse
    def inverse_position(
        self, tip_m: np.ndarray, wrist_rad: tuple[float, float, float] = (0.0, 0.0, 0.0)
    ) -> tuple[np.ndarray, bool]:
        """Joints (6,) that put the tool tip at ``tip_m`` (base frame) with the wrist joints
        (roll, wrist pitch, wrist yaw) at ``wrist_rad``.

        Returns ``(q, reachable)``. Joint limits always hold: when the point is out of reach the
        solution is clamped to the limits and ``reachable`` is False.
        """
        lo, hi = self._lower, self._upper
        roll = min(max(float(wrist_rad[0]), lo[3]), hi[3])
        pitch = min(max(float(wrist_rad[1]), lo[4]), hi[4])
        yaw = min(max(float(wrist_rad[2]), lo[5]), hi[5])
        wx, wy, wz = self._wrist_vector(roll, pitch, yaw)
        r = self.rcm_in_base_m
        px, py, pz = (
            float(tip_m[0]) - r[0],
            float(tip_m[1]) - r[1],
            float(tip_m[2]) - r[2],
        )
        disc = px * px + py * py + pz * pz - wx * wx - wy * wy
        q3 = wz + math.sqrt(max(disc, 0.0))
        vz = wz - q3
        # Pitch (about x) must bring v's y component to p's; yaw (about y) then matches x and z.
        amp = math.hypot(wy, vz)
        ratio = py / amp if amp > 1e-12 else 0.0
        base = math.acos(max(-1.0, min(1.0, ratio)))
        phi = math.atan2(vz, wy)
        best_cost, q1, q2 = math.inf, 0.0, 0.0
        target_angle = math.atan2(px, pz)
        for cand in (_wrap(base - phi), _wrap(-base - phi)):
            uz = wy * math.sin(cand) + vz * math.cos(cand)
            cand1 = _wrap(target_angle - math.atan2(wx, uz))
            cost = abs(cand1) + abs(cand)
            if cost < best_cost:
                best_cost, q1, q2 = cost, cand1, cand
        raw = (q1, q2, q3)
        c1 = min(max(q1, lo[0]), hi[0])
        c2 = min(max(q2, lo[1]), hi[1])
        c3 = min(max(q3, lo[2]), hi[2])
        reachable = disc >= 0.0 and abs(ratio) <= 1.0 and raw == (c1, c2, c3)
        return np.array([c1, c2, c3, roll, pitch, yaw]), reachable

    def inverse_pose(
        self,
        tip_m: np.ndarray,
        rotation: np.ndarray,
        q_guess: np.ndarray | None = None,
        iterations: int = 3,
    ) -> tuple[np.ndarray, bool]:
        """Joints (6,) that put the tool tip at ``tip_m`` with orientation ``rotation`` (3×3, base
        frame; the identity points the jaws straight down, along base -z).

        The outer joints set the tip position for given wrist angles (exactly, by
        ``inverse_position``); the wrist then takes whatever orientation the shaft leaves
        (``rotation = shaft · Rz(roll) · Rx(pitch) · Ry(yaw)``). Alternating the two converges
        geometrically (about 6× per iteration) because the wrist is short next to the insertion
        depth. The tip position is exact whatever the iteration count; warm-started from the
        previous solution (``q_guess``), one iteration per command suffices during smooth motion.
        """
        if iterations < 1:
            raise ValueError("inverse_pose needs at least one iteration")
        r0, r1, r2 = np.asarray(rotation, dtype=float).T.tolist()  # columns
        if q_guess is None:
            q, reachable = self.inverse_position(tip_m)
        else:
            q, reachable = q_guess, False
        for _ in range(iterations):
            # Columns of the shaft rotation Ry(q1)·Rx(q2); the wrist must supply shaftᵀ·rotation.
            ca, sa, cb, sb = (
                math.cos(q[0]),
                math.sin(q[0]),
                math.cos(q[1]),
                math.sin(q[1]),
            )
            s0 = (ca, 0.0, -sa)
            s1 = (sa * sb, cb, ca * sb)
            s2 = (sa * cb, -sb, ca * cb)
            w21 = s2[0] * r1[0] + s2[1] * r1[1] + s2[2] * r1[2]
            w20 = s2[0] * r0[0] + s2[1] * r0[1] + s2[2] * r0[2]
            w22 = s2[0] * r2[0] + s2[1] * r2[1] + s2[2] * r2[2]
            w01 = s0[0] * r1[0] + s0[1] * r1[1] + s0[2] * r1[2]
            w11 = s1[0] * r1[0] + s1[1] * r1[1] + s1[2] * r1[2]
            pitch = math.asin(max(-1.0, min(1.0, w21)))
            yaw = math.atan2(-w20, w22)
            roll = math.atan2(-w01, w11)
            q, reachable = self.inverse_position(tip_m, (roll, pitch, yaw))
        return q, reachable

    def clamp(self, q: np.ndarray) -> np.ndarray:
        return np.clip(q, self.lower, self.upper)


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


@lru_cache(maxsize=4)
def psm_kinematics(urdf: Path = PSM_URDF) -> PsmKinematics:
    """Shared, parsed PSM kinematics (parsing the URDF once per process)."""
    return PsmKinematics(urdf)

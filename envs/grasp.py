"""Grasping by the jaws.

Closing the jaws on a registered grasp point attaches the object to the tool tip (the approach
SurRoL and most surgical simulators take: millimetre-scale friction grasps are not stable in a rigid
solver). A grasp needs the jaws to have been open (above ``open_threshold``) and then closed
(below ``close_threshold``) with the tool tip within ``radius_m`` of the grasp point; opening the
jaws releases it.

* Rigid objects (blocks) are welded to the tool tip, at most ``weld_max_force_N`` strong; they slip
  out when pulled more than ``slip_m`` from the jaws.
* Tissue is elastic: the jaws hold it through a spring-damper between the tool tip and the grasp
  point (``tissue_stiffness_N_m``, ``tissue_damping_N_s_m``), applied at every physics step. Its
  reaction is the pull the tool feels, and it counts toward the tool's contact force. Tissue slips
  from the jaws when the pull exceeds ``tissue_slip_force_N``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from telesurg.envs.arm import SurgicalArm
from telesurg.envs.geometry import quat_to_matrix
from telesurg.envs.sim import Sim


@dataclass(frozen=True)
class GraspConfig:
    radius_m: float = 0.004
    open_threshold: float = 0.5
    close_threshold: float = 0.2
    weld_max_force_N: float = 10.0
    slip_m: float = 0.006
    tissue_stiffness_N_m: float = 400.0
    tissue_damping_N_s_m: float = 1.5
    tissue_slip_force_N: float = 10.0


@dataclass
class Graspable:
    """An object the jaws can hold: body name, link (-1 for the base), grasp point in that link's
    frame (m), and whether it is patient tissue (held elastically; its pull loads the tool)."""

    body: str
    link: int
    point_local_m: np.ndarray
    is_tissue: bool


class Grasper:
    """Tracks the jaws and attaches or releases registered objects."""

    def __init__(self, sim: Sim, arm: SurgicalArm, config: GraspConfig | None = None) -> None:
        self.sim = sim
        self.arm = arm
        self.config = config or GraspConfig()
        self.objects: list[Graspable] = []
        self.held: Graspable | None = None
        self._constraint: int | None = None
        self._points: tuple[Graspable, tuple[float, float, float], tuple[float, float, float]] | None = None
        self._armed = False
        self._pull_world: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def register(self, obj: Graspable) -> None:
        self.objects.append(obj)

    def grasp_point_world(self, obj: Graspable) -> np.ndarray:
        pos, quat = self.sim.link_pose(obj.body, obj.link)
        return pos + quat_to_matrix(quat) @ obj.point_local_m

    def reset(self) -> None:
        self.release()
        self._armed = False

    def release(self) -> None:
        if self._constraint is not None and not self.sim.closed:
            self.sim.remove_constraint(self._constraint)
        self._constraint = None
        self.held = None
        self._pull_world = (0.0, 0.0, 0.0)

    @property
    def holding_tissue(self) -> bool:
        return self.held is not None and self.held.is_tissue

    def apply_tissue_force(self) -> tuple[float, float, float] | None:
        """Before a physics step: apply the elastic grasp force to held tissue. Returns the force
        (N, world frame) the tissue exerts on the tool, or None unless holding tissue."""
        if not self.holding_tissue:
            return None
        obj = self.held
        assert obj is not None
        # The local points as plain floats, converted once per grasp rather than at every physics step.
        if self._points is None or self._points[0] is not obj:
            self._points = (obj, _floats(self.arm.tip_offset_m), _floats(obj.point_local_m))
        _, tip_local, point_local = self._points
        tip, tip_vel = self.sim.link_point_velocity(self.arm.name, self.arm.tip_link, tip_local)
        point, point_vel = self.sim.link_point_velocity(obj.body, obj.link, point_local)
        k, c = self.config.tissue_stiffness_N_m, self.config.tissue_damping_N_s_m
        force = (
            k * (tip[0] - point[0]) + c * (tip_vel[0] - point_vel[0]),
            k * (tip[1] - point[1]) + c * (tip_vel[1] - point_vel[1]),
            k * (tip[2] - point[2]) + c * (tip_vel[2] - point_vel[2]),
        )
        pull = (-force[0], -force[1], -force[2])
        self.sim.apply_force_at(obj.body, obj.link, force, point)
        self.sim.apply_force_at(self.arm.name, self.arm.tip_link, pull, tip)
        self._pull_world = pull
        return pull

    def update(self, jaw_opening: float, tip_world_m: np.ndarray) -> None:
        """Call once per control period with the measured jaw opening and tool-tip position."""
        cfg = self.config
        if self.held is not None:
            if self.held.is_tissue:
                slipped = math.hypot(*self._pull_world) > cfg.tissue_slip_force_N
            else:
                slipped = np.linalg.norm(self.grasp_point_world(self.held) - tip_world_m) > cfg.slip_m
            if jaw_opening > cfg.close_threshold or slipped:
                self.release()
        if jaw_opening >= cfg.open_threshold:
            self._armed = True
        elif jaw_opening <= cfg.close_threshold and self._armed:
            self._armed = False
            best, best_d = None, cfg.radius_m
            for obj in self.objects:
                d = float(np.linalg.norm(self.grasp_point_world(obj) - tip_world_m))
                if d <= best_d:
                    best, best_d = obj, d
            if best is not None:
                self.held = best
                if not best.is_tissue:
                    self.sim.wake(best.body)
                    self._constraint = self.sim.add_weld(
                        self.arm.name,
                        self.arm.tip_link,
                        best.body,
                        best.link,
                        cfg.weld_max_force_N,
                    )


def _floats(v: np.ndarray) -> tuple[float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]))

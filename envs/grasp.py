"""Grasping by the jaws, modelled as a weld between the tool tip and the grasped object.

Closing the jaws on a registered grasp point welds the object to the tool-tip frame (the approach
SurRoL and most surgical simulators take: millimetre-scale friction grasps are not stable in a rigid
solver). A grasp needs the jaws to have been open (above ``open_threshold``) and then closed
(below ``close_threshold``) with the tool tip within ``radius_m`` of the grasp point. Opening the jaws
releases the object; so does the object slipping more than ``slip_m`` from the jaws, which happens
when the weld's force cap (``max_force_N``) is exceeded, as tissue slips from real graspers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.arm import SurgicalArm
from envs.geometry import quat_to_matrix
from envs.sim import Sim


@dataclass(frozen=True)
class GraspConfig:
    radius_m: float = 0.004
    open_threshold: float = 0.5
    close_threshold: float = 0.2
    max_force_N: float = 10.0
    slip_m: float = 0.006


@dataclass
class Graspable:
    """An object the jaws can hold: body name, link (-1 for the base), grasp point in that link's
    frame (m), and whether it is patient tissue (its pull counts toward the tool force)."""

    body: str
    link: int
    point_local_m: np.ndarray
    is_tissue: bool


class Grasper:
    """Tracks the jaws and welds or releases registered objects."""

    def __init__(self, sim: Sim, arm: SurgicalArm, config: GraspConfig | None = None) -> None:
        self.sim = sim
        self.arm = arm
        self.config = config or GraspConfig()
        self.objects: list[Graspable] = []
        self.held: Graspable | None = None
        self._constraint: int | None = None
        self._armed = False

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

    def update(self, jaw_opening: float, tip_world_m: np.ndarray) -> None:
        """Call once per control period with the measured jaw opening and tool-tip position."""
        cfg = self.config
        if self.held is not None:
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
                self._constraint = self.sim.add_fixed_constraint(self.arm.name, self.arm.tip_link, best.body, best.link, cfg.max_force_N)
                self.held = best

    def pull_force_world_N(self) -> np.ndarray:
        """Force (N, world) the held tissue exerts on the tool; zero unless holding tissue."""
        if self.held is None or not self.held.is_tissue or self._constraint is None:
            return np.zeros(3)
        # The constraint's reaction on the tool equals minus the force it applies to the object.
        return -self.sim.constraint_force(self._constraint)

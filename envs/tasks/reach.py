"""Reach: bring the tool tip to a random point above the tissue (success within 3 mm)."""

from __future__ import annotations

import numpy as np

from telesurg.envs.layout import Field
from telesurg.envs.tasks.base import StepResult, Task, distance


class Reach(Task):
    """Goal: the tool-tip position (m, base frame). Targets are drawn uniformly in a box above
    the tissue (world x, y in ±``target_half_width_m``, z between ``target_z_m``)."""

    name = "Reach"
    max_episode_steps = 50
    goal_fields = (Field("tip_pos_m", 3, "m", "tool-tip position (achieved) / target (desired)"),)

    success_distance_m = 0.003
    target_half_width_m = 0.05
    target_z_m = (0.005, 0.06)

    def build(self) -> None:
        self.scene.add_marker("reach_target", 0.002, (0.2, 0.85, 0.3, 1.0))
        self.goal_m = np.zeros(3)

    def reset(self, rng: np.random.Generator) -> None:
        w = self.target_half_width_m
        goal_world = rng.uniform([-w, -w, self.target_z_m[0]], [w, w, self.target_z_m[1]])
        self.sim.reset_base_pose("reach_target", goal_world)
        self.goal_m = self.to_base(goal_world)

    def achieved_goal(self, step: StepResult) -> np.ndarray:
        return step.arm.tip_position_m.copy()

    def desired_goal(self) -> np.ndarray:
        return self.goal_m.copy()

    def is_success(self, achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
        return distance(achieved, desired) <= self.success_distance_m

    def dense_reward(self, achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
        """Minus the distance to the target, in centimetres."""
        return -distance(achieved, desired) / 0.01

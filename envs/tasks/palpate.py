"""Palpate: press the tissue at a marked spot until the contact force is inside a band, and hold."""

from __future__ import annotations

import numpy as np

from telesurg.envs.layout import Field
from telesurg.envs.tasks.base import StepResult, Task


class Palpate(Task):
    """Success: tool tip within ``spot_tolerance_m`` (horizontally) of the spot, contact force within
    ``target_force_N`` ± ``band_half_width_N`` (default 1.5–2.5 N), continuously for ``hold_s``.

    achieved_goal = (tip x, y, z [m], force [N], time held in band [s]);
    desired_goal = (spot x, y, z [m], target force [N], required hold [s]). The hold time is part of
    the achieved goal so success and reward stay pure functions of the goals.
    """

    name = "Palpate"
    max_episode_steps = 75
    obs_fields = (Field("hold_s", 1, "s", "time the force has stayed in band at the spot"),)
    goal_fields = (
        Field(
            "tip_pos_m",
            3,
            "m",
            "tool-tip position (achieved) / spot on the tissue (desired)",
        ),
        Field(
            "force_N",
            1,
            "N",
            "contact force magnitude (achieved) / target force (desired)",
        ),
        Field("hold_s", 1, "s", "time held in band (achieved) / required hold (desired)"),
    )

    target_force_N = 2.0
    band_half_width_N = 0.5
    required_hold_s = 0.5
    spot_tolerance_m = 0.004
    spot_half_width_m = 0.04

    def build(self) -> None:
        self.scene.add_marker("palpate_spot", 0.003, (0.2, 0.35, 0.95, 1.0), flat=True)
        self.spot_m = np.zeros(3)
        self.hold_s = 0.0

    def reset(self, rng: np.random.Generator) -> None:
        w = self.spot_half_width_m
        xy = rng.uniform([-w, -w], [w, w])
        spot_world = np.array([xy[0], xy[1], self.scene.surface_z_m])
        self.sim.reset_base_pose("palpate_spot", spot_world + np.array([0.0, 0.0, 0.0002]))
        self.spot_m = self.to_base(spot_world)
        self.hold_s = 0.0

    @classmethod
    def force_band_N(cls) -> tuple[float, float] | None:
        return (cls.target_force_N - cls.band_half_width_N, cls.target_force_N + cls.band_half_width_N)

    def _in_band(self, tip: np.ndarray, force: float) -> bool:
        near = np.linalg.norm(tip[:2] - self.spot_m[:2]) <= self.spot_tolerance_m
        return bool(near and abs(force - self.target_force_N) <= self.band_half_width_N)

    def update(self, step: StepResult) -> None:
        force = float(np.linalg.norm(step.force_N))
        self.hold_s = self.hold_s + step.period_s if self._in_band(step.arm.tip_position_m, force) else 0.0

    def observation(self) -> dict[str, np.ndarray | float]:
        return {"hold_s": self.hold_s}

    def achieved_goal(self, step: StepResult) -> np.ndarray:
        return np.array([*step.arm.tip_position_m, np.linalg.norm(step.force_N), self.hold_s])

    def desired_goal(self) -> np.ndarray:
        return np.array([*self.spot_m, self.target_force_N, self.required_hold_s])

    def info(self) -> dict[str, object]:
        return {"hold_s": self.hold_s}

    def is_success(self, achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
        a, d = np.asarray(achieved), np.asarray(desired)
        near = np.linalg.norm(a[..., :2] - d[..., :2], axis=-1) <= self.spot_tolerance_m
        in_band = np.abs(a[..., 3] - d[..., 3]) <= self.band_half_width_N + 1e-9
        held = a[..., 4] >= d[..., 4] - 1e-9
        return near & in_band & held

    def dense_reward(self, achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
        """Minus (horizontal distance in cm + force error in N + fraction of the hold still missing)."""
        a, d = np.asarray(achieved), np.asarray(desired)
        dist_cm = np.linalg.norm(a[..., :2] - d[..., :2], axis=-1) / 0.01
        force_err = np.abs(a[..., 3] - d[..., 3])
        missing = 1.0 - np.clip(a[..., 4] / np.maximum(d[..., 4], 1e-9), 0.0, 1.0)
        return -(dist_cm + force_err + missing)

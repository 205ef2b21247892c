"""Trace: follow a path drawn on the tissue with the tool tip, keeping the force inside a band."""

from __future__ import annotations

import numpy as np

from telesurg.envs.geometry import yaw_quat
from telesurg.envs.layout import Field
from telesurg.envs.tasks.base import StepResult, Task


class Trace(Task):
    """A curved path (``path_length_m`` long, random start, heading and curvature) is drawn on the
    tissue. Progress is the arc length (as a fraction of the path) the tip has covered in order
    while within ``lateral_tolerance_m`` of the path with the contact force in
    [``band_low_N``, ``band_high_N``]; it never jumps ahead by more than ``max_skip_m``.
    Success: progress reaches the end (within ``end_tolerance``).

    achieved_goal = (progress fraction); desired_goal = (1.0).
    """

    name = "Trace"
    max_episode_steps = 200
    obs_fields = (
        Field("progress", 1, "1", "fraction of the path traced so far"),
        Field("lookahead_m", 3, "m", "point on the path lookahead_m ahead of the progress"),
    )
    goal_fields = (Field("progress", 1, "1", "fraction traced (achieved) / 1.0 (desired)"),)

    path_length_m = 0.05
    samples = 101
    segments = 16
    lateral_tolerance_m = 0.003
    band_low_N = 0.5
    band_high_N = 2.5
    max_skip_m = 0.006
    lookahead_distance_m = 0.005
    end_tolerance = 0.02

    @classmethod
    def force_band_N(cls) -> tuple[float, float] | None:
        return (cls.band_low_N, cls.band_high_N)

    def build(self) -> None:
        seg_len = self.path_length_m / self.segments
        for i in range(self.segments):
            self.sim.create_body(
                f"trace_seg{i}",
                [
                    {
                        "kind": "box",
                        "half_extents_m": (seg_len / 2 + 0.0002, 0.00075, 0.00015),
                    }
                ],
                collision=False,
                rgba=(0.15, 0.2, 0.75, 1.0),
            )
        self.points_world = np.zeros((self.samples, 3))
        self.arc_m = np.linspace(0.0, self.path_length_m, self.samples)
        self.progress_m = 0.0
        self.out_of_band_s = 0.0

    def reset(self, rng: np.random.Generator) -> None:
        start = np.array([rng.uniform(-0.04, -0.02), rng.uniform(-0.03, 0.03)])
        heading0 = rng.uniform(-0.5, 0.5)
        curvature = rng.uniform(-12.0, 12.0)
        heading = heading0 + curvature * self.arc_m
        # Integrate the heading along the arc (midpoint rule on the fine samples).
        ds = np.diff(self.arc_m)
        mid = heading[:-1] + 0.5 * curvature * ds
        xy = np.vstack(
            [
                start,
                start + np.cumsum(np.stack([np.cos(mid) * ds, np.sin(mid) * ds], axis=1), axis=0),
            ]
        )
        z = self.scene.surface_z_m
        self.points_world = np.column_stack([xy, np.full(self.samples, z)])
        self.points_m = np.array([self.to_base(p) for p in self.points_world])
        seg_len = self.path_length_m / self.segments
        for i in range(self.segments):
            s_mid = (i + 0.5) * seg_len
            p = np.array([np.interp(s_mid, self.arc_m, self.points_world[:, k]) for k in range(3)])
            p[2] = z + 0.00015
            self.sim.reset_base_pose(f"trace_seg{i}", p, yaw_quat(heading0 + curvature * s_mid))
        self.progress_m = 0.0
        self.out_of_band_s = 0.0

    def update(self, step: StepResult) -> None:
        tip = step.arm.tip_position_m
        d = np.hypot(self.points_m[:, 0] - tip[0], self.points_m[:, 1] - tip[1])
        i = int(np.argmin(d))
        force = float(np.linalg.norm(step.force_N))
        in_band = self.band_low_N <= force <= self.band_high_N
        if force > 0.0 and not in_band:
            self.out_of_band_s += step.period_s
        s = float(self.arc_m[i])
        if d[i] <= self.lateral_tolerance_m and in_band and s <= self.progress_m + self.max_skip_m:
            self.progress_m = max(self.progress_m, s)

    def guidance_path_m(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The drawn path (base frame) on the tissue, whose normal is the world's up."""
        up = self.to_base(np.array([0.0, 0.0, 1.0])) - self.to_base(np.zeros(3))
        return self.points_m.copy(), up / np.linalg.norm(up)

    def lookahead_m(self) -> np.ndarray:
        s = min(self.progress_m + self.lookahead_distance_m, self.path_length_m)
        return np.array([np.interp(s, self.arc_m, self.points_m[:, k]) for k in range(3)])

    def observation(self) -> dict[str, np.ndarray | float]:
        return {
            "progress": self.progress_m / self.path_length_m,
            "lookahead_m": self.lookahead_m(),
        }

    def achieved_goal(self, step: StepResult) -> np.ndarray:
        return np.array([self.progress_m / self.path_length_m])

    def desired_goal(self) -> np.ndarray:
        return np.array([1.0])

    def info(self) -> dict[str, object]:
        return {
            "progress": self.progress_m / self.path_length_m,
            "out_of_band_s": self.out_of_band_s,
        }

    def is_success(self, achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
        return np.asarray(achieved)[..., 0] >= np.asarray(desired)[..., 0] - self.end_tolerance

    def dense_reward(self, achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
        """Minus the fraction of the path still to trace."""
        return np.minimum(np.asarray(achieved)[..., 0] - np.asarray(desired)[..., 0], 0.0)

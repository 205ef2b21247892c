"""Virtual fixtures on the console (guidance only: the robot's supervisor keeps the forbidden
regions authoritative, whatever the console sends).

- **Repulsion** from forbidden regions (axis-aligned boxes, base frame, m): a tool target closer
  than ``influence_m`` to a box is pushed straight away from it, by ``stiffness`` × the depth into
  the influence zone, so the surgeon feels the boundary coming (the tool slows and slides along it)
  well before the supervisor's hard clamp.
- **Guidance** along a path (a polyline, base frame, e.g. the Trace task's line): within
  ``capture_m`` of the path, a fraction ``guidance_gain`` of the target's offset from the path is
  removed, so the tool follows the line while the surgeon moves along it.

Both are checked against every box: a correction that would bring the target closer to any
forbidden region than it was is not applied. Guidance never pulls toward a forbidden region.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from telesurg.teleop.correction.stage import Context, Motion

Box = tuple[np.ndarray, np.ndarray]


def box_distance_m(point: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """Distance (m) from ``point`` to the box [low, high] (0 inside)."""
    gap = np.maximum(np.maximum(low - point, point - high), 0.0)
    return float(np.linalg.norm(gap))


def _away(point: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Unit direction from the box's nearest point to ``point`` (out through the nearest face when inside)."""
    nearest = np.clip(point, low, high)
    d = point - nearest
    n = np.linalg.norm(d)
    if n > 1e-12:
        return d / n
    # Inside: leave through the nearest face.
    to_low, to_high = point - low, high - point
    axis_low, axis_high = int(np.argmin(to_low)), int(np.argmin(to_high))
    out = np.zeros(3)
    if to_low[axis_low] < to_high[axis_high]:
        out[axis_low] = -1.0
    else:
        out[axis_high] = 1.0
    return out


def closest_on_path(point: np.ndarray, path_m: np.ndarray) -> np.ndarray:
    """The point of the polyline ``path_m`` (n × 3) nearest ``point``."""
    a, b = path_m[:-1], path_m[1:]
    ab = b - a
    t = np.clip(np.einsum("ij,ij->i", point - a, ab) / np.maximum(np.einsum("ij,ij->i", ab, ab), 1e-18), 0.0, 1.0)
    candidates = a + t[:, None] * ab
    return candidates[int(np.argmin(np.linalg.norm(candidates - point, axis=1)))]


@dataclass(frozen=True)
class FixtureConfig:
    """Repulsion: ``influence_m`` (m), ``stiffness`` (0–1); guidance: ``capture_m`` (m), ``guidance_gain`` (0–1)."""

    influence_m: float = 0.005
    stiffness: float = 0.8
    capture_m: float = 0.004
    guidance_gain: float = 0.5

    def __post_init__(self) -> None:
        if self.influence_m <= 0 or self.capture_m <= 0:
            raise ValueError("influence_m and capture_m must be positive")
        if not (0 <= self.stiffness <= 1 and 0 <= self.guidance_gain <= 1):
            raise ValueError("stiffness and guidance_gain must be in [0, 1]")


@dataclass
class VirtualFixtures:
    """The fixture stage on the tool target (see the module docstring). ``boxes``: forbidden regions
    (base frame; the console takes them from the robot's ``Welcome``); ``path_m``: a guidance path or
    None (the console takes the loaded task's from the robot unless one is configured); ``normal``:
    the unit normal of the surface the path is drawn on, along which guidance does not pull (the
    surgeon keeps control of depth and so of contact force), or None to pull in 3-D."""

    config: FixtureConfig = field(default_factory=FixtureConfig)
    boxes: Sequence[Box] = ()
    path_m: np.ndarray | None = None
    normal: np.ndarray | None = None
    enabled: bool = True
    name: str = "fixtures"

    def reset(self) -> None:
        pass

    def _distances(self, point: np.ndarray) -> np.ndarray:
        return np.array([box_distance_m(point, lo, hi) for lo, hi in self.boxes])

    def _accept(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """``after`` unless it is closer than ``before`` to some forbidden region."""
        if not self.boxes:
            return after
        return after if np.all(self._distances(after) >= self._distances(before) - 1e-12) else before

    def correct(self, target_m: np.ndarray) -> np.ndarray:
        c = self.config
        x = np.asarray(target_m, dtype=float).copy()
        if self.path_m is not None and len(self.path_m) >= 2:
            nearest = closest_on_path(x, self.path_m)
            offset = nearest - x
            if self.normal is not None:
                offset = offset - np.dot(offset, self.normal) * self.normal
            if np.linalg.norm(offset) < c.capture_m:
                x = self._accept(x, x + c.guidance_gain * offset)
        for lo, hi in self.boxes:
            d = box_distance_m(x, lo, hi)
            if d < c.influence_m:
                pushed = x + c.stiffness * (c.influence_m - d) * _away(x, lo, hi)
                x = self._accept(x, pushed)
        return x

    def apply(self, motion: Motion, ctx: Context) -> Motion:
        if motion.target_m is None:
            return motion
        return Motion(motion.t_s, motion.hand_m, self.correct(motion.target_m))

"""Early warnings for the surgeon, raised before the event rather than after it (the HUD shows
them; the robot's supervisor still acts on its own):

- ``force``: the contact force is predicted to cross the warn limit within ``force_horizon_s``
  (a straight line fitted to the last ``force_window_s`` of telemetry), or is above it;
- ``forbidden``: the tool is within ``forbidden_margin_m`` of a forbidden region;
- ``delay``: the one-way command delay is beyond ``max_delay_s`` (300 ms, the bound usually quoted
  as safe for telesurgery);
- ``video``: the newest displayed frame is older than half the stale-video hold's threshold.

Each warning is a short text; ``Alerts.update`` returns the active ones by kind.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AlertConfig:
    """Thresholds of the early warnings (s, m); see the module docstring."""

    force_horizon_s: float = 0.5
    force_window_s: float = 0.2
    forbidden_margin_m: float = 0.005
    max_delay_s: float = 0.3
    video_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.force_horizon_s <= 0 or self.force_window_s <= 0:
            raise ValueError("force_horizon_s and force_window_s must be positive")
        if self.forbidden_margin_m < 0 or self.max_delay_s <= 0 or not 0 < self.video_fraction <= 1:
            raise ValueError("forbidden_margin_m ≥ 0, max_delay_s > 0 and video_fraction in (0, 1]")


def box_distance_m(point: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """Distance from ``point`` to the axis-aligned box [low, high] (0 inside), m."""
    return float(np.linalg.norm(np.maximum(np.maximum(low - point, 0.0), point - high)))


class Alerts:
    """See the module docstring. Feed it once per console tick."""

    def __init__(self, config: AlertConfig | None = None) -> None:
        self.config = config or AlertConfig()
        self._force: deque[tuple[float, float]] = deque()

    def force_in(self, now_s: float, force_N: float, warn_N: float) -> float | None:
        """Seconds until the force reaches ``warn_N`` on its present trend (0 when there already;
        None when it is not heading there within the horizon)."""
        cfg = self.config
        self._force.append((now_s, force_N))
        while self._force and self._force[0][0] < now_s - cfg.force_window_s:
            self._force.popleft()
        if force_N >= warn_N:
            return 0.0
        if len(self._force) < 5 or self._force[-1][0] - self._force[0][0] < 0.5 * cfg.force_window_s:
            return None
        t, f = np.asarray(self._force).T
        slope = float(np.polyfit(t - t[-1], f, 1)[0])
        if slope <= 0:
            return None
        eta = (warn_N - force_N) / slope
        return eta if eta <= cfg.force_horizon_s else None

    def update(
        self,
        now_s: float,
        *,
        force_N: float,
        warn_N: float,
        tool_m: np.ndarray,
        forbidden_m: list[tuple[np.ndarray, np.ndarray]],
        delay_s: float,
        video_age_s: float | None,
        video_hold_s: float,
    ) -> dict[str, str]:
        cfg = self.config
        out: dict[str, str] = {}
        eta = self.force_in(now_s, force_N, warn_N)
        if eta is not None:
            out["force"] = (
                f"force {force_N:.1f} N above the warn limit"
                if eta == 0.0
                else f"force rising: warn limit in {eta * 1e3:.0f} ms"
            )
        if forbidden_m:
            gap = min(box_distance_m(tool_m, lo, hi) for lo, hi in forbidden_m)
            if gap <= cfg.forbidden_margin_m:
                out["forbidden"] = f"{gap * 1e3:.1f} mm from a forbidden region"
        if delay_s > cfg.max_delay_s:
            out["delay"] = f"delay {delay_s * 1e3:.0f} ms > {cfg.max_delay_s * 1e3:.0f} ms"
        if video_age_s is not None and video_age_s > cfg.video_fraction * video_hold_s:
            out["video"] = f"video {video_age_s * 1e3:.0f} ms old"
        return out

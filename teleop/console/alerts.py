"""Early warnings for the surgeon, raised before the event rather than after it (the HUD shows
them; the robot's supervisor still acts on its own):

- ``force``: the contact force, past ``force_floor`` of the warn limit, is predicted to cross it
  within ``force_horizon_s`` (a straight line fitted to the last ``force_window_s`` of telemetry
  in contact, unless a parabola through the same samples stays below the limit over the horizon:
  the press is easing off), or is above it;
- ``forbidden``: the tool is within ``forbidden_margin_m`` of a forbidden region, or heading into
  one: moving on at its present velocity (fitted over ``forbidden_window_s``) it would enter it
  within ``forbidden_horizon_s`` (a fixed margin alone warns only 125 ms ahead at 40 mm/s; passing
  by is not heading in);
- ``delay``: the one-way command delay is beyond ``max_delay_s`` (300 ms, the bound usually quoted
  as safe for telesurgery), or past ``delay_floor`` of it and rising to cross it within
  ``delay_horizon_s`` (fitted over ``delay_window_s``);
- ``video``: the newest displayed frame has been older than half the stale-video hold's threshold
  for ``video_persist_s``.

Each warning is a short text; ``Alerts.update`` returns the active ones by kind. Lead times (event
minus warning) and false warnings per minute are measured by ``bench/early_warnings.py``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

#: A contact force above this (N) is contact (the force trend is fitted to those samples).
CONTACT_N = 0.02


@dataclass(frozen=True)
class AlertConfig:
    """Thresholds of the early warnings (s, m); see the module docstring."""

    force_horizon_s: float = 0.5
    force_window_s: float = 0.2
    #: A rising force is predicted only past this fraction of the warn limit: the first tenth of a
    #: second of a brisk press (its rate before the surgeon eases off) is not a trend yet.
    force_floor: float = 1 / 3
    forbidden_margin_m: float = 0.005
    forbidden_horizon_s: float = 0.4
    forbidden_window_s: float = 0.1
    max_delay_s: float = 0.3
    delay_horizon_s: float = 0.5
    delay_window_s: float = 0.25
    #: A rising delay is warned only past this fraction of ``max_delay_s`` (noise at low delays).
    delay_floor: float = 0.4
    video_fraction: float = 0.5
    #: Old video is warned once it has stayed past the threshold this long: a single frame a little
    #: late (network jitter) is not a stall.
    video_persist_s: float = 0.03

    def __post_init__(self) -> None:
        windows = (self.force_horizon_s, self.force_window_s, self.forbidden_horizon_s, self.forbidden_window_s)
        if min(*windows, self.delay_horizon_s, self.delay_window_s) <= 0:
            raise ValueError("every horizon and window must be positive")
        if self.forbidden_margin_m < 0 or self.max_delay_s <= 0 or not 0 < self.video_fraction <= 1:
            raise ValueError("forbidden_margin_m ≥ 0, max_delay_s > 0 and video_fraction in (0, 1]")
        if not (0 <= self.delay_floor < 1 and 0 <= self.force_floor < 1) or self.video_persist_s < 0:
            raise ValueError("delay_floor and force_floor in [0, 1), video_persist_s ≥ 0")


def box_distance_m(point: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """Distance from ``point`` to the axis-aligned box [low, high] (0 inside), m."""
    return float(np.linalg.norm(np.maximum(np.maximum(low - point, 0.0), point - high)))


def _slope(history: deque[tuple[float, float]], now_s: float, window_s: float, value: float) -> float | None:
    """Append (now, value), drop what is older than ``window_s``, and fit a line: its slope (per s),
    or None with fewer than 5 samples or less than half the window covered."""
    history.append((now_s, value))
    while history and history[0][0] < now_s - window_s:
        history.popleft()
    if len(history) < 5 or history[-1][0] - history[0][0] < 0.5 * window_s:
        return None
    t, v = np.asarray(history).T
    return float(np.polyfit(t - t[-1], v, 1)[0])


class Alerts:
    """See the module docstring. Feed it once per console tick."""

    def __init__(self, config: AlertConfig | None = None) -> None:
        self.config = config or AlertConfig()
        self._force: deque[tuple[float, float]] = deque()
        self._tool: deque[tuple[float, np.ndarray]] = deque()
        self._delay: deque[tuple[float, float]] = deque()
        self._video_old_since: float | None = None

    def force_in(self, now_s: float, force_N: float, warn_N: float) -> float | None:
        """Seconds until the force reaches ``warn_N`` on its present trend (0 when there already;
        None when it is not heading there within the horizon). The trend is fitted to the window's
        samples in contact (the kink where contact begins is not a trend): a line, and a parabola
        too, which, when the rise is slowing, must reach the limit within the horizon as well (a
        press that eases off as it nears its target, a surgeon's or the scripted palpation's, is not
        heading over the limit)."""
        cfg = self.config
        self._force.append((now_s, force_N))
        while self._force and self._force[0][0] < now_s - cfg.force_window_s:
            self._force.popleft()
        if force_N >= warn_N:
            return 0.0
        if force_N < cfg.force_floor * warn_N:
            return None
        t, f = np.asarray(self._force).T
        touching = f > CONTACT_N
        t, f = t[touching] - now_s, f[touching]
        if len(t) < 5 or t[-1] - t[0] < 0.5 * cfg.force_window_s:
            return None
        slope = float(np.polyfit(t, f, 1)[0])
        if slope <= 0:
            return None
        eta = (warn_N - force_N) / slope
        if eta > cfg.force_horizon_s:
            return None
        curve, rate, _ = np.polyfit(t, f, 2)
        if curve < 0:  # slowing: the most the parabola reaches within the horizon
            ahead = min(-rate / (2 * curve), cfg.force_horizon_s)
            if force_N + rate * ahead + curve * ahead**2 < warn_N:
                return None
        return eta

    def forbidden_in(
        self, now_s: float, tool_m: np.ndarray, boxes: list[tuple[np.ndarray, np.ndarray]]
    ) -> float | None:
        """Seconds until the tool enters a forbidden region, moving on as it moves now (its velocity
        fitted over the window): 0 within the margin; None when its straight path over the horizon
        stays out (passing by is not heading in)."""
        cfg = self.config
        self._tool.append((now_s, np.asarray(tool_m, dtype=float).copy()))
        while self._tool and self._tool[0][0] < now_s - cfg.forbidden_window_s:
            self._tool.popleft()
        gap = min(box_distance_m(tool_m, lo, hi) for lo, hi in boxes)
        if gap <= cfg.forbidden_margin_m:
            return 0.0
        if len(self._tool) < 5 or self._tool[-1][0] - self._tool[0][0] < 0.5 * cfg.forbidden_window_s:
            return None
        t = np.array([s for s, _ in self._tool]) - now_s
        velocity = np.polyfit(t, np.array([p for _, p in self._tool]), 1)[0]
        taus = np.linspace(0.0, cfg.forbidden_horizon_s, 41)[1:]
        ahead = np.asarray(tool_m, dtype=float) + taus[:, None] * velocity
        inside = np.zeros(len(taus), dtype=bool)
        for lo, hi in boxes:
            inside |= np.all((ahead >= lo) & (ahead <= hi), axis=1)
        return float(taus[np.argmax(inside)]) if inside.any() else None

    def delay_in(self, now_s: float, delay_s: float) -> float | None:
        """Seconds until the one-way delay crosses ``max_delay_s`` on its present trend (0 beyond it;
        None below half of it or when not heading there within the horizon)."""
        cfg = self.config
        slope = _slope(self._delay, now_s, cfg.delay_window_s, delay_s)
        if delay_s > cfg.max_delay_s:
            return 0.0
        if slope is None or slope <= 0 or delay_s < cfg.delay_floor * cfg.max_delay_s:
            return None
        eta = (cfg.max_delay_s - delay_s) / slope
        return eta if eta <= cfg.delay_horizon_s else None

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
            eta = self.forbidden_in(now_s, tool_m, forbidden_m)
            if eta == 0.0:
                out["forbidden"] = f"{gap * 1e3:.1f} mm from a forbidden region"
            elif eta is not None:
                out["forbidden"] = f"heading into a forbidden region: {gap * 1e3:.0f} mm, {eta * 1e3:.0f} ms away"
        eta = self.delay_in(now_s, delay_s)
        if eta == 0.0:
            out["delay"] = f"delay {delay_s * 1e3:.0f} ms > {cfg.max_delay_s * 1e3:.0f} ms"
        elif eta is not None:
            out["delay"] = (
                f"delay {delay_s * 1e3:.0f} ms rising: over {cfg.max_delay_s * 1e3:.0f} ms in {eta * 1e3:.0f} ms"
            )
        if video_age_s is not None and video_age_s > cfg.video_fraction * video_hold_s:
            if self._video_old_since is None:
                self._video_old_since = now_s
            if now_s - self._video_old_since >= cfg.video_persist_s:
                out["video"] = f"video {video_age_s * 1e3:.0f} ms old"
        else:
            self._video_old_since = None
        return out

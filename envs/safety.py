"""Contact-force limits and the safety shield (pure numpy; shared by envs and the teleop server).

The shield acts on a proposed tool-tip displacement (m, base frame) given the measured contact
force on the tool (N, base frame). It never adds motion into tissue: as the force climbs from the
warn limit toward the hard limit it scales down the component of motion along the contact normal
into tissue, and slows sliding along the surface by the same factor (dragging loaded tissue adds
friction and servo dip); it caps motion into tissue so that the predicted force stays below a
ceiling (hard limit minus a margin) — learning the contact's stiffness from the peak force of each
step, which includes the damping transient — and above the ceiling backs the tool off along the
normal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ForceLimits:
    """Contact-force limits on the tool (N).

    Defaults follow soft-tissue handling studies in laparoscopy, where forces of a few newtons are
    routine and tissue trauma is reported from roughly 5 N upward: warn at 3 N, stop at 6 N.
    """

    warn_N: float = 3.0
    hard_N: float = 6.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.warn_N) and np.isfinite(self.hard_N)):
            raise ValueError(f"force limits must be finite, got warn={self.warn_N} hard={self.hard_N}")
        if not 0.0 < self.warn_N < self.hard_N:
            raise ValueError(f"need 0 < warn_N < hard_N, got warn_N={self.warn_N}, hard_N={self.hard_N}")


@dataclass(frozen=True)
class ShieldConfig:
    """Settings of the force shield.

    ``margin_N``: the shield keeps the force at or below ``hard_N - margin_N`` (the ceiling).
    ``stiffness_N_m``: prior force rise per metre pushed into what the tool touches.
    ``shear_rise_N_m``: prior force rise per metre slid along it while in contact (friction and the
    servo dipping into the tissue while it moves fast).
    Both are raised whenever a step shows a larger rise (measured on the step's peak force).
    ``max_backoff_m``: largest retreat along the normal per call when above the ceiling.
    """

    margin_N: float = 1.0
    stiffness_N_m: float = 300.0
    shear_rise_N_m: float = 150.0
    max_backoff_m: float = 0.001
    min_force_N: float = 0.05


class ForceShield:
    """Projects tool-tip displacements so the contact force does not cross the hard limit."""

    def __init__(self, limits: ForceLimits | None = None, config: ShieldConfig | None = None) -> None:
        self.limits = limits or ForceLimits()
        self.config = config or ShieldConfig()
        ceiling = self.limits.hard_N - self.config.margin_N
        if ceiling <= 0:
            raise ValueError("shield margin_N must be smaller than the hard limit")
        self.ceiling_N = ceiling
        self.reset()

    def reset(self) -> None:
        """Forget what was learned about the previous contact."""
        self._stiffness = self.config.stiffness_N_m
        self._shear = self.config.shear_rise_N_m
        self._last_force: float | None = None
        self._last_into = 0.0
        self._last_slide = 0.0

    @property
    def stiffness_N_m(self) -> float:
        return self._stiffness

    @property
    def shear_rise_N_m(self) -> float:
        return self._shear

    def filter(self, displacement_m: np.ndarray, force_N: np.ndarray, peak_force_N: float | None = None) -> np.ndarray:
        """Return the displacement (m) with motion into tissue and sliding along it limited.

        ``force_N`` is the contact force on the tool (base frame) now; its direction is taken as the
        outward contact normal. ``peak_force_N`` is the largest force magnitude seen since the
        previous call, when known: a step peaks above the force it settles at (tissue damping while
        the servo moves fast), and the limit applies to that peak, so the rise per metre is learned
        from the peak.
        """
        d = np.asarray(displacement_m, dtype=float).copy()
        f = np.asarray(force_N, dtype=float)
        mag = float(np.linalg.norm(f))
        if not np.isfinite(mag):
            # No trustworthy reading: allow no motion at all.
            return np.zeros(3)
        if mag < self.config.min_force_N:
            self._last_force, self._last_into, self._last_slide = None, 0.0, 0.0
            return d
        n = f / mag
        self._learn(mag, peak_force_N)
        into = -float(d @ n)
        tangential = d + into * n
        slide = float(np.linalg.norm(tangential))
        # Above the warn limit, both motions slow down linearly to zero at the ceiling.
        scale = 1.0
        if mag > self.limits.warn_N:
            band = self.ceiling_N - self.limits.warn_N
            scale = max(0.0, (self.ceiling_N - mag) / band) if band > 0 else 0.0
        push = max(into, 0.0) * scale
        slide *= scale
        # Then both are cut together so the predicted peak stays under the ceiling.
        rise = self._stiffness * push + self._shear * slide
        budget = max(0.0, self.ceiling_N - mag)
        if rise > budget:
            cut = budget / rise
            push *= cut
            slide *= cut
        new_into = push if into > 0.0 else into  # moving away from tissue is never restricted
        norm_t = np.linalg.norm(tangential)
        d = -new_into * n + (tangential * (slide / norm_t) if norm_t > 0 else 0.0)
        if mag > self.ceiling_N:
            back = min((mag - self.ceiling_N) / self._stiffness, self.config.max_backoff_m)
            d = d + back * n
            new_into -= back
        self._last_force, self._last_into, self._last_slide = mag, max(new_into, 0.0), slide
        return d

    def _learn(self, mag: float, peak_force_N: float | None) -> None:
        """Raise the rise coefficients when the last step rose more than they predicted."""
        if self._last_force is None:
            return
        peak = mag if peak_force_N is None or not np.isfinite(peak_force_N) else max(mag, float(peak_force_N))
        observed = peak - self._last_force
        predicted = self._stiffness * self._last_into + self._shear * self._last_slide
        if observed > predicted > 1e-9:
            factor = observed / predicted
            self._stiffness *= factor
            self._shear *= factor

"""Contact-force limits and the safety shield (pure numpy; shared by envs and the teleop server).

The shield acts on a proposed tool-tip displacement (m, base frame) given the measured contact
force on the tool (N, base frame). It never adds motion into tissue: as the force climbs from the
warn limit toward the hard limit it scales down the component of motion along the contact normal
into tissue, and slows sliding along the surface by the same factor (dragging loaded tissue adds
friction and servo dip); it caps motion into tissue so that the predicted force stays below a
ceiling (hard limit minus a margin), and above the ceiling backs the tool off along the normal.
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
    ``stiffness_N_m``: prior stiffness of what the tool touches, used to predict the force a
    displacement adds; the shield raises it when it measures a stiffer contact.
    ``max_backoff_m``: largest retreat along the normal per call when above the ceiling.
    """

    margin_N: float = 1.0
    stiffness_N_m: float = 300.0
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
        """Forget the stiffness learned from the previous contact."""
        self._stiffness = self.config.stiffness_N_m
        self._last_force: float | None = None
        self._last_into: float = 0.0

    @property
    def stiffness_N_m(self) -> float:
        return self._stiffness

    def filter(self, displacement_m: np.ndarray, force_N: np.ndarray) -> np.ndarray:
        """Return the displacement (m) with motion into tissue removed or scaled as needed.

        ``force_N`` is the contact force on the tool (base frame); its direction is taken as the
        outward contact normal.
        """
        d = np.asarray(displacement_m, dtype=float).copy()
        f = np.asarray(force_N, dtype=float)
        mag = float(np.linalg.norm(f))
        if not np.isfinite(mag):
            # No trustworthy reading: allow no motion at all.
            return np.zeros(3)
        if mag < self.config.min_force_N:
            self._last_force, self._last_into = None, 0.0
            return d
        n = f / mag
        # Learn a stiffer contact from the last commanded step (force rise per metre pushed in).
        if self._last_force is not None and self._last_into > 1e-5:
            rise = mag - self._last_force
            if rise > 0:
                self._stiffness = max(self._stiffness, rise / self._last_into)
        into = -float(d @ n)
        scale = 1.0
        if mag > self.limits.warn_N:
            scale = max(0.0, (self.ceiling_N - mag) / (self.ceiling_N - self.limits.warn_N))
            # Sliding under load drags tissue and adds friction and servo dip on top of the normal
            # force, so tangential motion slows down with the same factor.
            tangential = d + into * n
            d -= (1.0 - scale) * tangential
        if into > 0.0:
            allowed = max(0.0, (self.ceiling_N - mag) / self._stiffness)
            new_into = min(into * scale, allowed)
            d += (into - new_into) * n
            into = new_into
        if mag > self.ceiling_N:
            back = min((mag - self.ceiling_N) / self._stiffness, self.config.max_backoff_m)
            d += back * n
            into -= back
        self._last_force, self._last_into = mag, max(into, 0.0)
        return d

"""Contact-force limits and the safety shield (pure numpy; shared by envs and the teleop server).

The shield acts on a proposed tool-tip displacement (m, base frame) given the measured contact
force on the tool (N, base frame). It never adds motion into tissue: as the force climbs from the
warn limit toward the hard limit it scales down the component of motion along the contact normal
into tissue, and slows sliding along the surface by the same factor (dragging loaded tissue adds
friction and servo dip); it caps motion into tissue so that the predicted force stays below a
ceiling (hard limit minus a margin) — learning the contact's stiffness from the peak force of each
step, which includes the damping transient — and above the ceiling backs the tool off along the
normal.

The learned rises decay back toward their priors with a time constant (``estimate_decay_s``) when
the caller says how long each step is: one spike (a stick-slip jump, a tissue flap snapping back)
raises them at once, and without the decay they stayed raised for the rest of the episode, which
made the tool crawl along tissue at a third of its commanded speed or less long after the spike
had gone.
A contact that really is stiff raises them again at its next step, since a step that rises more
than predicted is learned from immediately. Only the part of a rise beyond ``learn_floor_N`` is
blamed on the motion: tissue and servo dynamics move the force by that much with no motion at all,
and dividing such a change by a tiny step had raised the estimates a thousandfold.
"""

from __future__ import annotations

import math
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
    Both are raised whenever a step shows a larger rise (measured on the step's peak force), and
    decay back toward these priors with time constant ``estimate_decay_s`` (s; their ratio to the
    prior shrinks by e every ``estimate_decay_s``). ``learn_floor_N``: force changes up to this
    much within one step are not blamed on the step's motion (a robot recording at 500 Hz showed
    rises up to 0.07 N at p99 and 0.23 N at most in periods with no motion at all).
    ``learn_motion_m``: the rises are learned from the force's peak rise over at least this much
    motion (into plus along the tissue; one call in the envs' 40 ms steps, several of the robot's
    2 ms periods), compared with what they predicted for that motion.
    ``max_backoff_m``: largest retreat along the normal per call when above the ceiling.
    """

    margin_N: float = 1.0
    stiffness_N_m: float = 300.0
    shear_rise_N_m: float = 150.0
    max_backoff_m: float = 0.001
    min_force_N: float = 0.05
    estimate_decay_s: float = 1.0
    learn_floor_N: float = 0.1
    learn_motion_m: float = 2e-5

    def __post_init__(self) -> None:
        if not self.estimate_decay_s > 0:
            raise ValueError(f"estimate_decay_s must be positive, got {self.estimate_decay_s}")
        if not self.learn_motion_m >= 0:
            raise ValueError(f"learn_motion_m must be ≥ 0, got {self.learn_motion_m}")
        if not self.learn_floor_N >= 0:
            raise ValueError(f"learn_floor_N must be ≥ 0, got {self.learn_floor_N}")


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
        self._forget_motion()

    def _forget_motion(self) -> None:
        self._ref_force: float | None = None  # the force when the motion being learned from began
        self._peak_since = 0.0
        self._acc_into = 0.0
        self._acc_slide = 0.0

    @property
    def stiffness_N_m(self) -> float:
        return self._stiffness

    @property
    def shear_rise_N_m(self) -> float:
        return self._shear

    def filter(
        self,
        displacement_m: np.ndarray,
        force_N: np.ndarray,
        peak_force_N: float | None = None,
        dt_s: float | None = None,
    ) -> np.ndarray:
        """Return the displacement (m) with motion into tissue and sliding along it limited.

        ``force_N`` is the contact force on the tool (base frame) now; its direction is taken as the
        outward contact normal. ``peak_force_N`` is the largest force magnitude seen since the
        previous call, when known: a step peaks above the force it settles at (tissue damping while
        the servo moves fast), and the limit applies to that peak, so the rise per metre is learned
        from the peak. ``dt_s``: the time (s) since the previous call, for the learned rises' decay
        toward their priors (None: no decay).
        """
        if dt_s is not None and dt_s > 0:
            self._decay(dt_s)
        d = np.asarray(displacement_m, dtype=float).copy()
        f = np.asarray(force_N, dtype=float)
        mag = float(np.linalg.norm(f))
        if not np.isfinite(mag):
            # No trustworthy reading: allow no motion at all.
            return np.zeros(3)
        if mag < self.config.min_force_N:
            self._forget_motion()
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
        if max(new_into, 0.0) + slide <= 0.0:
            self._forget_motion()  # no motion: what the force does next is not this step's doing
        else:
            if self._ref_force is None:
                self._ref_force, self._peak_since = mag, mag
            self._acc_into += max(new_into, 0.0)
            self._acc_slide += slide
        return d

    def _decay(self, dt_s: float) -> None:
        """Move the learned rises toward their priors: their ratio to the prior shrinks by
        exp(−dt / estimate_decay_s) in log space (so a raise by 100× and one by 2× take the same
        time to fade by the same fraction of their log)."""
        c = self.config
        if self._stiffness == c.stiffness_N_m and self._shear == c.shear_rise_N_m:
            return  # nothing learned: the common case, every period of the robot's loop
        keep = math.exp(-dt_s / c.estimate_decay_s)
        self._stiffness = c.stiffness_N_m * (self._stiffness / c.stiffness_N_m) ** keep
        self._shear = c.shear_rise_N_m * (self._shear / c.shear_rise_N_m) ** keep
        if self._stiffness < c.stiffness_N_m * (1 + 1e-6) and self._shear < c.shear_rise_N_m * (1 + 1e-6):
            self._stiffness, self._shear = c.stiffness_N_m, c.shear_rise_N_m  # back at the priors

    def _learn(self, mag: float, peak_force_N: float | None) -> None:
        """Raise the rise coefficients when the motion since the last lesson rose the force more than
        they predicted. A lesson needs ``learn_motion_m`` of motion: at 500 Hz a step of a few µm
        predicts a rise far below the force's own fluctuation, and dividing by it had made one
        0.1 N wobble look like a contact a thousand times stiffer (and so slowed sliding for good)."""
        if self._ref_force is None:
            return
        peak = mag if peak_force_N is None or not np.isfinite(peak_force_N) else max(mag, float(peak_force_N))
        self._peak_since = max(self._peak_since, peak)
        moved = self._acc_into + self._acc_slide
        if moved < self.config.learn_motion_m:
            return
        observed = self._peak_since - self._ref_force - self.config.learn_floor_N
        predicted = self._stiffness * self._acc_into + self._shear * self._acc_slide
        if observed > predicted > 1e-12:
            factor = observed / predicted
            self._stiffness *= factor
            self._shear *= factor
        self._ref_force, self._peak_since = mag, mag
        self._acc_into = self._acc_slide = 0.0

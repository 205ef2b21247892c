"""Operator-motion prediction over the measured delay: where the surgeon's commanded tool target
will be ``horizon_s`` from now, so a command that reaches the robot one delay later asks for what
the surgeon wants then, not what they wanted a delay ago.

Predictors (each ``reset()``, ``update(t_s, position_m)``, ``predict(horizon_s)``):

- ``ZeroOrderHold``: the newest position (no prediction: the baseline);
- ``ConstantVelocity``: newest position + velocity × horizon, the velocity a finite difference
  smoothed over ``smoothing_s``;
- ``AlphaBeta``: an α-β tracker (a steady-state constant-velocity Kalman filter): position and
  velocity corrected by fixed gains each sample, then extrapolated.

``MotionPrediction`` is the stage: it predicts the tool target (base frame) over the context's
delay, at most ``max_horizon_s`` ahead, and starts over whenever the clutch opens.

**Voluntary motion only.** Extrapolating the raw target extrapolates the surgeon's 8–12 Hz tremor
with it: a predictor's velocity estimate follows the tremor, and velocity × 200 ms turns 0.1 mm of
tremor into millimetres (an independent replay measured 17× the tremor band power with α-β and 52×
with the learned predictor). So the predictor sees the target through ``BandLimit`` (cascaded
first-order low-passes on the samples' real times, default 3 × 6 Hz), and the stage adds only
its predicted *change* to the target as it is: output = target + (prediction − band-limited
target). The tremor in the target passes through as it came (the tremor filter, a hand stage, is
what removes it); the prediction adds voluntary motion. A predictor that rejects tremor itself
(``rejects_tremor``: the learned one, trained with tremor in its inputs and the intent as its
target) gets the raw target instead (``CorrectionConfig.prediction_stage``). Chosen by measurement
(``tests/teleop/correction/test_correction.py``; README, Motion correction): at 200 ms on min-jerk strokes
with 0.1 mm tremor at regular and irregular tick times, α-β on the raw target cuts RMS error 60%
but multiplies the tremor band power of the error by 27; band-limited (3 × 6 Hz) it cuts 40% and
the tremor band power is 0.46× that of no prediction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from telesurg.teleop.correction.stage import Context, Motion


class Predictor(Protocol):
    def reset(self) -> None: ...

    def update(self, t_s: float, position_m: np.ndarray) -> None: ...

    def predict(self, horizon_s: float) -> np.ndarray: ...


class ZeroOrderHold:
    """Predicts the newest position."""

    name = "zoh"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None

    def update(self, t_s: float, position_m: np.ndarray) -> None:
        self._x = np.asarray(position_m, dtype=float).copy()

    def predict(self, horizon_s: float) -> np.ndarray:
        if self._x is None:
            raise RuntimeError("no sample yet")
        return self._x.copy()


class _Extrapolator:
    """Position and velocity estimates, extrapolated linearly; subclasses estimate them."""

    def reset(self) -> None:
        self._t: float | None = None
        self._x: np.ndarray | None = None
        self._v = np.zeros(3)

    def predict(self, horizon_s: float) -> np.ndarray:
        if self._x is None:
            raise RuntimeError("no sample yet")
        return self._x + self._v * horizon_s


class ConstantVelocity(_Extrapolator):
    """Newest position + smoothed finite-difference velocity × horizon."""

    name = "cv"

    def __init__(self, smoothing_s: float = 0.05) -> None:
        if smoothing_s <= 0:
            raise ValueError("smoothing_s must be positive")
        self.smoothing_s = smoothing_s
        self.reset()

    def update(self, t_s: float, position_m: np.ndarray) -> None:
        x = np.asarray(position_m, dtype=float)
        if self._t is not None and self._x is not None and t_s > self._t:
            dt = t_s - self._t
            a = dt / (self.smoothing_s + dt)
            self._v = self._v + a * ((x - self._x) / dt - self._v)
        self._t, self._x = t_s, x.copy()


class AlphaBeta(_Extrapolator):
    """α-β tracker: x̂ ← x̂ + v̂·dt, then x̂ += α·r, v̂ += β·r/dt with r the residual."""

    name = "alphabeta"

    def __init__(self, alpha: float = 0.5, beta: float = 0.05) -> None:
        if not (0 < alpha < 1 and 0 < beta < 2 * (2 - alpha)):
            raise ValueError("need 0 < alpha < 1 and 0 < beta < 2(2 − alpha) for stability")
        self.alpha, self.beta = alpha, beta
        self.reset()

    def update(self, t_s: float, position_m: np.ndarray) -> None:
        z = np.asarray(position_m, dtype=float)
        if self._t is None or self._x is None or t_s <= self._t:
            self._t, self._x = t_s, z.copy()
            return
        dt = t_s - self._t
        x = self._x + self._v * dt
        r = z - x
        self._x = x + self.alpha * r
        self._v = self._v + self.beta * r / dt
        self._t = t_s


class BandLimit:
    """``order`` cascaded first-order low-passes at ``cutoff_hz`` stepped by each sample's real time
    (the predictor's input: voluntary motion without the tremor band; see the module docstring)."""

    def __init__(self, cutoff_hz: float = 6.0, order: int = 3) -> None:
        if not cutoff_hz > 0 or order < 1:
            raise ValueError("cutoff_hz must be positive and order at least 1")
        self.tau_s = 1.0 / (2.0 * math.pi * cutoff_hz)
        self.order = order
        self.reset()

    def reset(self) -> None:
        self._t: float | None = None
        self._y: list[np.ndarray] = []

    def update(self, t_s: float, x_m: np.ndarray) -> np.ndarray:
        x = np.asarray(x_m, dtype=float)
        if self._t is None:
            self._y = [x.copy() for _ in range(self.order)]
        else:
            dt = max(t_s - self._t, 0.0)
            a = dt / (self.tau_s + dt)
            for k in range(self.order):
                self._y[k] = self._y[k] + a * (x - self._y[k])
                x = self._y[k]
        self._t = t_s if self._t is None else max(self._t, t_s)
        return self._y[-1].copy()


def _learned() -> Predictor:
    from telesurg.teleop.correction.learned import LearnedPredictor

    return LearnedPredictor()


#: Every predictor by name; ``learned`` loads the shipped network (``telesurg.teleop.correction.learned``).
PREDICTORS = {"zoh": ZeroOrderHold, "cv": ConstantVelocity, "alphabeta": AlphaBeta, "learned": _learned}


@dataclass
class MotionPrediction:
    """The prediction stage on the tool target (see the module docstring)."""

    predictor: Predictor = field(default_factory=AlphaBeta)
    max_horizon_s: float = 0.5
    enabled: bool = True
    name: str = "prediction"
    #: The predictor's input filter (None: the raw target, tremor and all — for comparison only).
    band_limit: BandLimit | None = field(default_factory=BandLimit)

    def reset(self) -> None:
        self.predictor.reset()
        if self.band_limit is not None:
            self.band_limit.reset()

    def apply(self, motion: Motion, ctx: Context) -> Motion:
        if motion.target_m is None:  # clutch open: nothing to predict, and the next stroke starts afresh
            self.reset()
            return motion
        horizon = min(max(ctx.delay_s, 0.0), self.max_horizon_s)
        if self.band_limit is None:
            self.predictor.update(motion.t_s, motion.target_m)
            return Motion(motion.t_s, motion.hand_m, self.predictor.predict(horizon))
        voluntary = self.band_limit.update(motion.t_s, motion.target_m)
        self.predictor.update(motion.t_s, voluntary)
        change = self.predictor.predict(horizon) - voluntary
        return Motion(motion.t_s, motion.hand_m, np.asarray(motion.target_m, dtype=float) + change)


def prediction_rms_m(predictor: Predictor, t_s: np.ndarray, path_m: np.ndarray, horizon_s: float) -> float:
    """RMS error (m) of ``predictor`` predicting ``path_m`` (samples × 3 at times ``t_s``) ``horizon_s``
    ahead, against the path's true position then (linear interpolation; the last horizon is skipped)."""
    predictor.reset()
    errors = []
    for i, t in enumerate(t_s):
        predictor.update(float(t), path_m[i])
        if t + horizon_s > t_s[-1]:
            break
        truth = np.array([np.interp(t + horizon_s, t_s, path_m[:, k]) for k in range(3)])
        errors.append(float(np.sum((predictor.predict(horizon_s) - truth) ** 2)))
    return float(np.sqrt(np.mean(errors)))

"""Motion correction and latency compensation on the surgeon console: stages between the surgeon's
hand and the command that leaves the console (``stage``), each a plain object with the same small
interface, switchable at run time.

- ``scaling``: fixed and delay-adaptive motion scaling;
- ``tremor``: a band-limited Kalman oscillator bank that removes 8–12 Hz tremor without lagging
  voluntary motion (figures from ``measure_tremor``);
- ``prediction``: zero-order hold, constant velocity, α-β and ``learned`` (a small network trained
  by ``train_predictor``, `telesurg train-predictor`) predictors of the tool target over the delay;
- ``fixtures``: repulsion from forbidden regions, guidance along a path (the Trace task's, from
  the robot);
- ``blending``: shipped policies weighted by a state-dependent confidence;
- ``twin``: the local twin, a kinematic model of the arm that answers commands at once and is
  corrected by telemetry, drawn as a ghost over the video;
- ``config`` builds the console's pipeline; ``evaluation`` scores compensation through the real
  stack (``bench/compensation.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from teleop.correction.prediction import PREDICTORS, AlphaBeta, ConstantVelocity, MotionPrediction, ZeroOrderHold
from teleop.correction.scaling import MotionScaling, ScalingConfig
from teleop.correction.stage import Context, Motion, Stage, run_stages
from teleop.correction.tremor import TremorFilter, TremorFilterConfig, band_power, lag_s

__all__ = [
    "PREDICTORS",
    "AlphaBeta",
    "ConstantVelocity",
    "Context",
    "Motion",
    "MotionPrediction",
    "MotionScaling",
    "Pause",
    "ScalingConfig",
    "Stage",
    "TremorFigures",
    "TremorFilter",
    "TremorFilterConfig",
    "ZeroOrderHold",
    "band_power",
    "figure_eight_hand",
    "lag_s",
    "measure_tremor",
    "minimum_jerk_hand",
    "run_stages",
]


def minimum_jerk_hand(t_s: np.ndarray, amplitude_m: float = 0.05, stroke_s: float = 1.5) -> np.ndarray:
    """A synthetic voluntary hand path (m, hand space, samples × 3): minimum-jerk strokes of
    ``amplitude_m`` back and forth on x (``stroke_s`` each), half that on y offset in time, and a
    slow 0.5 Hz, 2 cm sway in z."""

    def strokes(t: np.ndarray, amp: float) -> np.ndarray:
        seg = np.floor(t / stroke_s).astype(int) % 2
        tau = (t % stroke_s) / stroke_s
        mj = 10 * tau**3 - 15 * tau**4 + 6 * tau**5
        return np.where(seg == 0, amp * mj, amp * (1 - mj))

    return np.stack(
        [strokes(t_s, amplitude_m), strokes(t_s + 0.7, amplitude_m / 2), 0.02 * np.sin(2 * np.pi * 0.5 * t_s)], axis=1
    )


@dataclass(frozen=True)
class Pause:
    """A pause of the figure-eight generator: from ``start_s`` to ``end_s`` the hand rests at
    ``point_m`` (hand space), having arrived along the unit vector ``approach``."""

    start_s: float
    end_s: float
    point_m: np.ndarray
    approach: np.ndarray


def figure_eight_hand(
    t_s: np.ndarray, seed: int = 0, amplitude_m: float = 0.04, lap_s: float = 7.0
) -> tuple[np.ndarray, list[Pause]]:
    """A voluntary hand path (m, hand space, samples × 3) the learned predictor never trained on: a
    figure-eight (x = A sin θ, y = A/2 sin 2θ, a 5 mm sway in z) drawn in segments between
    ``pauses_per_lap`` stops a lap, each segment a minimum-jerk move along the curve (its length
    and duration drawn per seed, one lap ≈ ``lap_s``), each stop 0.3–0.9 s; and the pauses."""
    rng = np.random.default_rng(seed)
    knots_t, knots_theta = [0.0], [0.0]
    pause_spans: list[tuple[float, float, float]] = []
    t, theta = 0.0, 0.0
    while t <= float(t_s[-1]):
        move_s = lap_s / 4 * rng.uniform(0.6, 1.4)
        theta_end = theta + 2 * np.pi / 4 * rng.uniform(0.6, 1.4)
        rest_s = rng.uniform(0.3, 0.9)
        knots_t += [t + move_s, t + move_s + rest_s]
        knots_theta += [theta_end, theta_end]
        pause_spans.append((t + move_s, t + move_s + rest_s, theta_end))
        t, theta = t + move_s + rest_s, theta_end
    kt, kth = np.array(knots_t), np.array(knots_theta)
    i = np.clip(np.searchsorted(kt, t_s, side="right") - 1, 0, len(kt) - 2)
    tau = np.clip((t_s - kt[i]) / (kt[i + 1] - kt[i]), 0.0, 1.0)
    th = kth[i] + (kth[i + 1] - kth[i]) * (10 * tau**3 - 15 * tau**4 + 6 * tau**5)

    def curve(angle: np.ndarray) -> np.ndarray:
        return np.stack(
            [amplitude_m * np.sin(angle), amplitude_m / 2 * np.sin(2 * angle), 0.005 * np.sin(angle / 2)], axis=-1
        )

    path = curve(th)
    pauses = []
    for start, end, angle in pause_spans:
        if end > float(t_s[-1]):
            break
        tangent = np.array([amplitude_m * np.cos(angle), amplitude_m * np.cos(2 * angle), 0.0025 * np.cos(angle / 2)])
        pauses.append(Pause(start, end, curve(np.array(angle)), tangent / float(np.linalg.norm(tangent))))
    return path, pauses


@dataclass(frozen=True)
class TremorFigures:
    """Band-power reduction (0–1) of ``band_hz`` in hand + tremor + noise; the lag (s) the filter
    adds to voluntary motion alone (best-fit delay); the largest change (m) it makes to voluntary
    motion alone."""

    band_reduction: float
    lag_s: float
    voluntary_max_change_m: float


def measure_tremor(
    make_filter,
    duration_s: float = 30.0,
    settle_s: float = 5.0,
    period_s: float = 0.005,
    tremor_rms_m: float = 1e-4,
    band_hz: tuple[float, float] = (8.0, 12.0),
    noise_m: float = 2e-5,
    seed: int = 0,
    timing_jitter: float = 0.0,
) -> TremorFigures:
    """Run ``make_filter()`` (a fresh filter with ``update(t_s, hand_m)``) on the scripted surgeon's
    tremor model (``teleop.inputs.Tremor``) over ``minimum_jerk_hand``, and on the voluntary motion
    alone; figures over the samples after ``settle_s``. ``timing_jitter``: sample intervals of
    ``period_s`` × (1 + ``timing_jitter`` × a standard normal), between 0.2 and 3 periods, as a
    console's ticks come (0: regular); the outputs are resampled onto the regular grid to be scored."""
    from teleop.inputs import Tremor

    rng = np.random.default_rng(seed)
    grid = np.arange(0.0, duration_s, period_s)
    if timing_jitter > 0:
        steps = period_s * np.clip(1.0 + timing_jitter * rng.standard_normal(len(grid)), 0.2, 3.0)
        t = np.cumsum(steps) - steps[0]
        t = t[t < duration_s]
    else:
        t = grid
    voluntary = minimum_jerk_hand(t)
    tremor = Tremor(tremor_rms_m, band_hz, rng)
    shaky = voluntary + np.array([tremor.at(x) for x in t]) + rng.normal(0.0, noise_m, voluntary.shape)
    f = make_filter()
    out = np.array([f.update(ti, x) for ti, x in zip(t, shaky, strict=True)])
    g = make_filter()
    clean = np.array([g.update(ti, x) for ti, x in zip(t, voluntary, strict=True)])
    if timing_jitter > 0:

        def regular(x: np.ndarray) -> np.ndarray:
            return np.stack([np.interp(grid, t, x[:, k]) for k in range(x.shape[1])], axis=1)

        voluntary, shaky, out, clean = (regular(x) for x in (voluntary, shaky, out, clean))
    s = int(settle_s / period_s)
    reduction = 1.0 - band_power(out[s:], period_s, band_hz) / band_power(shaky[s:], period_s, band_hz)
    return TremorFigures(
        band_reduction=reduction,
        lag_s=lag_s(voluntary[s:, 0], clean[s:, 0], period_s),
        voluntary_max_change_m=float(np.abs(clean[s:] - voluntary[s:]).max()),
    )

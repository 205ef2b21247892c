"""Synthetic hand signals for the correction stages' tests and benchmarks, and the scripted
surgeon's tremor: minimum-jerk strokes (``minimum_jerk_hand``), a figure-eight with pauses the
learned predictor never trained on (``figure_eight_hand``, ``Pause``), and physiological tremor
(``Tremor``). Positions in metres, times in seconds."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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


class Tremor:
    """Physiological tremor: per axis, three sinusoids in the band with random phases and slowly
    wandering amplitude, scaled to ``rms_m`` (m RMS)."""

    def __init__(self, rms_m: float, band_hz: tuple[float, float], rng: np.random.Generator) -> None:
        self.freqs = rng.uniform(band_hz[0], band_hz[1], size=(3, 3))
        self.phases = rng.uniform(0, 2 * math.pi, size=(3, 3))
        self.amp = rms_m * math.sqrt(2.0 / 3.0)  # three unit sinusoids of equal amplitude → rms_m
        self.wander = rng.uniform(0.2, 0.5, size=3)  # Hz of the amplitude modulation

    def at(self, t_s: float) -> np.ndarray:
        mod = 1.0 + 0.2 * np.sin(2 * math.pi * self.wander * t_s)
        return self.amp * mod * np.sin(2 * math.pi * self.freqs * t_s + self.phases).sum(axis=1) / math.sqrt(1.02)

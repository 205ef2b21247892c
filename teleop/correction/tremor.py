"""Tremor cancellation: a band-limited Kalman oscillator bank (in the BMFLC family: the tremor is
a sum of sinusoids at fixed frequencies spanning the band, with amplitudes and phases estimated
online), per hand axis, that separates tremor from voluntary motion and subtracts the tremor.

Model per axis (state: voluntary position and velocity, then a cos/sin pair per frequency):

- voluntary motion: constant velocity driven by white acceleration noise (``voluntary_accel_m_s2``);
- tremor: one undamped oscillator per frequency of the band (default 8–12 Hz in 0.5 Hz steps),
  each rotating at its frequency and driven by a little noise (``tremor_drift_m``), which lets its
  amplitude and phase wander, i.e. lets it follow tremor between the grid frequencies;
- measurement: hand = voluntary + Σ oscillators + sensor noise (``noise_m``).

The model is time-invariant, so the Kalman gain is computed once (steady state) and each period
costs one small matrix product. Output = hand − Σ estimated oscillators: the voluntary motion is
never filtered, only the estimated tremor subtracted, so it passes without the lag a low-pass would
add. ``teleop.correction.measure_tremor`` gives the band-power reduction and the lag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from teleop.correction.stage import Context, Motion


@dataclass(frozen=True)
class TremorFilterConfig:
    """Band (Hz), grid step (Hz), model noises (m, m/s²) and the nominal period (s: the console's
    command period; the gain is computed for it)."""

    band_hz: tuple[float, float] = (8.0, 12.0)
    step_hz: float = 0.5
    #: Tuned on the scripted surgeon's hand (min-jerk reaches, 0.1 mm RMS 8–12 Hz tremor, 20 µm
    #: sensor noise): lower voluntary noise or more drift removes more tremor but bends the
    #: voluntary motion more (``measure_tremor`` reports both).
    voluntary_accel_m_s2: float = 0.5
    tremor_drift_m: float = 5e-4
    noise_m: float = 2e-5
    period_s: float = 0.005

    def __post_init__(self) -> None:
        lo, hi = self.band_hz
        if not 0 < lo < hi < 0.5 / self.period_s:
            raise ValueError(f"band {self.band_hz} Hz must lie within (0, Nyquist = {0.5 / self.period_s} Hz)")
        if min(self.step_hz, self.voluntary_accel_m_s2, self.tremor_drift_m, self.noise_m) <= 0:
            raise ValueError("step_hz and the model noises must be positive")


def _steady_gain(f: np.ndarray, h: np.ndarray, q: np.ndarray, r: float, iterations: int = 20000) -> np.ndarray:
    p = np.eye(len(f)) * 1e-6
    gain = np.zeros(len(f))
    for _ in range(iterations):
        p = f @ p @ f.T + q
        s = float(h @ p @ h) + r
        new = p @ h / s
        p = p - np.outer(new, h @ p)
        if np.allclose(new, gain, rtol=1e-10, atol=1e-14):
            break
        gain = new
    return gain


@dataclass
class TremorFilter:
    """The tremor canceller as a console stage (hand space; see the module docstring)."""

    config: TremorFilterConfig = field(default_factory=TremorFilterConfig)
    enabled: bool = True
    name: str = "tremor"

    def __post_init__(self) -> None:
        c = self.config
        lo, hi = c.band_hz
        self.freqs_hz = np.arange(lo, hi + 1e-9, c.step_hz)
        n = 2 + 2 * len(self.freqs_hz)
        dt = c.period_s
        f = np.eye(n)
        f[0, 1] = dt
        q = np.zeros((n, n))
        qa = c.voluntary_accel_m_s2**2
        q[:2, :2] = qa * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
        for k, hz in enumerate(self.freqs_hz):
            w = 2 * math.pi * hz * dt
            i = 2 + 2 * k
            f[i : i + 2, i : i + 2] = [[math.cos(w), -math.sin(w)], [math.sin(w), math.cos(w)]]
            q[i, i] = q[i + 1, i + 1] = c.tremor_drift_m**2 * dt
        h = np.zeros(n)
        h[0] = 1.0
        h[2::2] = 1.0
        self._f, self._h = f, h
        self._gain = _steady_gain(f, h, q, c.noise_m**2)
        self._tremor_rows = h.copy()
        self._tremor_rows[0] = 0.0
        self.reset()

    def reset(self) -> None:
        """Start over (the hand may have jumped while the clutch was open)."""
        self._x: np.ndarray | None = None  # (axes, state)

    def estimate(self) -> np.ndarray:
        """The current tremor estimate (m, per axis)."""
        return np.zeros(3) if self._x is None else self._x @ self._tremor_rows

    def update(self, t_s: float, hand_m: np.ndarray) -> np.ndarray:
        """Feed one hand sample (m, hand space; one per ``period_s``); returns it without the tremor."""
        z = np.asarray(hand_m, dtype=float)
        if self._x is None:
            self._x = np.zeros((3, len(self._f)))
            self._x[:, 0] = z
        x = self._x @ self._f.T
        innovation = z - x @ self._h
        self._x = x + innovation[:, None] * self._gain[None, :]
        return z - self._x @ self._tremor_rows

    def apply(self, motion: Motion, ctx: Context) -> Motion:
        return motion.with_hand(self.update(motion.t_s, motion.hand_m))


def band_power(signal: np.ndarray, period_s: float, band_hz: tuple[float, float]) -> float:
    """Power of ``signal`` (samples × axes, or samples) within ``band_hz`` (periodogram, Hann window)."""
    x = np.asarray(signal, dtype=float)
    x = x.reshape(len(x), -1) - x.reshape(len(x), -1).mean(axis=0)
    window = np.hanning(len(x))[:, None]
    spectrum = np.abs(np.fft.rfft(x * window, axis=0)) ** 2
    freqs = np.fft.rfftfreq(len(x), period_s)
    mask = (freqs >= band_hz[0]) & (freqs <= band_hz[1])
    return float(spectrum[mask].sum())


def lag_s(reference: np.ndarray, delayed: np.ndarray, period_s: float, max_lag_s: float = 0.1) -> float:
    """The delay (s) of ``delayed`` behind ``reference`` (1-D): the shift, to a sub-sample by
    parabolic interpolation, that best aligns their velocities."""
    a, b = np.diff(reference), np.diff(delayed)
    max_k = int(max_lag_s / period_s)
    scores = np.array([float(a[: len(a) - k] @ b[k:]) / (len(a) - k) for k in range(max_k + 1)])
    k = int(np.argmax(scores))
    if 0 < k < max_k:
        y0, y1, y2 = scores[k - 1 : k + 2]
        denom = y0 - 2 * y1 + y2
        k = k + (0.5 * (y0 - y2) / denom if denom else 0.0)
    return k * period_s

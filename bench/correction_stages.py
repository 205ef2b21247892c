"""Figures of the console's correction stages alone, on synthetic hand motion (no network).

    .venv/bin/python bench/correction_stages.py          # writes bench/correction_stages.json (~10 s)

- Tremor: the scripted surgeon's tremor model (0.1 mm RMS per axis, 8–12 Hz, wandering amplitude)
  plus 20 µm sensor noise on minimum-jerk hand strokes, 30 s at 200 Hz, 5 seeds: the 8–12 Hz band
  power removed, the lag added to voluntary motion alone and the largest change made to it; next
  to one-pole low-passes (the plain filter the issue rules out) for reference.
- Prediction: RMS error (mm, tool space = hand × 0.2) of predicting the commanded tool target
  100–500 ms ahead on the same strokes, per predictor, against holding the last position.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from telesurg.teleop.correction import TremorFilter, measure_tremor, minimum_jerk_hand
from telesurg.teleop.correction.prediction import AlphaBeta, ConstantVelocity, ZeroOrderHold, prediction_rms_m

HERE = Path(__file__).resolve().parent


class LowPass:
    """One-pole low-pass at ``cutoff_hz`` (200 Hz samples): the baseline a tremor filter must beat."""

    def __init__(self, cutoff_hz: float, period_s: float = 0.005) -> None:
        self.a = period_s / (period_s + 1 / (2 * np.pi * cutoff_hz))
        self.y: np.ndarray | None = None

    def update(self, t_s: float, x: np.ndarray) -> np.ndarray:
        self.y = x.copy() if self.y is None else self.y + self.a * (x - self.y)
        return self.y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="tremor seeds (default 5)")
    parser.add_argument("--json", default=str(HERE / "correction_stages.json"), help="JSON path")
    args = parser.parse_args()

    filters = {
        "tremor filter (Kalman oscillator bank)": TremorFilter,
        "low-pass 4 Hz (reference)": lambda: LowPass(4.0),
        "low-pass 2 Hz (reference)": lambda: LowPass(2.0),
    }
    tremor: dict[str, dict[str, float]] = {}
    print(f"{'tremor':42s} {'band removed':>13s} {'lag ms':>8s} {'voluntary max change µm':>24s}")
    for name, make in filters.items():
        figs = [measure_tremor(make, seed=seed) for seed in range(args.seeds)]
        row = {
            "band_reduction_mean": float(np.mean([f.band_reduction for f in figs])),
            "band_reduction_min": float(np.min([f.band_reduction for f in figs])),
            "lag_ms_max": float(np.max([f.lag_s for f in figs]) * 1e3),
            "voluntary_max_change_um": float(np.max([f.voluntary_max_change_m for f in figs]) * 1e6),
        }
        tremor[name] = row
        print(
            f"{name:42s} {row['band_reduction_mean'] * 100:12.1f}% {row['lag_ms_max']:8.2f} "
            f"{row['voluntary_max_change_um']:24.1f}"
        )

    t = np.arange(0.0, 30.0, 0.005)
    path = 0.2 * minimum_jerk_hand(t) + np.random.default_rng(0).normal(0, 2e-6, (len(t), 3))
    horizons = (0.1, 0.2, 0.3, 0.5)
    prediction: dict[str, dict[str, float]] = {}
    print(f"\n{'prediction RMS error (mm)':28s}" + "".join(f"{h * 1e3:>9.0f} ms" for h in horizons))
    for predictor in (ZeroOrderHold(), ConstantVelocity(), AlphaBeta()):
        errs = {f"{h * 1e3:.0f}ms": prediction_rms_m(predictor, t, path, h) * 1e3 for h in horizons}
        prediction[predictor.name] = errs
        print(f"{predictor.name:28s}" + "".join(f"{v:12.2f}" for v in errs.values()))

    out = {
        "tremor": tremor,
        "tremor_target": {"band_reduction_min": 0.6, "lag_ms_max": 10.0},
        "prediction_rms_mm": prediction,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "command_line": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()

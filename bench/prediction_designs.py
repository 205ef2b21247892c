"""How should latency compensation keep the surgeon's tremor out of its prediction? Candidate
designs of the prediction stage, offline (no robot, no network), on the console's irregular ticks.

    .venv/bin/python bench/prediction_designs.py            # ~3 min, writes bench/prediction_designs.json

Each design turns the tool target (``train_predictor.held_out_run``, the learned predictor's own
held-out generators: hand path × motion scale, with the scripted surgeon's 0.1 mm RMS 8–12 Hz hand
tremor and 20 µm noise, sampled at 5 ms ± 40% ticks) into the command sent now for the
robot to reach 200 ms later. Scored against the tremor-free intent 200 ms later: RMS and p99 error
(mm), the 8–12 Hz power of the error (Welch) as a ratio to no prediction, and on the figure-eight
the largest overshoot past a pause point (mm). Generators: ``minimum_jerk_hand`` strokes and the
figure-eight with pauses (``figure_eight_hand``), the voluntary hand divided by the scale (× 0.2), so
the tool's path is the same at scales 0.2 and 1.0 and the tremor on the tool 5× larger at 1.0.

Designs (``output`` is what the stage sends):

- ``none``: the target as it is;
- ``α-β raw``: α-β on the target, extrapolated (tremor and all);
- ``α-β band-limited``: the shipped α-β stage: α-β on the target through three first-order 6 Hz
  low-passes on real times; output = target + (prediction − band-limited target);
- ``α-β, 2 × 8 Hz``: the same with a lighter band limit (less lag, less rejection);
- ``α-β on tremor-filter output``: the tremor filter (a Kalman oscillator bank) as the
  predictor's input instead of the low-passes;
- ``tremor-filter velocity``: target + the tremor filter's own voluntary velocity × 200 ms;
- ``learned``: the shipped learned predictor (trained with tremor in its inputs) on the raw target;
- ``tremor filter`` / ``tremor filter + …``: the tremor filter as a hand stage first (prediction
  must then add no tremor to what the filter left: ``× stages``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from telesurg.teleop.correction.config import CorrectionConfig
from telesurg.teleop.correction.prediction import AlphaBeta, BandLimit, MotionPrediction
from telesurg.teleop.correction.stage import Context, Motion
from telesurg.teleop.correction.tremor import TremorFilter, tremor_power_um2
from telesurg.teleop.harness.train_predictor import held_out_run

HERE = Path(__file__).resolve().parent
HORIZON_S = 0.2
PERIOD_S = 0.005


class _TremorFiltered:
    """The tremor filter as the predictor's input filter (``BandLimit``'s interface)."""

    def __init__(self) -> None:
        self.f = TremorFilter()

    def reset(self) -> None:
        self.f.reset()

    def update(self, t_s: float, x_m: np.ndarray) -> np.ndarray:
        return self.f.update(t_s, x_m)


def _stage(stage: MotionPrediction) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def run(t: np.ndarray, target: np.ndarray) -> np.ndarray:
        stage.reset()
        ctx = Context(period_s=PERIOD_S, delay_s=HORIZON_S)
        moves = (Motion(float(ti), np.zeros(3), x) for ti, x in zip(t, target, strict=True))
        return np.array([stage.apply(m, ctx).target_m for m in moves])

    return run


def _filter_velocity(t: np.ndarray, target: np.ndarray) -> np.ndarray:
    f = TremorFilter()
    out = np.empty_like(target)
    for i, (ti, x) in enumerate(zip(t, target, strict=True)):
        f.update(float(ti), x)
        out[i] = x + f._x[:, 1] * HORIZON_S  # the voluntary velocity state
    return out


def designs() -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    def make(band_limit) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        return _stage(MotionPrediction(AlphaBeta(), band_limit=band_limit))

    return {
        "none": lambda t, x: x.copy(),
        "α-β raw": make(None),
        "α-β band-limited (shipped α-β)": make(BandLimit(6.0, 3)),
        "α-β, 2 × 8 Hz": make(BandLimit(8.0, 2)),
        "α-β on tremor-filter output": make(_TremorFiltered()),
        "tremor-filter velocity": _filter_velocity,
        "learned (shipped)": _stage(CorrectionConfig(prediction="learned").prediction_stage()),
    }


def figures(t: np.ndarray, out: np.ndarray, intent: np.ndarray, pauses) -> dict[str, float]:
    keep = (t + HORIZON_S <= t[-1]) & (t > 1.0)
    future = np.stack([np.interp(t[keep] + HORIZON_S, t, intent[:, k]) for k in range(3)], axis=1)
    err = out[keep] - future
    norm = np.linalg.norm(err, axis=1)
    overshoot = []
    for start, end, point, approach in pauses:
        window = (t >= start - HORIZON_S) & (t <= end - HORIZON_S)
        if window.any():
            overshoot.append(max(0.0, float(((out[window] - point) @ approach).max())) * 1e3)
    return {
        "rms_mm": float(np.sqrt(np.mean(norm**2))) * 1e3,
        "p99_mm": float(np.percentile(norm, 99)) * 1e3,
        "tremor_um2": tremor_power_um2(t[keep], err),
        "overshoot_mm": max(overshoot) if overshoot else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", default=str(HERE / "prediction_designs.json"))
    args = parser.parse_args()
    started = time.monotonic()
    filtered: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {}
    for name, run in designs().items():

        def after_filter(t: np.ndarray, x: np.ndarray, run=run) -> np.ndarray:
            f = TremorFilter()
            return run(t, np.array([f.update(float(ti), xi) for ti, xi in zip(t, x, strict=True)]))

        filtered["tremor filter" if name == "none" else f"tremor filter + {name}"] = after_filter
    methods = designs() | filtered
    cells = []
    for generator in ("min-jerk", "figure-eight"):
        for scale in (0.2, 1.0):
            runs = [held_out_run(generator, scale, seed) for seed in range(args.seeds)]
            rows = {}
            for name, method in methods.items():
                per_run = [figures(t, method(t, x), intent, pauses) for t, x, intent, pauses in runs]
                rows[name] = {k: float(np.mean([r[k] for r in per_run])) for k in per_run[0]}
            base, filt = rows["none"], rows["tremor filter"]
            print(f"\n{generator} @ {scale:g}: 200 ms ahead, mean of {args.seeds} seeds")
            head = f"{'design':>46s} {'RMS mm':>7s} {'cut':>5s} {'p99 mm':>7s}"
            print(f"{head} {'× none':>7s} {'× stages':>8s} {'overshoot':>9s}")
            for name, r in rows.items():
                stages = filt if name.startswith("tremor filter") else base
                cell = {
                    "generator": generator,
                    "motion_scale": scale,
                    "design": name,
                    **r,
                    "rms_cut": 1 - r["rms_mm"] / base["rms_mm"],
                    "tremor_ratio": r["tremor_um2"] / base["tremor_um2"],
                    "tremor_ratio_vs_stages": r["tremor_um2"] / stages["tremor_um2"],
                }
                cells.append(cell)
                print(
                    f"{name:>46s} {r['rms_mm']:7.3f} {cell['rms_cut']:5.0%} {r['p99_mm']:7.3f} "
                    f"{cell['tremor_ratio']:6.2f}× {cell['tremor_ratio_vs_stages']:7.2f}× {r['overshoot_mm']:7.2f}mm"
                )
    out = {
        "cells": cells,
        "settings": {"horizon_s": HORIZON_S, "seeds": args.seeds, "ticks": "5 ms ± 40%"},
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "wall_s": time.monotonic() - started,
    }
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()

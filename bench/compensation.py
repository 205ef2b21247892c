"""Tool-tip tracking error, task success and completion time against delay, per correction and
compensation method, through the real stack.

    .venv/bin/python bench/compensation.py                     # writes bench/compensation.json + .png
    .venv/bin/python bench/compensation.py --seeds 2 --delays 0 0.2 --scenarios scripted/Reach   # a quick look

One `telesurg robot` (SCHED_RR, recording) serves every run. Each run is an in-process console
driven by one scenario's generator (``teleop.correction.evaluation``), plus the scripted surgeon's
0.1 mm RMS 8–12 Hz tremor (seeded), through the link emulator on every channel
(``delay=D jitter=10%``, TCP-faithful) with one method's stages on:

- ``min-jerk/Reach``: minimum-jerk strokes (5 cm of hand, 1 cm of tool), open loop;
- ``scripted/Reach``, ``scripted/Trace``: the scripted surgeon doing the task, closing its loop on
  the delayed telemetry (``twin loop``: on the console's local twin instead);
- ``file/Reach``, ``file/Trace``: shipped voluntary hand traces (``assets/traces/voluntary``),
  replayed open loop on the task seed they were recorded on.

The *intended path* is the surgeon's pre-tremor hand trajectory mapped through the console's
hand → tool mapping (its scale and the endoscope alignment, anchored where each stroke began).
The error is the distance from the robot's measured tool tip (its MCAP, every 2 ms period) to the
intended position at the same moment; RMS and p99 per run, then mean and 95% interval (t) over
seeds, with task success (rate) and completion time (scripted: to the task's success; replays:
the trace's length). Hard-limit violations: periods with contact force above the hard limit.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from teleop.correction.evaluation import METHODS, SCENARIOS, TRACE_S, recording_robot, run_one, score
from teleop.recorder import read_topic
from teleop.records import TOPIC_STATE

HERE = Path(__file__).resolve().parent
#: Methods per generator: the twin loop needs a surgeon that closes its loop (scripted).
GENERATOR_METHODS = {
    "min-jerk": [
        "none",
        "prediction α-β",
        "prediction CV",
        "prediction learned",
        "tremor filter",
        "tremor + α-β",
        "α-β, raw target",
        "learned, raw target",
    ],
    "scripted": ["none", "prediction α-β", "prediction learned", "twin loop"],
    "trace-file": ["none", "prediction α-β", "prediction learned"],
}


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% interval (Student t)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), math.nan
    t95 = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26}.get(len(v), 2.0)
    return float(v.mean()), float(t95 * v.std(ddof=1) / math.sqrt(len(v)))


def plot(cells: dict[str, dict[str, Any]], scenarios: list[str], png: Path) -> None:
    """RMS error against delay per method, one panel per scenario: mean ± 95% interval, and the
    median as a hollow marker (a single run far off moves the mean of 5). The same colour for a
    method in every panel; a panel's y range ends at twice its largest median."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = dict(zip(METHODS, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    fig, axes = plt.subplots(1, len(scenarios), figsize=(4.2 * len(scenarios), 3.8), squeeze=False)
    for ax, name in zip(axes[0], scenarios, strict=True):
        rows = [c for c in cells.values() if c["scenario"] == name]
        top = 0.0
        for method in dict.fromkeys(c["method"] for c in rows):
            sel = sorted((c for c in rows if c["method"] == method), key=lambda c: c["delay_s"])
            xs = [c["delay_s"] * 1e3 for c in sel]
            es = [0 if math.isnan(c["rms_ci95_mm"]) else c["rms_ci95_mm"] for c in sel]
            medians = [float(np.median([r["rms_mm"] for r in c["runs"]])) for c in sel]
            top = max(top, *medians)
            colour = colours.get(method)
            ax.errorbar(xs, [c["rms_mm"] for c in sel], yerr=es, marker="o", capsize=3, label=method, color=colour)
            ax.plot(xs, medians, linestyle="none", marker="o", mfc="none", ms=9, color=colour)
        ax.set_ylim(0, 2.0 * top)
        ax.set_title(name)
        ax.set_xlabel("one-way delay (ms)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("RMS tool-tip tracking error (mm)")
    fig.text(0.005, 0.01, "filled: mean ± 95% interval over seeds; hollow: median", fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delays", nargs="+", type=float, default=[0.0, 0.1, 0.2, 0.3, 0.5], help="one-way (s)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per cell (default 5)")
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), help="only these (where they apply)")
    parser.add_argument("--json", default=str(HERE / "compensation.json"), help="JSON path (the PNG goes beside it)")
    parser.add_argument("--keep", metavar="DIR", help="keep the robot's recording and log in DIR")
    parser.add_argument(
        "--merge", action="store_true", help="replace only these cells in the existing --json (and redraw the plot)"
    )
    parser.add_argument("--replot", action="store_true", help="only redraw the plot from the existing --json")
    args = parser.parse_args()
    if args.replot:
        saved = json.loads(Path(args.json).read_text())
        plot(saved["cells"], saved["settings"]["scenarios"], Path(args.json).with_suffix(".png"))
        return
    previous = json.loads(Path(args.json).read_text()) if args.merge else None
    run_date = time.strftime("%Y-%m-%d %H:%M:%S")

    plan = []
    for name in args.scenarios:
        methods = GENERATOR_METHODS[SCENARIOS[name].generator]
        for method in methods if not args.methods else [m for m in methods if m in args.methods]:
            for delay in args.delays:
                plan += [(name, method, delay, seed) for seed in range(args.seeds)]
    runs: list[tuple[str, str, float, int, dict[str, Any]]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="compensation_") as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        with recording_robot(folder, preload=("Reach", "Trace")) as (endpoints, record):
            for name, method, delay, seed in plan:
                run = run_one(endpoints, delay, METHODS[method], seed, SCENARIOS[name])
                runs.append((name, method, delay, seed, run))
                done = len(runs)
                eta = (time.monotonic() - started) / done * (len(plan) - done)
                what = f"{name:15s} {method:18s} delay {delay * 1e3:4.0f} ms seed {seed}"
                print(f"[{done:3d}/{len(plan)}] {what}  ETA {eta / 60:.1f} min", flush=True)
        states = read_topic(record, TOPIC_STATE)

    cells: dict[str, dict[str, Any]] = {}
    for name, method, delay, _, _ in runs:
        key = f"{name}|{method}|{delay:g}"
        if key in cells:
            continue
        scores = [score(r, states) for n, m, d, _, r in runs if (n, m, d) == (name, method, delay)]
        rms, rms_ci = interval([s["rms_mm"] for s in scores])
        p99, p99_ci = interval([s["p99_mm"] for s in scores])
        t, t_ci = interval([s["time_s"] for s in scores])
        tremor = [s["tremor_um2"] for s in scores if not math.isnan(s["tremor_um2"])]
        cells[key] = {
            "scenario": name,
            "method": method,
            "delay_s": delay,
            "rms_mm": rms,
            "rms_ci95_mm": rms_ci,
            "p99_mm": p99,
            "p99_ci95_mm": p99_ci,
            "success_rate": float(np.mean([s["success"] for s in scores])),
            # 8–12 Hz power of (applied tip − intent), Welch; its ratio to "none" is added below.
            "tremor_um2": float(np.mean(tremor)) if tremor else math.nan,
            "time_s": t,
            "time_ci95_s": t_ci,
            "violations": sum(s["violations"] for s in scores),
            "runs": scores,
            "run_date": run_date,
        }

    if previous is not None:  # these cells replace the earlier run's; the rest are kept
        merged = previous["cells"] | cells
        order = [k for k in previous["cells"] if k in merged] + [k for k in cells if k not in previous["cells"]]
        cells = {k: merged[k] for k in order}
        args.delays = sorted({c["delay_s"] for c in cells.values()})
    for c in cells.values():  # the tremor band power against no compensation, same scenario and delay
        base_cell = cells.get(f"{c['scenario']}|none|{c['delay_s']:g}")
        c["tremor_ratio"] = (
            c.get("tremor_um2", math.nan) / base_cell["tremor_um2"]
            if base_cell and base_cell.get("tremor_um2")
            else math.nan
        )
    for name in args.scenarios:
        rows = [c for c in cells.values() if c["scenario"] == name]
        print(f"\n{name}: RMS / p99 tracking error (mm), success, time (s): mean ± 95% interval over seeds")
        head = f"{'method':>20s} {'delay':>6s} {'RMS':>15s} {'p99':>15s} {'success':>8s} {'time':>14s} {'viol':>5s}"
        print(f"{head} {'8–12 Hz':>9s} {'× none':>7s}")
        for c in rows:
            print(
                f"{c['method']:>20s} {c['delay_s'] * 1e3:4.0f}ms {c['rms_mm']:7.2f} ± {c['rms_ci95_mm']:<5.2f} "
                f"{c['p99_mm']:7.2f} ± {c['p99_ci95_mm']:<5.2f} {c['success_rate']:7.0%} "
                f"{c['time_s']:6.2f} ± {c['time_ci95_s']:<5.2f} {c['violations']:5d} "
                f"{c.get('tremor_um2', math.nan):7.2f}µm² {c.get('tremor_ratio', math.nan):6.2f}×"
            )
        if 0.2 in args.delays and any(c["method"] == "none" and c["delay_s"] == 0.2 for c in rows):
            base = next(c for c in rows if c["method"] == "none" and c["delay_s"] == 0.2)
            best = min((c for c in rows if c["delay_s"] == 0.2), key=lambda c: c["rms_mm"])
            print(f"  at 200 ms: best {best['method']} {best['rms_mm']:.2f} mm vs none {base['rms_mm']:.2f} mm: "
                  f"{(1 - best['rms_mm'] / base['rms_mm']) * 100:.0f}% lower (target ≥ 40%)")  # fmt: skip
        if 0.0 in args.delays:
            zero = [c for c in rows if c["delay_s"] == 0.0]
            base0 = next((c for c in zero if c["method"] == "none"), None)
            if base0 is not None:
                worst = max(zero, key=lambda c: c["rms_mm"])
                print(f"  at 0 ms: worst {worst['method']} {worst['rms_mm']:.2f} mm vs none "
                      f"{base0['rms_mm']:.2f} ± {base0['rms_ci95_mm']:.2f} mm")  # fmt: skip
    violations = sum(c["violations"] for c in cells.values())
    print(f"\nhard-limit violations: {violations}")

    png = Path(args.json).with_suffix(".png")
    plot(cells, args.scenarios, png)

    out = {
        "cells": cells,
        "violations": violations,
        "settings": {
            "delays_s": args.delays,
            "seeds": args.seeds,
            "scenarios": args.scenarios,
            "methods": GENERATOR_METHODS,
            "min_jerk_trace_s": TRACE_S,
        },
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "command_line": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "wall_s": time.monotonic() - started,
    }
    if previous is not None:
        out["merged_into"] = {k: previous[k] for k in ("command_line", "date", "wall_s") if k in previous}
        rerun = {f"{c['scenario']}|{c['method']}" for c in cells.values() if c.get("run_date") == run_date}
        out["merged_cells"] = sorted(rerun)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.json} and {png}")


if __name__ == "__main__":
    main()

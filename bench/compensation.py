"""Tool-tip tracking error, task success and completion time against delay, per correction and
compensation method, through the real stack.

    .venv/bin/python bench/compensation.py                     # writes bench/compensation.json + .png
    .venv/bin/python bench/compensation.py --seeds 2 --delays 0 0.2 --scenarios scripted/Reach   # a quick look

One `telesurg robot` (SCHED_RR, recording) serves every run. Each run is an in-process console
driven by one scenario's generator (``telesurg.teleop.harness.evaluation``), plus the scripted surgeon's
0.1 mm RMS 8–12 Hz tremor (seeded), through the link emulator on every channel
(``delay=D jitter=10%``, TCP-faithful) with one method's stages on:

- ``min-jerk/Reach``: minimum-jerk strokes (5 cm of hand, 1 cm of tool), open loop;
- ``pauses/Reach``: a figure-eight in minimum-jerk segments between pauses (16 s), open loop, a
  generator the learned predictor never trained on; the peak overshoot after each pause is scored;
- ``scripted/Reach``, ``scripted/Trace``: the scripted surgeon doing the task, closing its loop on
  the delayed telemetry (``twin loop``: on the console's local twin instead);
- ``file/Reach``, ``file/Trace``: shipped voluntary hand traces (``assets/traces/voluntary``),
  replayed open loop on the task seed they were recorded on.

Every cell runs at each motion scale of ``--scales`` (default 0.2 and 1.0): the open-loop
generators' hand paths are divided by the scale (× 0.2) so the tool's path is the same, and the
0.1 mm hand tremor reaches the tool 5× larger at 1.0.

The *intended path* is the surgeon's pre-tremor hand trajectory mapped through the console's
hand → tool mapping (its scale and the endoscope alignment, anchored where each stroke began).
The error is the distance from the robot's measured tool tip (its MCAP, every 2 ms period) to the
intended position at the same moment; RMS and p99 per run, then mean and 95% interval (t) over
seeds, with task success (rate) and completion time (scripted: to the task's success; replays:
the trace's length). Hard-limit violations: periods with contact force above the hard limit.
Tremor: the 8–12 Hz power of (tip − intent) (Welch), as a ratio to no compensation (``× none``)
and to the same stages without prediction (``× stages``: prediction must not add tremor, whatever
else is on). The shipped default (``launch/console.toml``) is marked; its method runs at 0 ms and
at every delay, the others at the delays given (``--zero-delay-methods`` also at 0 ms).
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

from telesurg.teleop.harness.evaluation import (
    METHODS,
    SCENARIOS,
    TRACE_S,
    recording_robot,
    run_one,
    score,
    shipped_default,
    without_prediction,
)
from telesurg.teleop.robot.reader import read_topic
from telesurg.teleop.robot.records import TOPIC_CONFIG, TOPIC_STATE

HERE = Path(__file__).resolve().parent
#: Methods per generator: the twin loop needs a surgeon that closes its loop (scripted).
_OPEN_LOOP = [
    "none",
    "prediction α-β",
    "prediction CV",
    "prediction learned",
    "tremor filter",
    "tremor + α-β",
    "tremor + learned",
    "α-β, raw target",
]
_STAGES = ["none", "prediction α-β", "prediction learned", "tremor filter", "tremor + α-β", "tremor + learned"]
GENERATOR_METHODS = {
    "min-jerk": _OPEN_LOOP,
    "figure-eight": _OPEN_LOOP,
    "scripted": [*_STAGES, "twin loop"],
    "trace-file": _STAGES,
}


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% interval (Student t)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), math.nan
    t95 = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26}.get(len(v), 2.0)
    return float(v.mean()), float(t95 * v.std(ddof=1) / math.sqrt(len(v)))


def _panel(cell: dict[str, Any]) -> str:
    return f"{cell['scenario']} @ {cell.get('motion_scale', 0.2):g}"


def plot(cells: dict[str, dict[str, Any]], png: Path) -> None:
    """One column per scenario; per motion scale two rows: RMS error against delay per method (mean
    ± 95% interval, the median as a hollow marker: a single run far off moves the mean of 3–5), and
    the 8–12 Hz power of (tip − intent) as a ratio to no compensation (log scale; 1 = none). The
    same colour for a method in every panel; an RMS panel's y range ends at twice its largest
    median."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = dict(zip(METHODS, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 2, strict=False))
    scenarios = list(dict.fromkeys(c["scenario"] for c in cells.values()))
    scales = sorted({c.get("motion_scale", 0.2) for c in cells.values()})
    fig, axes = plt.subplots(
        2 * len(scales), len(scenarios), figsize=(3.6 * len(scenarios), 3.0 * 2 * len(scales)), squeeze=False
    )
    ticks = [0.1, 0.3, 1.0, 3.0, 10.0]
    span = (
        -0.05 * 1e3 * max(c["delay_s"] for c in cells.values()) - 5,
        1.05e3 * max(c["delay_s"] for c in cells.values()) + 5,
    )
    for row, scale in enumerate(scales):
        for col, name in enumerate(scenarios):
            ax, tx = axes[2 * row][col], axes[2 * row + 1][col]
            rows = [c for c in cells.values() if c["scenario"] == name and c.get("motion_scale", 0.2) == scale]
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
                ratios = np.clip([c.get("tremor_ratio", math.nan) for c in sel], ticks[0], ticks[-1])
                tx.plot(xs, ratios, marker="s", label=method, color=colour)
            ax.set_ylim(0, 2.0 * max(top, 1e-3))
            ax.set_title(f"{name}, motion scale {scale:g}", fontsize=9)
            ax.grid(alpha=0.3)
            ax.set_xlim(*span)
            tx.set_xlim(*span)
            tx.axhline(1.0, color="k", linewidth=0.8)
            tx.set_yscale("log")
            tx.set_ylim(ticks[0], ticks[-1])
            tx.set_yticks(ticks, [f"{v:g}×" for v in ticks])
            tx.minorticks_off()
            tx.grid(alpha=0.3)
            if row == len(scales) - 1:
                tx.set_xlabel("one-way delay (ms)")
            if col == 0:
                ax.set_ylabel("RMS tracking error (mm)")
                tx.set_ylabel("8–12 Hz power × none")
    axes[0][0].legend(fontsize=7)
    fig.text(0.005, 0.003, "filled: mean ± 95% interval over seeds; hollow: median", fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delays", nargs="+", type=float, default=[0.0, 0.1, 0.2, 0.3, 0.5], help="one-way (s)")
    parser.add_argument("--scales", nargs="+", type=float, default=[0.2, 1.0], help="motion scales (default 0.2 1.0)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per cell (default 5)")
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), help="only these (where they apply)")
    parser.add_argument(
        "--zero-delay-methods",
        nargs="+",
        choices=list(METHODS),
        help="at 0 ms run only these and the shipped default (default: every method at every delay)",
    )
    parser.add_argument("--json", default=str(HERE / "compensation.json"), help="JSON path (the PNG goes beside it)")
    parser.add_argument("--keep", metavar="DIR", help="keep the robot's recording and log in DIR")
    parser.add_argument(
        "--merge", action="store_true", help="replace only these cells in the existing --json (and redraw the plot)"
    )
    parser.add_argument("--replot", action="store_true", help="only redraw the plot from the existing --json")
    args = parser.parse_args()
    if args.replot:
        plot(json.loads(Path(args.json).read_text())["cells"], Path(args.json).with_suffix(".png"))
        return
    previous = json.loads(Path(args.json).read_text()) if args.merge else None
    run_date = time.strftime("%Y-%m-%d %H:%M:%S")
    default_name, _ = shipped_default()

    plan = []
    for name in args.scenarios:
        methods = GENERATOR_METHODS[SCENARIOS[name].generator]
        chosen = [m for m in methods if not args.methods or m in args.methods or m == default_name]
        for scale in args.scales:
            for method in chosen:
                for delay in args.delays:
                    if (
                        delay == 0
                        and args.zero_delay_methods
                        and method not in {*args.zero_delay_methods, default_name}
                    ):
                        continue
                    plan += [(name, method, delay, scale, seed) for seed in range(args.seeds)]
    runs: list[tuple[str, str, float, float, int, dict[str, Any]]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="compensation_") as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        with recording_robot(folder, preload=("Reach", "Trace")) as (endpoints, record):
            for name, method, delay, scale, seed in plan:
                run = run_one(endpoints, delay, METHODS[method], seed, SCENARIOS[name], motion_scale=scale)
                runs.append((name, method, delay, scale, seed, run))
                done = len(runs)
                eta = (time.monotonic() - started) / done * (len(plan) - done)
                what = f"{name:15s} {method:18s} delay {delay * 1e3:4.0f} ms scale {scale:g} seed {seed}"
                print(f"[{done:3d}/{len(plan)}] {what}  ETA {eta / 60:.1f} min", flush=True)
        states = read_topic(record, TOPIC_STATE)
        hard_force_N = read_topic(record, TOPIC_CONFIG)[-1]["hard_force_N"]

    cells: dict[str, dict[str, Any]] = {}
    for name, method, delay, scale, _, _ in runs:
        key = f"{name}|{method}|{delay:g}|{scale:g}"
        if key in cells:
            continue
        same = [r for n, m, d, k, _, r in runs if (n, m, d, k) == (name, method, delay, scale)]
        scores = [score(r, states, hard_force_N) for r in same]
        rms, rms_ci = interval([s["rms_mm"] for s in scores])
        p99, p99_ci = interval([s["p99_mm"] for s in scores])
        t, t_ci = interval([s["time_s"] for s in scores])
        tremor = [s["tremor_um2"] for s in scores if not math.isnan(s["tremor_um2"])]
        overshoot = [s["max_overshoot_mm"] for s in scores if not math.isnan(s["max_overshoot_mm"])]
        cells[key] = {
            "scenario": name,
            "method": method,
            "shipped_default": method == default_name,
            "delay_s": delay,
            "motion_scale": scale,
            "rms_mm": rms,
            "rms_ci95_mm": rms_ci,
            "p99_mm": p99,
            "p99_ci95_mm": p99_ci,
            "success_rate": float(np.mean([s["success"] for s in scores])),
            # 8–12 Hz power of (applied tip − intent), Welch; its ratios are added below.
            "tremor_um2": float(np.mean(tremor)) if tremor else math.nan,
            # Figure-eight: the largest overshoot after a pause, per run (mean), and every pause's.
            "max_overshoot_mm": float(np.mean(overshoot)) if overshoot else math.nan,
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
    for c in cells.values():  # tremor power against none, and against the same stages without prediction
        where = f"|{c['delay_s']:g}|{c.get('motion_scale', 0.2):g}"
        base = cells.get(f"{c['scenario']}|none{where}")
        c["tremor_ratio"] = c["tremor_um2"] / base["tremor_um2"] if base and base.get("tremor_um2") else math.nan
        stages = without_prediction(METHODS.get(c["method"], {}))
        same = cells.get(f"{c['scenario']}|{stages}{where}") if stages and stages != c["method"] else None
        c["tremor_ratio_vs_stages"] = (
            c["tremor_um2"] / same["tremor_um2"] if same and same.get("tremor_um2") else math.nan
        )
    panels = list(dict.fromkeys(_panel(c) for c in cells.values()))
    for panel in panels:
        rows = [c for c in cells.values() if _panel(c) == panel]
        print(f"\n{panel}: RMS / p99 tracking error (mm), success, time (s): mean ± 95% interval over seeds")
        head = f"{'method':>22s} {'delay':>6s} {'RMS':>15s} {'p99':>15s} {'success':>8s} {'time':>14s} {'viol':>5s}"
        print(f"{head} {'8–12 Hz':>11s} {'× none':>7s} {'× stages':>8s} {'overshoot':>9s}")
        for c in rows:
            mark = "*" if c.get("shipped_default") else " "
            print(
                f"{mark}{c['method']:>21s} {c['delay_s'] * 1e3:4.0f}ms {c['rms_mm']:7.2f} ± {c['rms_ci95_mm']:<5.2f} "
                f"{c['p99_mm']:7.2f} ± {c['p99_ci95_mm']:<5.2f} {c['success_rate']:7.0%} "
                f"{c['time_s']:6.2f} ± {c['time_ci95_s']:<5.2f} {c['violations']:5d} "
                f"{c.get('tremor_um2', math.nan):7.0f}µm² {c.get('tremor_ratio', math.nan):6.2f}× "
                f"{c.get('tremor_ratio_vs_stages', math.nan):7.2f}× {c.get('max_overshoot_mm', math.nan):7.2f}mm"
            )
        base = next((c for c in rows if c["method"] == "none" and c["delay_s"] == 0.2), None)
        ship = next((c for c in rows if c.get("shipped_default") and c["delay_s"] == 0.2), None)
        if base and ship:
            cut = 1 - ship["rms_mm"] / base["rms_mm"]
            print(f"  * shipped default ({ship['method']}) at 200 ms: RMS {cut:.0%} lower than none (target ≥ 40%), "
                  f"tremor {ship['tremor_ratio']:.2f}× none (target ≤ 1.0×)")  # fmt: skip
    violations = sum(c["violations"] for c in cells.values())
    print(f"\nhard-limit violations: {violations}  (* = the shipped default, launch/console.toml: {default_name})")

    png = Path(args.json).with_suffix(".png")
    plot(cells, png)

    out = {
        "cells": cells,
        "violations": violations,
        "shipped_default": default_name,
        "settings": {
            "delays_s": sorted({c["delay_s"] for c in cells.values()}),
            "scales": sorted({c.get("motion_scale", 0.2) for c in cells.values()}),
            "seeds": args.seeds,
            "scenarios": list(dict.fromkeys(c["scenario"] for c in cells.values())),
            "methods": {name: METHODS[name] for name in dict.fromkeys(c["method"] for c in cells.values())},
            "min_jerk_trace_s": TRACE_S,
        },
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "command_line": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "wall_s": time.monotonic() - started,
    }
    if previous is not None:
        out["merged_into"] = {k: previous[k] for k in ("command_line", "date", "wall_s") if k in previous}
        out["merged_cells"] = sorted(k for k, c in cells.items() if c.get("run_date") == run_date)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.json} and {png}")


if __name__ == "__main__":
    main()

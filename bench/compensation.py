"""Tool-tip tracking error against delay, per correction/compensation method, through the real stack.

    .venv/bin/python bench/compensation.py                     # writes bench/compensation.json + .png
    .venv/bin/python bench/compensation.py --seeds 2 --delays 0 0.2     # a quick look

One `telesurg robot` (SCHED_RR, recording) serves every run. Each run is an in-process console
replaying a synthetic hand trace — minimum-jerk strokes (5 cm of hand, 1 cm of tool) plus the
scripted surgeon's 0.1 mm RMS 8–12 Hz tremor, seeded — through the link emulator on every channel
(``delay=D jitter=10%``, TCP-faithful) with one method's stages on. The *intended path* is the
surgeon's pre-tremor hand trajectory mapped through the console's hand → tool mapping (its scale
and the endoscope alignment, anchored where the stroke began): where the surgeon meant the tool to
be at each moment. The error is the distance from the robot's measured tool tip (its MCAP, every
2 ms period) to the intended position at the same moment, while the replay runs; RMS and p99 per
run, then mean and 95% interval (t) over seeds. Hard-limit violations: periods with contact force
above the hard limit. Methods: none; α-β prediction; constant-velocity prediction; tremor filter;
tremor + α-β prediction. (Delay-adaptive scaling changes the intended path itself, so it is not
compared here; blending needs a task whose policy aims where the strokes go; fixtures only act near
forbidden regions: both are exercised by the safety harness instead.)

Not yet the issue's full evaluation: scripted surgeons and recorded traces as further generators.
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

from teleop.channels import Endpoints, free_loopback_ports
from teleop.console import Console, ConsoleConfig
from teleop.correction import minimum_jerk_hand
from teleop.correction.config import CorrectionConfig
from teleop.harness.runner import CliProcess
from teleop.inputs import Trace, TraceReplay, Tremor
from teleop.recorder import read_topic
from teleop.records import TOPIC_STATE
from teleop.settings import write_toml

HERE = Path(__file__).resolve().parent
PERIOD_S = 0.005
TRACE_S = 10.0
HARD_LIMIT_N = 6.0
METHODS: dict[str, dict[str, Any]] = {
    "none": {},
    "prediction α-β": {"prediction": "alphabeta"},
    "prediction CV": {"prediction": "cv"},
    "tremor filter": {"tremor_enabled": True},
    "tremor + α-β": {"tremor_enabled": True, "prediction": "alphabeta"},
}


def hand_trace(seed: int) -> tuple[Trace, np.ndarray, np.ndarray]:
    """(trace with tremor, times s, voluntary hand path m) for ``seed``."""
    t = np.arange(0.0, TRACE_S, PERIOD_S)
    voluntary = minimum_jerk_hand(t)
    tremor = Tremor(1e-4, (8.0, 12.0), np.random.default_rng(seed))
    shaky = voluntary + np.array([tremor.at(x) for x in t])
    return Trace(t, shaky, np.zeros(len(t))), t, voluntary


def run_one(endpoints: Endpoints, delay_s: float, method: dict[str, Any], seed: int) -> dict[str, Any]:
    trace, t, voluntary = hand_trace(seed)
    link = f"delay={round(delay_s * 1000)}ms jitter=10% seed={seed}" if delay_s > 0 else ""
    config = ConsoleConfig(
        endpoints=endpoints,
        client="bench",
        input="trace",
        trace="synthetic.csv",
        tasks=("Reach",),
        rate_hz=1.0 / PERIOD_S,
        request_timeout_s=3.0 + 4.0 * delay_s,
        link_timeout_s=1.0 + 2.0 * delay_s,
        link=link,
        correction=CorrectionConfig(**method),
    )
    device = TraceReplay(trace, hold_end_s=max(0.5, 2 * delay_s))
    console = Console(config, device=device)
    console.run()
    assert device._t0 is not None and console.mapping_log, "the replay never engaged"
    _, anchor_hand, anchor_tool, matrix = console.mapping_log[0]
    return {"t0": device._t0, "t": t, "voluntary": voluntary, "anchor": (anchor_hand, anchor_tool, matrix)}


def score(run: dict[str, Any], states: list[dict[str, Any]]) -> dict[str, float]:
    """Tracking error of one run from the robot's recorded states (robot clock = console clock here)."""
    t0 = run["t0"]
    anchor_hand, anchor_tool, matrix = run["anchor"]
    t, voluntary = run["t"], run["voluntary"]
    lo, hi = t0 + 0.5, t0 + TRACE_S
    rows = [s for s in states if lo <= s["robot_s"] <= hi]
    if not rows:
        return {"rms_mm": math.nan, "p99_mm": math.nan, "violations": 0, "periods": 0}
    times = np.array([s["robot_s"] for s in rows]) - t0
    tip = np.array([s["tip_m"] for s in rows])
    hand = np.stack([np.interp(times, t, voluntary[:, k]) for k in range(3)], axis=1)
    intended = anchor_tool + (hand - anchor_hand) @ matrix.T
    err = np.linalg.norm(tip - intended, axis=1) * 1e3
    return {
        "rms_mm": float(np.sqrt(np.mean(err**2))),
        "p99_mm": float(np.percentile(err, 99)),
        "violations": int(sum(s["force_mag_N"] > HARD_LIMIT_N for s in rows)),
        "periods": len(rows),
    }


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% interval (Student t)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), math.nan
    t95 = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26}.get(len(v), 2.0)
    return float(v.mean()), float(t95 * v.std(ddof=1) / math.sqrt(len(v)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delays", nargs="+", type=float, default=[0.0, 0.1, 0.2, 0.3, 0.5], help="one-way (s)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per cell (default 5)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--json", default=str(HERE / "compensation.json"), help="JSON path (the PNG goes beside it)")
    args = parser.parse_args()

    runs: list[tuple[float, str, int, dict[str, Any]]] = []
    total = len(args.delays) * len(args.methods) * args.seeds
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="compensation_") as tmp:
        folder = Path(tmp)
        ports = free_loopback_ports(3)
        endpoints = Endpoints("127.0.0.1", *ports)
        record = folder / "robot.mcap"
        cfg = write_toml(
            folder / "robot.toml",
            "robot",
            {
                "": {"record": str(record), "realtime": True, "status_every_s": 30.0},
                "endpoints": {"cmd_port": ports[0], "telemetry_port": ports[1], "control_port": ports[2]},
                "arm": {"preload": ["Reach"]},
            },
        )
        robot = CliProcess(["robot", "--config", str(cfg)], folder / "robot.log", ready="listening")
        try:
            if not robot.wait_ready(60):
                raise RuntimeError("robot did not start:\n" + "\n".join(robot.lines[-20:]))
            for delay in args.delays:
                for name in args.methods:
                    for seed in range(args.seeds):
                        runs.append((delay, name, seed, run_one(endpoints, delay, METHODS[name], seed)))
                        done = len(runs)
                        eta = (time.monotonic() - started) / done * (total - done)
                        what = f"delay {delay * 1e3:4.0f} ms  {name:16s} seed {seed}"
                        print(f"[{done:3d}/{total}] {what}  ETA {eta / 60:.1f} min", flush=True)
        finally:
            robot.stop(10)
        states = read_topic(record, TOPIC_STATE)

    cells: dict[str, dict[str, Any]] = {}
    for delay in args.delays:
        for name in args.methods:
            scores = [score(r, states) for d, n, _, r in runs if d == delay and n == name]
            rms, rms_ci = interval([s["rms_mm"] for s in scores])
            p99, p99_ci = interval([s["p99_mm"] for s in scores])
            cells[f"{delay:g}|{name}"] = {
                "delay_s": delay,
                "method": name,
                "rms_mm": rms,
                "rms_ci95_mm": rms_ci,
                "p99_mm": p99,
                "p99_ci95_mm": p99_ci,
                "violations": sum(s["violations"] for s in scores),
                "runs": scores,
            }

    print(f"\n{'delay':>7s}  " + "".join(f"{m:>24s}" for m in args.methods))
    for delay in args.delays:
        row = ""
        for m in args.methods:
            c = cells[f"{delay:g}|{m}"]
            row += f"{c['rms_mm']:>13.2f} ± {c['rms_ci95_mm']:<8.2f}"
        print(f"{delay * 1e3:5.0f} ms  {row}")
    print("(RMS tracking error, mm, mean ± 95% interval over seeds)")
    violations = sum(c["violations"] for c in cells.values())
    print(f"hard-limit violations: {violations}")
    if 0.2 in args.delays and "none" in args.methods:
        base = cells["0.2|none"]["rms_mm"]
        best = min((c for c in cells.values() if c["delay_s"] == 0.2), key=lambda c: c["rms_mm"])
        print(f"at 200 ms: best {best['method']} {best['rms_mm']:.2f} mm vs none {base:.2f} mm: "
              f"{(1 - best['rms_mm'] / base) * 100:.0f}% lower (target ≥ 40%)")  # fmt: skip

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    for name in args.methods:
        xs = [d * 1e3 for d in args.delays]
        ys = [cells[f"{d:g}|{name}"]["rms_mm"] for d in args.delays]
        es = [cells[f"{d:g}|{name}"]["rms_ci95_mm"] for d in args.delays]
        ax.errorbar(xs, ys, yerr=[0 if math.isnan(e) else e for e in es], marker="o", capsize=3, label=name)
    ax.set_xlabel("one-way delay (ms)")
    ax.set_ylabel("RMS tool-tip tracking error (mm)")
    ax.set_title("Tracking error against delay, per method")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = Path(args.json).with_suffix(".png")
    fig.savefig(png, dpi=120)

    out = {
        "cells": cells,
        "violations": violations,
        "settings": {"delays_s": args.delays, "seeds": args.seeds, "methods": args.methods, "trace_s": TRACE_S},
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "command_line": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "wall_s": time.monotonic() - started,
    }
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.json} and {png}")


if __name__ == "__main__":
    main()

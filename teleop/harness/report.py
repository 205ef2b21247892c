"""The safety report: ``summary.md`` (the verdict and a table of every cell), ``cells.json`` (every
figure of every cell), PNG plots (success and tracking error over delay × loss per fidelity; force,
tool speed and supervisor state around an outage) and, per cell, the MCAP recordings judged."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from telesurg.teleop.harness.invariants import NAMES, load

STATE_LEVEL = {"IDLE": 0, "HOLD": 1, "ENGAGED": 2, "ESTOP": 3}


def verdict(results: Sequence[Any]) -> bool:
    return all(r.ok for r in results)


def write_report(out: Path, results: Sequence[Any], meta: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    rows = [r.to_dict() for r in results]
    (out / "cells.json").write_text(json.dumps({"meta": meta, "cells": rows}, indent=1) + "\n")
    plots = []
    for mode in ("tcp", "message"):
        p = _heatmaps(out, rows, mode)
        if p:
            plots.append(p)
    timeline = _outage_timeline(out, rows)
    if timeline:
        plots.append(timeline)
    (out / "summary.md").write_text(_markdown(rows, meta, plots))
    return out / "summary.md"


def _fmt(check: dict[str, Any]) -> str:
    mark = "✓" if check["ok"] else "✗"
    fig, unit = check["figure"], check["unit"]
    if not isinstance(fig, float) or not math.isfinite(fig):
        return f"{mark}"
    if unit == "s":
        return f"{mark} {fig * 1000:.0f} ms"
    if unit == "m":
        return f"{mark} {fig * 1000:.2f} mm"
    if unit == "m/s":
        return f"{mark} {fig:.3f}"
    if unit == "N":
        return f"{mark} {fig:.2f} N"
    return mark


def cell_line(row: dict[str, Any]) -> str:
    """One line for progress output."""
    bad = [c["name"] for c in row["checks"] if not c["ok"]]
    task = "held safely" if row["held_safely"] else ("success" if row["success"] else "no success")
    return (
        f"{row['name']:34s} {'PASS' if not bad else 'FAIL ' + ','.join(bad):18s} {task:12s} "
        f"{row['completion_s']:6.2f} s  tracking {row['tracking_rms_m'] * 1000:6.2f} mm  ({row['wall_s']:.0f} s)"
    )


def _markdown(rows: list[dict[str, Any]], meta: dict[str, Any], plots: list[Path]) -> str:
    ok = all(r["invariants_ok"] for r in rows)
    failed = [r["name"] for r in rows if not r["invariants_ok"]]
    lines = [
        "# telesurg safety report",
        "",
        f"**Verdict: {'every invariant held in every cell' if ok else 'INVARIANTS FAILED in ' + ', '.join(failed)}**",
        "",
        f"- cells: {len(rows)}; matrix: {meta.get('matrix')}; wall time {meta.get('wall_s', 0) / 60:.1f} min; "
        f"parallel jobs: {meta.get('jobs')}; robots pinned to CPUs {meta.get('robot_cpus') or 'none'} "
        f"(host probe beside each), the rest {'on the others' if meta.get('isolated') else 'anywhere'}; "
        f"started {meta.get('started')}",
        f"- negative controls: {', '.join(meta.get('negative_controls') or []) or 'none'}",
        f"- machine: {meta.get('machine')}",
        "",
        "Invariants (judged on the robot's recording of every control period): force = largest contact "
        "force (hard limit 6 N); hold = longest time ENGAGED without a valid command (≤ watchdog + 50 ms); "
        "commands = largest true age of an applied command beyond the allowed age (≤ 0; also session and "
        "order); speed = fastest tool-tip motion over 10 ms (≤ limit + 25%; setpoint ≤ limit); workspace = "
        "farthest outside the workspace or inside a forbidden region; stall = longest control period "
        "(≤ 5× nominal). Task figures are not pass/fail: delay may make a task harder, never unsafe. "
        "Cells whose one-way delay is at or beyond the supervisor's maximum command age (750 ms) are "
        "expected to hold safely, and say so.",
        "",
        "| cell | link | " + " | ".join(NAMES) + " | task | time s | tracking mm |",
        "| --- | --- | " + " | ".join("---" for _ in NAMES) + " | --- | ---: | ---: |",
    ]
    for r in rows:
        by = {c["name"]: c for c in r["checks"]}
        if r["held_safely"]:
            task = "held safely (beyond max command age)" if r["expect_hold"] else "held safely (no fresh command)"
        else:
            task = "✓" if r["success"] else "✗"
        if r.get("fault"):
            task += f" [{r['fault']}]"
        extra = [by[n] for n in by if n not in NAMES]
        if extra:
            task += " " + " ".join(f"{c['name']} {'✓' if c['ok'] else '✗'}" for c in extra)
        t = r["completion_s"]
        lines.append(
            f"| {r['name']} | `{r['link']}` | "
            + " | ".join(_fmt(by[n]) if n in by else "" for n in NAMES)
            + f" | {task} | {t:.2f} | {r['tracking_rms_m'] * 1000:.2f} |"
        )
    failures = [(r["name"], c) for r in rows for c in r["checks"] if not c["ok"]]
    if failures:
        lines += ["", "Failed checks:", ""] + [f"- {name}: {c['name']}: {c['detail']}" for name, c in failures]
    notes = [(r["name"], n) for r in rows for n in r["notes"] if n]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {name}: {n}" for name, n in notes]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    lines += ["", "Every cell's figures are in `cells.json`; its recordings and logs in `cells/<cell>/`.", ""]
    return "\n".join(lines)


def _heatmaps(out: Path, rows: list[dict[str, Any]], mode: str) -> Path | None:
    grid = [r for r in rows if not r["fault"] and not r["outage_s"] and not r.get("video") and r["mode"] == mode]
    if len(grid) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    delays = sorted({r["delay_s"] for r in grid})
    losses = sorted({r["loss"] for r in grid})
    success = np.full((len(losses), len(delays)), np.nan)
    tracking = np.full_like(success, np.nan)
    for i, loss in enumerate(losses):
        for j, d in enumerate(delays):
            cell = [r for r in grid if r["delay_s"] == d and r["loss"] == loss]
            if cell:
                success[i, j] = np.mean([r["success"] for r in cell])
                values = [r["tracking_rms_m"] * 1000 for r in cell if math.isfinite(r["tracking_rms_m"])]
                tracking[i, j] = np.mean(values) if values else np.nan
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, data, title, cmap in (
        (axes[0], success, "task success (mean over jitter)", "RdYlGn"),
        (axes[1], tracking, "tracking error RMS (mm)", "viridis"),
    ):
        im = ax.imshow(data, origin="lower", cmap=cmap, aspect="auto")
        ax.set_xticks(range(len(delays)), [f"{d * 1000:.0f}" for d in delays])
        ax.set_yticks(range(len(losses)), [f"{loss * 100:.0f}%" for loss in losses])
        ax.set_xlabel("one-way delay (ms)")
        ax.set_ylabel("loss")
        ax.set_title(f"{title}, {mode}")
        for i in range(len(losses)):
            for j in range(len(delays)):
                if np.isfinite(data[i, j]):
                    ax.text(j, i, f"{data[i, j]:.2f}", ha="center", va="center", color="w", fontsize=8)
        fig.colorbar(im, ax=ax)
    fig.tight_layout()
    path = out / f"heatmap_{mode}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _outage_timeline(out: Path, rows: list[dict[str, Any]]) -> Path | None:
    candidates = [r for r in rows if r["outage_s"] and r["recordings"]]
    if not candidates:
        return None
    row = max(candidates, key=lambda r: (r["task"] == "Palpate", r["outage_s"] == 1.0, r["mode"] == "message"))
    t = load(Path(row["recordings"][0]))
    states = t.get("state", [])
    if len(states) < 10 or not t.get("config"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    time_s = np.array([s["robot_s"] for s in states])
    engaged = [s for s in states if s["state"] != "IDLE"]
    t0 = engaged[0]["robot_s"] if engaged else time_s[0]
    time_s = time_s - t0
    tip = np.array([s["tip_m"] for s in states])
    speed = np.r_[0.0, np.linalg.norm(np.diff(tip, axis=0), axis=1) / np.maximum(np.diff(time_s), 1e-6)]
    kernel = np.ones(5) / 5
    speed = np.convolve(speed, kernel, mode="same")
    force = np.array([s["force_peak_N"] for s in states])
    level = np.array([STATE_LEVEL.get(s["state"], -1) for s in states])
    window = (time_s > -0.5) & (time_s < (row.get("outage_at_s") or 0.0) + row["outage_s"] + 3.0)
    fig, axes = plt.subplots(3, 1, figsize=(9, 6), sharex=True)
    axes[0].plot(time_s[window], force[window])
    cfg = t["config"][-1]  # the limits the robot ran under
    axes[0].axhline(cfg["hard_force_N"], color="r", ls="--", lw=1)
    axes[0].set_ylabel("force (N)")
    axes[1].plot(time_s[window], speed[window] * 1000)
    axes[1].axhline(cfg["max_tip_speed_m_s"] * 1000, color="r", ls="--", lw=1)
    axes[1].set_ylabel("tip speed (mm/s)")
    axes[2].step(time_s[window], level[window], where="post")
    axes[2].set_yticks(list(STATE_LEVEL.values()), list(STATE_LEVEL))
    axes[2].set_xlabel("time since engage (s)")
    at = row.get("outage_at_s") or 0.0
    for ax in axes:
        ax.axvspan(at, at + row["outage_s"], color="0.85", zorder=0)
    axes[0].set_title(f"{row['name']}: outage (grey) at {at:g} s for {row['outage_s']:g} s, {row['mode']} level")
    fig.tight_layout()
    path = out / "outage_timeline.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""Sliding along tissue over a bad link: does the setpoint keep up with the surgeon, or crawl?

    .venv/bin/python bench/contact_sliding.py                  # 10 seeds, writes bench/contact_sliding.json
    .venv/bin/python bench/contact_sliding.py --seeds 3 --method "prediction α-β"
    .venv/bin/python bench/contact_sliding.py --rescore DIR --json FILE   # score a kept recording again

One `telesurg robot` (SCHED_RR, recording) serves every run. Each run is the scripted surgeon doing
Trace through the link emulator on every channel (default ``delay=200ms jitter=20ms loss=3%
burst=4 outage=1s@5s``, TCP-faithful, the run's seed; the outage starts 5 s after the console's
first engage), with one correction method's stages on (``telesurg.teleop.harness.evaluation.METHODS``).

Crawl: from the robot's recording, every 2 ms period in which the supervisor is engaged and the
contact force is inside Trace's band (0.5–2.5 N), the *commanded* slide is the part of the step
the supervisor wanted (the target of the command it had last accepted − the setpoint, at most the
speed limit scaled by that command's age) along the surface (perpendicular to the contact force),
and the *applied* slide the same part of the setpoint's actual step. Over each 1 s window with at
least 0.5 s of such periods and at least 1 mm/s commanded, speed ratio = applied path / commanded
path; a run crawls when any window's ratio is below 0.8. A run passes when the task succeeds and it never crawls.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from telesurg.teleop.harness.evaluation import METHODS, SCENARIOS, recording_robot, run_one
from telesurg.teleop.robot.reader import read_topic
from telesurg.teleop.robot.records import TOPIC_COMMANDS, TOPIC_STATE
from telesurg.teleop.robot.supervisor import SupervisorConfig

HERE = Path(__file__).resolve().parent
LINK = "delay=200ms jitter=20ms loss=3% burst=4 outage=1s@5s"
BAND_N = (0.5, 2.5)
WINDOW_S = 1.0
MIN_RATIO = 0.8


def sliding(states: list[dict[str, Any]], commands: list[dict[str, Any]], lo_s: float, hi_s: float) -> dict[str, Any]:
    """Commanded and applied sliding per 1 s window of in-band contact (see the module docstring)."""
    cfg = SupervisorConfig()
    rows = [s for s in states if lo_s <= s["robot_s"] <= hi_s]
    accepted = [c for c in commands if c["accepted"] and c["clutch"] and lo_s - 5.0 <= c["received_robot_s"] <= hi_s]
    if len(rows) < 2 or not accepted:
        nan = float("nan")
        return {"windows": [], "min_ratio": nan, "mean_ratio": nan, "crawl_windows": 0, "in_band_s": 0.0}
    # The target each period steered toward: the command the supervisor had last accepted when it
    # ticked (the state record's ``last_cmd_seq``; commands are drained just after the period's
    # time stamp, so matching by receive time would put some a period late).
    by_seq = {(c["session"], c["seq"]): c for c in accepted}
    band = cfg.max_age_s - cfg.age_slowdown_s
    t = np.array([s["robot_s"] for s in rows])
    sp = np.array([s["setpoint_m"] for s in rows])
    force = np.array([s["force_N"] for s in rows])
    mag = np.array([s["force_mag_N"] for s in rows])
    engaged = np.array([s["state"] == "ENGAGED" for s in rows])
    commanded = np.zeros(len(rows))
    applied = np.zeros(len(rows))
    counted = np.zeros(len(rows), dtype=bool)
    for i in range(1, len(rows)):
        cmd = by_seq.get((rows[i]["session"], rows[i]["last_cmd_seq"]))
        if cmd is None or not (engaged[i] and engaged[i - 1]) or not BAND_N[0] <= mag[i] <= BAND_N[1]:
            continue
        n = force[i] / mag[i]  # the force the supervisor's shield saw this period
        wanted = np.asarray(cmd["target_m"]) - sp[i - 1]
        scale = 1.0 if cmd["age_s"] <= cfg.age_slowdown_s else max(0.0, (cfg.max_age_s - cmd["age_s"]) / band)
        limit = cfg.max_tip_speed_m_s * scale * rows[i]["period_s"]
        if np.linalg.norm(wanted) > limit:
            wanted = wanted * (limit / np.linalg.norm(wanted))
        step = sp[i] - sp[i - 1]
        commanded[i] = np.linalg.norm(wanted - (wanted @ n) * n)
        applied[i] = np.linalg.norm(step - (step @ n) * n)
        counted[i] = True
    windows = []
    for start in np.arange(t[0], t[-1] - WINDOW_S, WINDOW_S / 2):
        sel = counted & (t >= start) & (t < start + WINDOW_S)
        in_band_s = float(sum(rows[i]["period_s"] for i in np.flatnonzero(sel)))
        cmd_mm_s = float(commanded[sel].sum()) / WINDOW_S * 1e3
        if in_band_s < 0.5 * WINDOW_S or cmd_mm_s < 1.0:
            continue
        ratio = float(applied[sel].sum() / commanded[sel].sum())
        windows.append({"start_s": float(start - t[0]), "commanded_mm_s": cmd_mm_s, "ratio": ratio})
    ratios = [w["ratio"] for w in windows]
    crawl = [w for w in windows if w["ratio"] < MIN_RATIO]
    return {
        "windows": windows,
        "min_ratio": min(ratios) if ratios else float("nan"),
        "mean_ratio": float(np.mean(ratios)) if ratios else float("nan"),
        "crawl_windows": len(crawl),
        "in_band_s": float(sum(rows[i]["period_s"] for i in np.flatnonzero(counted))),
    }


def report(rows: list[dict[str, Any]], link: str, method: str) -> int:
    print(f"\nTrace over {link!r}, method {method!r}")
    print(f"{'seed':>4} {'success':>7} {'time s':>7} {'in band s':>9} {'min ratio':>9} {'mean':>6} {'crawl':>5}")
    for r in rows:
        print(
            f"{r['seed']:4d} {r['success']!s:>7} {r['time_s']:7.1f} {r['in_band_s']:9.1f} "
            f"{r['min_ratio']:9.2f} {r['mean_ratio']:6.2f} {r['crawl_windows']:5d}"
        )
    passed = sum(r["passed"] for r in rows)
    print(f"passed {passed}/{len(rows)} (success and no window under {MIN_RATIO:.0%} of the commanded slide)")
    return passed


def rescore(mcap: Path, json_path: Path) -> None:
    """Score a kept recording again (its sessions in order are the seeds) into ``json_path``,
    keeping the runs' success and time from it."""
    saved = json.loads(json_path.read_text())
    states = read_topic(mcap, TOPIC_STATE)
    commands = read_topic(mcap, TOPIC_COMMANDS)
    sessions = list(dict.fromkeys(s["session"] for s in states if s["session"]))
    if len(sessions) != len(saved["runs"]):
        raise SystemExit(f"{mcap}: {len(sessions)} sessions, but {json_path} has {len(saved['runs'])} runs")
    rows = []
    for run, session in zip(saved["runs"], sessions, strict=True):
        times = [s["robot_s"] for s in states if s["session"] == session]
        s = sliding(states, commands, min(times), max(times))
        rows.append(
            {k: run[k] for k in ("seed", "success", "time_s")}
            | s
            | {"passed": run["success"] and not s["crawl_windows"]}
        )
    saved["passed"] = report(rows, saved["link"], saved["method"])
    saved["runs"] = rows
    saved["rescored"] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "recording": str(mcap)}
    json_path.write_text(json.dumps(saved, indent=1))
    print(f"wrote {json_path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--link", default=LINK, help=f"link spec on every channel (default {LINK!r})")
    parser.add_argument("--method", default="none", choices=[m for m in METHODS if m != "twin loop"])
    parser.add_argument("--json", default=str(HERE / "contact_sliding.json"))
    parser.add_argument("--keep", metavar="DIR", help="keep the robot's recording and log in DIR")
    parser.add_argument("--rescore", metavar="DIR", help="score DIR/robot.mcap (kept with --keep) again into --json")
    args = parser.parse_args()
    if args.rescore:
        rescore(Path(args.rescore) / "robot.mcap", Path(args.json))
        return
    scenario = SCENARIOS["scripted/Trace"]
    started = time.monotonic()
    runs = []
    with tempfile.TemporaryDirectory(prefix="sliding_") as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        with recording_robot(folder, preload=("Trace",)) as (endpoints, record):
            for seed in range(args.seeds):
                run = run_one(endpoints, 0.2, METHODS[args.method], seed, scenario, link=f"{args.link} seed={seed}")
                runs.append((seed, run))
                print(f"[{seed + 1}/{args.seeds}] seed {seed}: success {run['success']}", flush=True)
        states = read_topic(record, TOPIC_STATE)
        commands = read_topic(record, TOPIC_COMMANDS)
    rows = []
    for seed, run in runs:
        s = sliding(states, commands, *run["window"])
        ok = run["success"] and s["crawl_windows"] == 0
        rows.append({"seed": seed, "success": run["success"], "time_s": run["time_s"], "passed": ok, **s})
    passed = report(rows, args.link, args.method)
    out = {
        "link": args.link,
        "method": args.method,
        "passed": passed,
        "runs": rows,
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "wall_s": time.monotonic() - started,
    }
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

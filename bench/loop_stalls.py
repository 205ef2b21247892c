"""Control-loop timing while the video comes and goes: the robot's worst period, with the host set apart.

One ``telesurg robot`` (real-time priority where permitted, recording every period, the state feed
and video signalling on) is driven by a console in this process (``command_latency.drive``: a 5 mm
circle at 500 Hz) while this script starts and stops the media process (``telesurg video``, the
renderer with it) ``--cycles`` times, each time also opening the web viewer in Debian's headless
Chromium until it decodes frames, then closing it. A host probe (``telesurg.teleop.harness.hostprobe``) runs
pinned to the robot's CPU one priority above the robot's and records its own wake-up lateness, so a long
period can be told apart: the robot's own (work, or a late wake-up the probe did not share) or the
host's (the probe was kept from running at the same moment).

Every control period comes from the robot's recording (``/robot/state``), stalls with their
breakdown from ``/robot/stalls``. Target (issue 14): every period under 5 ms; the worst period and
the 99.99th percentile are reported, with whether real-time priority was granted.

    .venv/bin/python bench/loop_stalls.py               # 20 cycles, about 3 min
    .venv/bin/python bench/loop_stalls.py --cycles 3    # smoke check
    .venv/bin/python bench/loop_stalls.py --robot-set record_process=false   # an A/B of a robot key

prints a table and writes bench/loop_stalls.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
from command_latency import drive

from telesurg.teleop.harness.browser import BrowserViewer
from telesurg.teleop.harness.hostprobe import read_gaps, stall_is_hosts, unexecuted_work_s
from telesurg.teleop.harness.invariants import load
from telesurg.teleop.harness.runner import CliProcess, HostProbe
from telesurg.teleop.settings import write_toml
from telesurg.teleop.wire.channels import Endpoints, free_loopback_ports

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET_WORST_S = 0.005
PERIOD_S = 0.002


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``key=value`` (TOML values) → a table of robot keys."""
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
    return out


def viewer_cycle(http_port: int, token: str, timeout_s: float = 20.0) -> int:
    """Open the web viewer in headless Chromium until it decoded frames; returns frames decoded."""
    viewer = BrowserViewer(f"http://127.0.0.1:{http_port}/?token={token}")
    try:
        deadline = time.monotonic() + timeout_s
        frames = 0
        while time.monotonic() < deadline:
            state = viewer.poll()
            frames = int(state["frames_decoded"])
            if frames >= 10 or state.get("error"):
                break
            time.sleep(0.2)
        return frames
    finally:
        viewer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=20, help="media process + viewer start/stop cycles")
    parser.add_argument("--robot-set", action="append", default=[], metavar="KEY=VALUE", help="[robot] key")
    parser.add_argument("--no-probe", action="store_true", help="run without the host probe")
    parser.add_argument("--no-pin", action="store_true", help="leave the robot on any CPU (no affinity)")
    parser.add_argument("--share-cpu", action="store_true", help="pin the robot but let the rest use its CPU too")
    parser.add_argument("--out", default=str(HERE / "loop_stalls.json"), help="JSON path")
    args = parser.parse_args()

    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"loop_stalls-{os.getpid()}"
    folder.mkdir(parents=True)
    ports = free_loopback_ports(6)
    endpoints = Endpoints("127.0.0.1", ports[0], ports[1], ports[2])
    state_port, signal_port, http_port = ports[3], ports[4], ports[5]
    record = folder / "robot.mcap"
    # The robot on a CPU of its own (the last), everything else here — this driver, the media
    # process, the browser — on the others.
    robot_cpu = max(os.sched_getaffinity(0))
    if not args.no_pin and not args.share_cpu and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, os.sched_getaffinity(0) - {robot_cpu})
    robot_keys = {
        "record": str(record),
        **({} if args.no_pin else {"cpu": robot_cpu}),
        "realtime": True,
        "state_port": state_port,
        "video_signal_port": signal_port,
        **parse_sets(args.robot_set),
    }
    robot_cfg = write_toml(
        folder / "robot.toml",
        "robot",
        {"": robot_keys, "endpoints": {"cmd_port": ports[0], "telemetry_port": ports[1], "control_port": ports[2]}},
    )
    token = "bench-token-0123456789abcdef"
    video_cfg = write_toml(
        folder / "video.toml",
        "video",
        {
            "": {"signal_port": signal_port, "http_port": http_port, "token": token},
            "renderer": {"state_url": f"tcp://127.0.0.1:{state_port}"},
        },
    )
    robot = CliProcess(["robot", "--config", str(robot_cfg)], folder / "robot.log", ready="listening")
    if not robot.wait_ready(60):
        robot.kill()
        print("\n".join(robot.lines[-20:]))
        return 1
    if args.no_pin:
        robot_cpu = None
    probe = None if args.no_probe or robot_cpu is None else HostProbe(folder / "probe.jsonl", robot_cpu)
    seconds = 6.0 * args.cycles + 10.0
    driven: dict[str, Any] = {}
    driver = threading.Thread(target=lambda: driven.update(result=drive(endpoints, 500.0, seconds)), daemon=True)
    driver.start()
    cycles = []
    t0 = time.monotonic()
    try:
        time.sleep(2.0)
        for i in range(args.cycles):
            if not driver.is_alive():
                break
            started = time.monotonic()
            video = CliProcess(["video", "--config", str(video_cfg)], folder / "video.log", ready="video: rendering")
            ok = video.wait_ready(60)
            frames = viewer_cycle(http_port, token) if ok else 0
            video.stop(10)
            cycles.append({"cycle": i + 1, "video_ready": ok, "viewer_frames": frames, "s": time.monotonic() - started})
            print(
                f"cycle {i + 1:2d}/{args.cycles}: video {'ready' if ok else 'FAILED'}, viewer decoded {frames} frames"
            )
        driver.join(max(0.0, seconds - (time.monotonic() - t0)) + 30)
    finally:
        robot.stop(20)
        if probe is not None:
            probe.stop()

    rec = load(record)
    periods = np.array([s["period_s"] for s in rec.get("state", [])][1:])
    stalls = rec.get("stalls", [])
    gaps, probe_totals = read_gaps(folder / "probe.jsonl")
    for s in stalls:
        s["host"] = stall_is_hosts(s["kind"], s["start_robot_s"], s["period_s"], PERIOD_S, gaps, unexecuted_work_s(s))
    granted = not any("real-time scheduling not available" in line for line in robot.lines)
    worst = float(periods.max()) if periods.size else float("nan")
    p9999 = float(np.percentile(periods, 99.99)) if periods.size else float("nan")
    over = periods[periods > TARGET_WORST_S]
    result = {
        "command": "bench/loop_stalls.py " + " ".join(sys.argv[1:]),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "robot_keys": robot_keys,
        "realtime_granted": granted,
        "robot_cpu": robot_cpu,
        "cycles": cycles,
        "periods": int(periods.size),
        "worst_period_ms": worst * 1e3,
        "p99_99_ms": p9999 * 1e3,
        "p99_ms": float(np.percentile(periods, 99)) * 1e3 if periods.size else float("nan"),
        "over_5ms": int(over.size),
        "within_20pct": float(np.mean(np.abs(periods - PERIOD_S) <= 0.2 * PERIOD_S)) if periods.size else 0.0,
        "stalls": stalls,
        "work_stalls": sum(s["kind"] == "work" for s in stalls),
        "wait_stalls": sum(s["kind"] == "wait" for s in stalls),
        "host_stalls": sum(s["host"] for s in stalls),
        "probe": probe_totals,
        "probe_gaps_over_5ms": sum(g.gap_s > TARGET_WORST_S for g in gaps),
        "probe_worst_gap_ms": max((g.gap_s for g in gaps), default=0.0) * 1e3,
        "periods_over_5ms": [
            {"start_robot_s": float(s["robot_s"] - s["period_s"]), "period_ms": s["period_s"] * 1e3}
            for s in rec.get("state", [])[1:]
            if s["period_s"] > TARGET_WORST_S
        ],
        "command_latency_p99_ms": (
            float(np.percentile(driven["result"].latencies_s, 99)) * 1e3
            if driven.get("result") and driven["result"].latencies_s
            else float("nan")
        ),
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print()
    print(
        "| periods | worst | p99.99 | p99 | > 5 ms | within ±20% | stalls work / wait (host) | probe worst gap | RT |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |")
    print(
        f"| {result['periods']} | {result['worst_period_ms']:.2f} ms | {result['p99_99_ms']:.2f} ms | "
        f"{result['p99_ms']:.2f} ms | {result['over_5ms']} | {result['within_20pct']:.2%} | "
        f"{result['work_stalls']} / {result['wait_stalls']} ({result['host_stalls']}) | "
        f"{result['probe_worst_gap_ms']:.2f} ms | {'granted' if granted else 'NOT granted'} |"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

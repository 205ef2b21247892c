"""Evaluating compensation through the real stack: a synthetic surgeon hand (minimum-jerk strokes
plus the scripted surgeon's tremor, seeded) replayed by an in-process console over an emulated
link, scored against the *intended path* — the pre-tremor hand trajectory mapped through the
console's hand → tool mapping — with the robot's recorded tool tip. Used by ``bench/compensation.py``
and its test.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from teleop.channels import Endpoints, free_loopback_ports
from teleop.console import Console, ConsoleConfig
from teleop.correction import minimum_jerk_hand
from teleop.correction.config import CorrectionConfig
from teleop.harness.runner import CliProcess
from teleop.inputs import Trace, TraceReplay, Tremor
from teleop.settings import write_toml

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
    """Replay seed ``seed``'s hand through a console with ``method``'s stages over ``delay_s`` one way
    (jitter 10%, every channel) to the robot at ``endpoints``; what ``score`` needs."""
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


@contextlib.contextmanager
def recording_robot(folder: Path, preload: tuple[str, ...] = ("Reach",)) -> Iterator[tuple[Endpoints, Path]]:
    """A `telesurg robot` (SCHED_RR where allowed) on free loopback ports, recording every topic to
    ``folder/robot.mcap``; yields its endpoints and the recording's path, and stops it after."""
    ports = free_loopback_ports(3)
    record = folder / "robot.mcap"
    cfg = write_toml(
        folder / "robot.toml",
        "robot",
        {
            "": {"record": str(record), "realtime": True, "status_every_s": 30.0},
            "endpoints": {"cmd_port": ports[0], "telemetry_port": ports[1], "control_port": ports[2]},
            "arm": {"preload": list(preload)},
        },
    )
    robot = CliProcess(["robot", "--config", str(cfg)], folder / "robot.log", ready="listening")
    try:
        if not robot.wait_ready(60):
            raise RuntimeError("robot did not start:\n" + "\n".join(robot.lines[-20:]))
        yield Endpoints("127.0.0.1", *ports), record
    finally:
        robot.stop(10)

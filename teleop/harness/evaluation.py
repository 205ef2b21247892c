"""Evaluating compensation through the real stack: a surgeon's hand driven by one of four
generators, through an in-process console over an emulated link, scored against the *intended
path* — the pre-tremor hand trajectory mapped through the console's hand → tool mapping (its
motion scale and the endoscope alignment, anchored where each stroke began) — with the robot's
recorded tool tip at the same moment. Used by ``bench/compensation.py`` and its tests.

Generators (``Scenario``):

- ``min-jerk``: ``minimum_jerk_hand`` strokes (open loop) on the Reach scene;
- ``figure-eight``: ``figure_eight_hand`` (open loop) on the Reach scene: a figure-eight drawn in
  minimum-jerk segments between pauses, which the learned predictor never trained on; each
  pause's peak overshoot is scored (how far the tool runs past where the hand stopped);
- ``scripted``: the scripted surgeon doing the task, closing its loop on the delayed telemetry
  (or, with the ``twin loop`` method, on the console's local twin); success and completion time
  are the task's own;
- ``trace-file``: a shipped voluntary hand trace (``assets/traces/voluntary``: the scripted
  surgeon's motion recorded through the stack without tremor), replayed open loop on the task and
  seed it was recorded on; success is the task's own at the end.

Each adds the scripted surgeon's physiological tremor (seeded, 0.1 mm RMS in hand space) to the
voluntary hand. ``motion_scale`` (tool metres per hand metre) is the console's; the open-loop
generators' voluntary hand is divided by it (× 0.2), so the tool's intended path is the same at
every scale while the tremor, in hand space, reaches the tool 5× larger at 1.0 than at 0.2.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from telesurg.teleop.console.config import ConsoleConfig
from telesurg.teleop.console.core import Console
from telesurg.teleop.console.inputs import HandInput
from telesurg.teleop.console.mapping import HandToTool, MappingConfig
from telesurg.teleop.console.scripted import ScriptedSurgeon, SurgeonConfig, Trace, TraceReplay
from telesurg.teleop.correction import Pause, figure_eight_hand, minimum_jerk_hand
from telesurg.teleop.correction.config import CorrectionConfig
from telesurg.teleop.correction.signals import Tremor
from telesurg.teleop.correction.tremor import tremor_power_um2
from telesurg.teleop.harness.stack import endpoint_table, start
from telesurg.teleop.wire import protocol as p
from telesurg.teleop.wire.channels import Endpoints, free_loopback_ports

PERIOD_S = 0.005
TRACE_S = 8.0
TRACES_DIR = Path(__file__).resolve().parents[2] / "assets" / "traces" / "voluntary"

#: Methods: ``CorrectionConfig`` fields, plus ``feedback`` for the scripted surgeon.
METHODS: dict[str, dict[str, Any]] = {
    "none": {},
    "prediction α-β": {"prediction": "alphabeta"},
    "prediction CV": {"prediction": "cv"},
    "prediction learned": {"prediction": "learned"},
    # α-β on the raw target (tremor and all), for comparison with the band-limited default.
    "α-β, raw target": {"prediction": "alphabeta", "prediction_band_limit_hz": 0.0},
    "tremor filter": {"tremor_enabled": True},
    "tremor + α-β": {"tremor_enabled": True, "prediction": "alphabeta"},
    "tremor + learned": {"tremor_enabled": True, "prediction": "learned"},
    "twin loop": {"twin_enabled": True, "feedback": "twin"},
}


#: Keys of a method that belong to prediction (without them: the same stages, no prediction).
PREDICTION_KEYS = ("prediction", "prediction_band_limit_hz", "prediction_band_limit_order")
CONSOLE_TOML = Path(__file__).resolve().parents[2] / "launch" / "console.toml"


def without_prediction(method: dict[str, Any]) -> str | None:
    """The name of the method with ``method``'s stages but no prediction (None if there is none)."""
    rest = {k: v for k, v in method.items() if k not in PREDICTION_KEYS}
    return next((name for name, m in METHODS.items() if m == rest), None)


def shipped_default(path: Path = CONSOLE_TOML) -> tuple[str, dict[str, Any]]:
    """The shipped console's correction (``[console.correction]`` of ``launch/console.toml``, the
    twin aside: it draws, it does not move the tool) as the name of the method it equals, and the
    method."""
    from telesurg.teleop.settings import load_section

    correction = load_section(path, "console", ConsoleConfig, "console configuration").correction
    default = CorrectionConfig()
    method = {
        f.name: getattr(correction, f.name)
        for f in dataclasses.fields(CorrectionConfig)
        if not f.name.startswith("twin") and getattr(correction, f.name) != getattr(default, f.name)
    }
    name = next((n for n, m in METHODS.items() if m == method), None)
    if name is None:
        raise ValueError(f"{path}: its [console.correction] ({method}) is none of the methods {sorted(METHODS)}")
    return name, method


@dataclass(frozen=True)
class Scenario:
    """A generator on a task (``trace_file``: the CSV for ``trace-file``; its task seed ``task_seed``)."""

    name: str
    generator: str
    task: str
    trace_file: str = ""
    task_seed: int = 0

    def __post_init__(self) -> None:
        if self.generator not in ("min-jerk", "figure-eight", "scripted", "trace-file"):
            raise ValueError(f"unknown generator {self.generator!r}")


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("min-jerk/Reach", "min-jerk", "Reach"),
        Scenario("pauses/Reach", "figure-eight", "Reach"),
        Scenario("scripted/Reach", "scripted", "Reach"),
        Scenario("scripted/Trace", "scripted", "Trace"),
        Scenario("file/Reach", "trace-file", "Reach", str(TRACES_DIR / "reach_seed3.csv"), 3),
        Scenario("file/Trace", "trace-file", "Trace", str(TRACES_DIR / "trace_seed3.csv"), 3),
    )
}


#: The motion scale the open-loop generators' hand paths are drawn for.
REFERENCE_SCALE = 0.2


def hand_trace(seed: int, motion_scale: float = REFERENCE_SCALE) -> tuple[Trace, np.ndarray, np.ndarray]:
    """(trace with tremor, times s, voluntary hand path m) of the min-jerk generator for ``seed``."""
    t = np.arange(0.0, TRACE_S, PERIOD_S)
    return _with_tremor(t, minimum_jerk_hand(t) * (REFERENCE_SCALE / motion_scale), np.zeros(len(t)), seed)


def figure_eight_trace(
    seed: int, motion_scale: float = REFERENCE_SCALE
) -> tuple[Trace, np.ndarray, np.ndarray, list[Pause]]:
    """(trace with tremor, times s, voluntary hand path m, pauses) of the figure-eight generator."""
    t = np.arange(0.0, 2 * TRACE_S, PERIOD_S)
    k = REFERENCE_SCALE / motion_scale
    path, pauses = figure_eight_hand(t, seed)
    pauses = [Pause(q.start_s, q.end_s, q.point_m * k, q.approach) for q in pauses]
    return (*_with_tremor(t, path * k, np.zeros(len(t)), seed), pauses)


def _with_tremor(t: np.ndarray, voluntary: np.ndarray, jaw: np.ndarray, seed: int):
    tremor = Tremor(1e-4, (8.0, 12.0), np.random.default_rng(seed))
    shaky = voluntary + np.array([tremor.at(x) for x in t])
    return Trace(t, shaky, jaw), t, voluntary


class _LoggedReplay(TraceReplay):
    """A trace replay that logs the voluntary hand (before tremor) at every read."""

    def __init__(self, trace: Trace, t_s: np.ndarray, voluntary_m: np.ndarray, hold_end_s: float) -> None:
        super().__init__(trace, hold_end_s)
        self.t_s, self.voluntary_m = t_s, voluntary_m
        self.log: list[tuple[float, np.ndarray]] = []

    def read(self, now_s: float, telemetry: p.Telemetry | None, mapping: HandToTool) -> HandInput:
        out = super().read(now_s, telemetry, mapping)
        assert self._t0 is not None
        t = min(now_s - self._t0, float(self.t_s[-1]))
        self.log.append((now_s, np.array([np.interp(t, self.t_s, self.voluntary_m[:, k]) for k in range(3)])))
        return out


class _LoggedSurgeon(ScriptedSurgeon):
    """The scripted surgeon, logging its voluntary hand (before tremor and noise) at every read."""

    def __init__(self, config: SurgeonConfig) -> None:
        super().__init__(config)
        self.log: list[tuple[float, np.ndarray]] = []

    def read(self, now_s: float, telemetry: p.Telemetry | None, mapping: HandToTool) -> HandInput:
        out = super().read(now_s, telemetry, mapping)
        self.log.append((now_s, self.hand_m.copy()))
        return out


def run_one(
    endpoints: Endpoints,
    delay_s: float,
    method: dict[str, Any],
    seed: int,
    scenario: Scenario | None = None,
    link: str | None = None,
    motion_scale: float = REFERENCE_SCALE,
) -> dict[str, Any]:
    """Run ``scenario`` (default ``min-jerk/Reach``) with ``method``'s stages over ``delay_s`` one way
    (jitter 10%, every channel) to the robot at ``endpoints``; what ``score`` needs. ``link``: a
    whole link spec (``telesurg.teleop.netem.spec``) instead, e.g. with loss and an outage. ``motion_scale``:
    the console's (see the module docstring)."""
    scenario = scenario or SCENARIOS["min-jerk/Reach"]
    method = dict(method)
    feedback = method.pop("feedback", "telemetry")
    if link is None:
        link = f"delay={round(delay_s * 1000)}ms jitter=10% seed={seed}" if delay_s > 0 else ""
    common: dict[str, Any] = {
        "endpoints": endpoints,
        "client": "bench",
        "rate_hz": 1.0 / PERIOD_S,
        "request_timeout_s": 3.0 + 4.0 * delay_s,
        "link_timeout_s": 1.0 + 2.0 * delay_s,
        "link": link,
        "correction": CorrectionConfig(**method),
        "mapping": MappingConfig(motion_scale=motion_scale),
    }
    pauses: list[Pause] = []
    device: _LoggedSurgeon | _LoggedReplay
    if scenario.generator == "scripted":
        surgeon = SurgeonConfig(seed=seed, feedback=feedback)
        config = ConsoleConfig(
            input="scripted", tasks=(scenario.task,), seed=100 + seed, episode_timeout_s=30.0, surgeon=surgeon, **common
        )
        device = _LoggedSurgeon(surgeon)
        duration = math.inf
    else:
        if feedback != "telemetry":
            raise ValueError("a trace replay is open loop: it cannot close its loop on the twin")
        if scenario.generator == "min-jerk":
            trace, t, voluntary = hand_trace(seed, motion_scale)
        elif scenario.generator == "figure-eight":
            trace, t, voluntary, pauses = figure_eight_trace(seed, motion_scale)
        else:
            recorded = Trace.load(scenario.trace_file)
            k = REFERENCE_SCALE / motion_scale
            trace, t, voluntary = _with_tremor(recorded.t_s, recorded.hand_m * k, recorded.jaw, seed)
        config = ConsoleConfig(
            input="trace", trace="replay.csv", tasks=(scenario.task,), seed=scenario.task_seed, **common
        )
        device = _LoggedReplay(trace, t, voluntary, hold_end_s=max(0.5, 2 * delay_s))
        duration = float(t[-1])
    console = Console(config, device=device)
    console.run()
    if not device.log or not console.mapping_log:
        raise RuntimeError(f"{scenario.name}: the console never engaged")
    result = console.results[-1] if console.results else None
    start = device.log[0][0]
    end = device.log[-1][0] if math.isinf(duration) else start + duration
    return {
        "scenario": scenario.name,
        # Replays: from when the mapping settled (min-jerk: its first stroke's start; files: 0.1 s).
        "window": (start + {"min-jerk": 0.5, "figure-eight": 0.5, "trace-file": 0.1}.get(scenario.generator, 0.0), end),
        "replay_start_s": getattr(device, "_t0", None),
        "pauses": pauses,
        "delay_s": delay_s,
        "log_t": np.array([x[0] for x in device.log]),
        "log_hand": np.array([x[1] for x in device.log]),
        "mapping": [(t0, a_hand, a_tool, m) for t0, a_hand, a_tool, m in console.mapping_log],
        "success": bool(result.success) if result else False,
        "time_s": float(result.time_s) if result else math.nan,
    }


def score(run: dict[str, Any], states: list[dict[str, Any]], hard_force_N: float) -> dict[str, float]:
    """Tracking error of one run from the robot's recorded states (robot clock = console clock: both
    are this host's monotonic clock): RMS and p99 (mm), hard-limit violations, success, time."""
    lo, hi = run["window"]
    rows = [s for s in states if lo <= s["robot_s"] <= hi]
    base = {"success": run["success"], "time_s": run["time_s"]}
    times = np.array([s["robot_s"] for s in rows])
    mapping = run["mapping"]
    starts = np.array([m[0] for m in mapping])
    which = np.searchsorted(starts, times, side="right") - 1
    keep = which >= 0
    if not keep.any():
        return {"rms_mm": math.nan, "p99_mm": math.nan, "violations": 0, "periods": 0, **base}
    log_t, log_hand = run["log_t"], run["log_hand"]
    tip = np.array([s["tip_m"] for s in rows])[keep]
    hand = np.stack([np.interp(times[keep], log_t, log_hand[:, k]) for k in range(3)], axis=1)
    intended = np.empty_like(hand)
    for i, (_, a_hand, a_tool, matrix) in enumerate(mapping):
        sel = which[keep] == i
        intended[sel] = a_tool + (hand[sel] - a_hand) @ matrix.T
    err = np.linalg.norm(tip - intended, axis=1) * 1e3
    overshoot = pause_overshoots_mm(run, times[keep], tip)
    return {
        "overshoot_mm": overshoot,
        "max_overshoot_mm": max(overshoot) if overshoot else math.nan,
        "rms_mm": float(np.sqrt(np.mean(err**2))),
        "p99_mm": float(np.percentile(err, 99)),
        "tremor_um2": tremor_power_um2(times[keep], tip - intended),
        "violations": int(sum(s["force_mag_N"] > hard_force_N for s in rows)),
        "periods": int(keep.sum()),
        **base,
    }


def pause_overshoots_mm(run: dict[str, Any], times_s: np.ndarray, tip_m: np.ndarray) -> list[float]:
    """Per pause of a figure-eight run: how far (mm) the tool tip ran past the point where the hand
    stopped, along the direction it arrived from, at most, from the pause's start until one delay
    plus 0.2 s after its end (the tool reaches the point one delay late; a predictor that keeps
    extrapolating carries it past). 0 when it never passes the point."""
    t0 = run.get("replay_start_s")
    if not run.get("pauses") or t0 is None:
        return []
    starts = np.array([m[0] for m in run["mapping"]])
    out = []
    for q in run["pauses"]:
        lo, hi = t0 + q.start_s, t0 + q.end_s + run["delay_s"] + 0.2
        i = int(np.searchsorted(starts, lo, side="right")) - 1
        sel = (times_s >= lo) & (times_s <= hi)
        if i < 0 or not sel.any():
            continue
        _, a_hand, a_tool, matrix = run["mapping"][i]
        point = a_tool + (q.point_m - a_hand) @ matrix.T
        approach = q.approach @ matrix.T
        approach = approach / max(float(np.linalg.norm(approach)), 1e-12)
        out.append(max(0.0, float(((tip_m[sel] - point) @ approach).max())) * 1e3)
    return out


@contextlib.contextmanager
def recording_robot(folder: Path, preload: tuple[str, ...] = ("Reach",)) -> Iterator[tuple[Endpoints, Path]]:
    """A `telesurg robot` (SCHED_RR where allowed) on free loopback ports, recording every topic to
    ``folder/robot.mcap``; yields its endpoints and the recording's path, and stops it after."""
    ports = free_loopback_ports(3)
    record = folder / "robot.mcap"
    robot = start(
        "robot",
        folder,
        {
            "": {"record": str(record), "realtime": True, "status_every_s": 30.0},
            "endpoints": endpoint_table(ports),
            "arm": {"preload": list(preload)},
        },
        name="robot",
        timeout_s=60,
        what="robot",
    )
    try:
        yield Endpoints("127.0.0.1", *ports), record
    finally:
        robot.stop(10)

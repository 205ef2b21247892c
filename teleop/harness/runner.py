"""Run one cell: a real `telesurg robot` and a scripted `telesurg console` as separate processes on
loopback, the link emulator inside the console process (every channel, both directions), the
cell's process fault injected from here, then the invariants judged on the robot's recordings."""

from __future__ import annotations

import bisect
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from telesurg.teleop.harness.cells import OUTAGE_AT_S, Cell
from telesurg.teleop.harness.hostprobe import read_gaps
from telesurg.teleop.harness.invariants import Check, ClockJump, check_recording, load, merge
from telesurg.teleop.harness.process import REPO, CliProcess
from telesurg.teleop.harness.stack import endpoint_table, start
from telesurg.teleop.robot.server import REALTIME_PRIORITY
from telesurg.teleop.settings import write_toml
from telesurg.teleop.wire.channels import free_loopback_ports

FORBIDDEN_M = [[[-0.065, 0.045, 0.0], [-0.055, 0.065, 0.03]]]
#: When a fault is injected, counted from the console's engage.
FAULT_AT_S = 0.5
CLOCK_JUMP_S = 1.0
#: The host probe's command line (``-c``, not ``-m``: the harness package imports the module itself).
PROBE_COMMAND = (
    sys.executable,
    "-c",
    "import sys; from telesurg.teleop.harness.hostprobe import main; sys.exit(main())",
)


@dataclass
class CellResult:
    cell: Cell
    checks: list[Check]
    success: bool
    completion_s: float
    tracking_rms_m: float
    held_safely: bool
    recordings: list[str]
    wall_s: float
    console_exit: int | None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        c = self.cell
        return {
            "name": c.name,
            "task": c.task,
            "link": c.spec,
            "mode": c.mode,
            "fault": c.fault,
            "delay_s": c.delay_s,
            "jitter": c.jitter,
            "loss": c.loss,
            "outage_s": c.outage_s,
            "outage_at_s": c.outage_at_s,
            "video": c.video,
            "video_link": c.video_link,
            "correction": dict(c.correction),
            "surgeon": dict(c.surgeon),
            "expect_hold": c.expect_hold,
            "invariants_ok": self.ok,
            "checks": [ch.to_dict() for ch in self.checks],
            "success": self.success,
            "completion_s": self.completion_s,
            "tracking_rms_m": self.tracking_rms_m,
            "held_safely": self.held_safely,
            "recordings": self.recordings,
            "wall_s": self.wall_s,
            "console_exit": self.console_exit,
            "notes": self.notes,
        }


def run_cell(
    cell: Cell, out_dir: Path, negative_controls: tuple[str, ...] = (), robot_cpu: int | None = None
) -> CellResult:
    """Run ``cell`` with its files (configs, logs, recordings, console summary) in ``out_dir``.
    ``robot_cpu``: pin the robot's control loop there, with the host probe beside it at the next
    real-time priority (its gaps set the host's share of a stall apart); None: no pinning, no probe."""
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    ports = free_loopback_ports(5)
    endpoints = endpoint_table(ports)
    video_ports = {"state_port": ports[3], "video_signal_port": ports[4]} if cell.video else {}
    recordings: list[Path] = []
    notes: list[str] = []

    def start_robot(index: int) -> CliProcess:
        rec = out_dir / f"robot-{index}.mcap"
        if rec.exists():
            rec.unlink()
        recordings.append(rec)
        supervisor = {name: True for name in negative_controls}
        return start(
            "robot",
            out_dir,
            {
                # Real-time scheduling where permitted (a robot controller runs so): the cell's own
                # console and other cells must not take the control loop's time.
                "": {
                    "record": str(rec),
                    "record_flush_s": 0.2,
                    "status_every_s": 2.0,
                    "realtime": True,
                    **video_ports,
                    **({} if robot_cpu is None else {"cpu": robot_cpu}),
                },
                "endpoints": endpoints,
                "arm": {"task": cell.task, "seed": cell.seed, "preload": [cell.task], "forbidden_m": FORBIDDEN_M},
                **({"supervisor": supervisor} if supervisor else {}),
            },
            name=f"robot-{index}",
            timeout_s=60,
            what=f"{cell.name}: robot",
        )

    def start_console(index: int, load_task: bool = True) -> CliProcess:
        console: dict[str, Any] = {
            "client": f"harness-{index}",
            "tasks": [cell.task],
            "seed": cell.seed,
            "episode_timeout_s": cell.timeout_s,
            "request_timeout_s": 3.0 + 4.0 * cell.delay_s,
            "link_timeout_s": 1.0 + 2.0 * cell.delay_s,
            "link": cell.spec,
            "load_task": load_task,
            "summary_json": str(out_dir / f"console-{index}.json"),
            "engage_wait_s": 6.0,
        }
        faults: dict[str, Any] = {}
        if cell.fault == "clock_jump_ahead":
            faults = {"clock_jump_s": CLOCK_JUMP_S, "clock_jump_at_s": FAULT_AT_S}
        if cell.fault == "clock_jump_back":
            faults = {"clock_jump_s": -CLOCK_JUMP_S, "clock_jump_at_s": FAULT_AT_S}
        if cell.fault == "estop_outage":
            faults = {"estop_at_s": OUTAGE_AT_S + cell.outage_s / 2}
        tables: dict[str, dict[str, Any]] = {"": console, "endpoints": endpoints}
        if cell.video:
            tables["video"] = {"enabled": True, "link": cell.video_link}
        if cell.correction:
            correction = dict(cell.correction)
            tables["correction"] = {k: v for k, v in correction.items() if not isinstance(v, dict)}
            for key, value in correction.items():
                if isinstance(value, dict):
                    tables[f"correction.{key}"] = value
        if cell.surgeon:
            tables["surgeon"] = dict(cell.surgeon)
        cfg = write_toml(out_dir / f"console-{index}.toml", "console", tables)
        argv = ["console", "--config", str(cfg)]
        if faults:
            argv += ["--faults", str(write_toml(out_dir / f"faults-{index}.toml", "faults", {"": faults}))]
        return CliProcess(argv, out_dir / "console.log")

    probe = None if robot_cpu is None else HostProbe(out_dir / "hostprobe.jsonl", robot_cpu)
    robot = start_robot(0)
    video = _start_video(out_dir, video_ports) if cell.video else None
    console = start_console(0)
    consoles = [console]
    try:
        if cell.fault:
            if not robot.wait_for("→ ENGAGED", 20 + 4 * cell.delay_s):
                notes.append("the console never engaged")
            time.sleep(FAULT_AT_S)
            robot = _inject(cell, robot, console, consoles, start_robot, start_console, notes)
        deadline = time.monotonic() + cell.timeout_s + 30 + 8 * cell.delay_s
        for c in consoles:
            while c.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if c.proc.poll() is None:
                notes.append("console did not finish in time; stopped")
                c.stop(5)
        time.sleep(0.5 if cell.fault != "estop_outage" else 1.0)  # the robot keeps recording after the end
    finally:
        console_exit = consoles[-1].stop(5)
        for c in consoles[:-1]:
            c.stop(2)
        if video is not None:
            video.stop(10)
        robot.stop(10)
        if probe is not None:
            probe.stop()
    if any("real-time scheduling not available" in line for line in robot.lines):
        notes.append("the robot ran without real-time scheduling (no privilege)")
    jumps = _jumps(cell, out_dir)
    gaps = tuple(read_gaps(probe.path)[0]) if probe is not None else ()
    checks = merge([check_recording(r, jumps, gaps) for r in recordings if r.exists()])
    summary = _summary(out_dir / f"console-{len(consoles) - 1}.json")
    episode = summary["episodes"][0] if summary and summary.get("episodes") else {}
    if cell.fault == "estop_outage":
        estop_ok, note = _estop_held(recordings[-1])
        notes.append(note)
        checks.append(Check("estop", estop_ok, 0.0 if estop_ok else 1.0, 0.0, "", note))
    if cell.video_outage_s:
        holds = int(((summary or {}).get("video") or {}).get("holds", 0))
        note = f"the console held {holds} time(s) for stale video"
        notes.append(note)
        checks.append(Check("video_hold", holds >= 1, float(holds), 1.0, "holds", note))
    success = bool(episode.get("success"))
    tracking = _tracking_rms(recordings)
    applied = sum(len(load(r).get("applied", [])) for r in recordings if r.exists())
    # Held safely: every invariant held and the arm did not move on the surgeon's behalf — expected
    # beyond the maximum command age, and what a link too slow for fresh commands leads to.
    held = all(c.ok for c in checks) and not success and (cell.expect_hold or applied == 0)
    return CellResult(
        cell=cell,
        checks=checks,
        success=success,
        completion_s=float(episode.get("time_s", float("nan"))),
        tracking_rms_m=tracking,
        held_safely=held,
        recordings=[str(r) for r in recordings if r.exists()],
        wall_s=time.monotonic() - started,
        console_exit=console_exit,
        notes=notes,
    )


class HostProbe:
    """``telesurg.teleop.harness.hostprobe`` pinned to the robot's CPU, one real-time priority above it."""

    def __init__(self, path: Path, cpu: int) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            [*PROBE_COMMAND, "--out", str(path), "--cpu", str(cpu), "--priority", str(REALTIME_PRIORITY + 1)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _start_video(out_dir: Path, ports: dict[str, int]) -> CliProcess:
    """The media process (renderer included) beside the robot, without the web viewer."""
    return start(
        "video",
        out_dir,
        {
            "": {"signal_port": ports["video_signal_port"], "http_port": 0},
            "renderer": {"state_url": f"tcp://127.0.0.1:{ports['state_port']}"},
        },
        name="video",
        timeout_s=60,
        what="media process",
    )


def _inject(
    cell: Cell, robot: CliProcess, console: CliProcess, consoles: list, start_robot, start_console, notes
) -> CliProcess:
    """Inject the cell's process fault; returns the robot process now running."""
    if cell.fault == "console_kill":
        console.kill()
        notes.append("console SIGKILLed mid-motion")
    elif cell.fault == "console_restart":
        console.kill()
        time.sleep(0.3)
        consoles.append(start_console(1, load_task=False))
        notes.append("console SIGKILLed and restarted (re-engages once the old session times out)")
    elif cell.fault == "robot_restart":
        robot.kill()
        time.sleep(0.5)
        robot = start_robot(1)
        notes.append("robot SIGKILLed and restarted on the same ports")
    return robot


def _jumps(cell: Cell, out_dir: Path) -> tuple[ClockJump, ...]:
    if not cell.fault.startswith("clock_jump"):
        return ()
    info = _summary(out_dir / "console-0.json") or {}
    jump = info.get("clock_jump")
    if not jump:
        return ()
    return (ClockJump(jump["session"], jump["first_seq"], jump["jump_s"]),)


def _summary(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _tracking_rms(recordings: list[Path]) -> float:
    """RMS distance (m) between the tool tip and the newest applied command target while ENGAGED."""
    errors: list[float] = []
    for rec in recordings:
        if not rec.exists():
            continue
        t = load(rec)
        cmds = sorted((c["received_robot_s"], c["target_m"]) for c in t.get("applied", []) if c["clutch"])
        times = [c[0] for c in cmds]
        for s in t.get("state", []):
            if s["state"] != "ENGAGED":
                continue
            i = bisect.bisect_right(times, s["robot_s"])
            if i:
                errors.append(float(np.linalg.norm(np.asarray(s["tip_m"]) - np.asarray(cmds[i - 1][1]))))
    return float(np.sqrt(np.mean(np.square(errors)))) if errors else float("nan")


def _estop_held(recording: Path) -> tuple[bool, str]:
    """After the e-stop latched the arm stays in ESTOP and does not move."""
    t = load(recording)
    events = [e for e in t.get("events", []) if e["state"] == "ESTOP"]
    if not events:
        return False, "the e-stop never reached the robot"
    at = events[0]["robot_s"]
    after = [s for s in t.get("state", []) if s["robot_s"] >= at + 0.05]
    if not after:
        return False, "no recording after the e-stop"
    tips = np.array([s["tip_m"] for s in after])
    moved = float(np.max(np.linalg.norm(tips - tips[0], axis=1)))
    states = {s["state"] for s in after}
    ok = states == {"ESTOP"} and moved < 0.0005
    return (
        ok,
        f"e-stop latched {at - t['state'][0]['robot_s']:.2f} s into the recording; moved {moved * 1000:.3f} mm after",
    )

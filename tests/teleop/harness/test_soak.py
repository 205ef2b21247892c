"""The soak (`telesurg soak`): a crafted recording split into windows and judged as it is read; a
short real soak of the whole stack (robot, media process, browser, consoles over a bad link) that
writes its windows as it goes and checks its recording; an interrupted soak that keeps its windows
and leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from telesurg.teleop.harness import procstats
from telesurg.teleop.harness.recording_windows import RecordingWindows
from telesurg.teleop.harness.soak import TASKS
from telesurg.teleop.harness.soak_report import WINDOW_KEYS
from telesurg.teleop.robot.reader import RecordingTail
from telesurg.teleop.robot.recorder import Recorder
from telesurg.teleop.robot.records import (
    RECORD_TYPES,
    TOPIC_APPLIED,
    TOPIC_CONFIG,
    TOPIC_CONTROL,
    TOPIC_STALLS,
    TOPIC_STATE,
    CommandRecord,
    ConfigRecord,
    ControlRecord,
    StallRecord,
    StateRecord,
)

from ...system_programs import require

REPO = Path(__file__).resolve().parents[3]
PERIOD_S = 0.002
#: Every telesurg process a window must have figures for (the browser's are reported too).
PROCESSES = ("robot", "robot/recorder", "video", "video/renderer", "console")


# ---------------------------------------------------------------------- a crafted recording
def _config(t: float) -> ConfigRecord:
    return ConfigRecord(
        robot_s=t,
        arm="psm1",
        task="Reach",
        seed=0,
        control_period_s=PERIOD_S,
        watchdog_s=0.1,
        age_slowdown_s=0.3,
        max_age_s=0.75,
        max_tip_speed_m_s=0.1,
        max_jaw_rate_per_s=1.0,
        hard_force_N=6.0,
        workspace_low_m=(-0.1, -0.1, 0.0),
        workspace_high_m=(0.1, 0.1, 0.1),
        forbidden_m=[],
        negative_controls=[],
    )


def _state(t: float, period_s: float, seq: int) -> StateRecord:
    tip = (0.0, 0.0, 0.05)
    return StateRecord(t, period_s, tip, tip, 0.0, 0.0, (0.0, 0.0, 0.0), 0.0, 0.0, "ENGAGED", "", seq, "s1")


def _write(path: Path, start_s: float, end_s: float) -> dict[str, int]:
    """Control periods from ``start_s`` to ``end_s`` (each a few µs off the 2 ms grid, as measured
    periods are; a command applied every 5 ms, 200 ms old), with one period's record left out at
    100.5 s, a 12 ms stall recorded at 101.5 s and a 12 ms gap with no stall record at 101.7 s.
    Returns what was written."""
    rng = np.random.default_rng(0)
    rec = Recorder(path)
    ch = {topic: rec.channel(topic, struct) for topic, struct in RECORD_TYPES.items()}
    rec.write(ch[TOPIC_CONFIG], _config(start_s - 0.1), 0)
    rec.write(ch[TOPIC_CONTROL], ControlRecord(start_s - 0.05, "c", "engage", True, "", "s1"), 0)
    grid, prev, seq, states, left_out = start_s, start_s - PERIOD_S, 0, 0, False
    next_cmd = start_s
    while grid < end_s:
        t = grid + rng.uniform(0.0, 5e-6)
        if t >= next_cmd:
            seq += 1
            cmd = CommandRecord(t, "s1", seq, t - 0.2, (0.0, 0.0, 0.05), 0.0, True, False, True, "", "", 0.2, 0.0)
            rec.write(ch[TOPIC_APPLIED], cmd, 0)
            next_cmd = t + 0.005
        if not left_out and grid >= 100.5:
            left_out = True  # this period's record is lost
        else:
            rec.write(ch[TOPIC_STATE], _state(t, t - prev, seq), 0)
            states += 1
        prev = t
        step = PERIOD_S
        for at, recorded in ((101.5, True), (101.7, False)):
            if abs(grid - at) < PERIOD_S / 2:
                step = 0.012
                if recorded:
                    rec.write(ch[TOPIC_STALLS], StallRecord(t, step, 0.0, 0.0, 0.0, step, 0.0, "wait"), 0)
        grid = round(grid + step, 6)
    rec.close()
    return {"states": states, "commands": seq}


def test_a_growing_recording_is_filed_into_windows_judged_on_slices_and_checked_for_missing_periods(
    tmp_path: Path,
) -> None:
    full = tmp_path / "full.mcap"
    written = _write(full, 99.5, 102.5)
    data = full.read_bytes()
    growing = tmp_path / "robot.mcap"
    tail = RecordingTail(growing)
    windows = RecordingWindows(tmp_path / "windows", start_s=100.0, window_s=1.0, end_s=102.0)
    assert windows.windows == 2
    done = []
    for end in [*range(0, len(data), 4096), len(data)]:  # the file grows while it is read
        growing.write_bytes(data[:end])
        windows.feed(tail.read_new())
        while windows.ready:
            done.append(windows.close([], partial=windows.current.index > windows.windows))
    assert tail.finished
    done.append(windows.close([], partial=True))  # what came after the last window
    assert [w["index"] for w in done] == [1, 2, 3]
    # Every control period in exactly one window; the first holds the start-up before its start.
    assert sum(w["periods"]["states"] for w in done) == written["states"]
    assert done[0]["periods"]["states"] == round(0.5 / PERIOD_S) + round(1.0 / PERIOD_S) - 1  # one left out
    assert sum(w["latency"]["samples"] for w in done) == written["commands"]
    assert done[0]["latency"]["p50_ms"] == pytest.approx(200.0) and done[1]["latency"]["p99_ms"] == pytest.approx(200.0)
    # The lost record is found where it was, the recorded stall is not a hole, the other long gap is.
    c = windows.completeness
    assert (c.missing, c.unexplained, c.ok) == (1, 1, False)
    assert done[0]["periods"]["missing"] == 1 and done[1]["periods"]["unexplained_gaps"] == 1
    assert done[1]["stalls"]["wait"] == 1 and done[1]["periods"]["over_5x"] == 2
    # Judged per window: the stalls break the stall invariant in window 2 only, whose slice is kept;
    # everything else holds in every window (the slices carry the config, the grant and the commands
    # from before them).
    assert done[0]["invariants"]["ok"] and done[2]["invariants"]["ok"]
    checks = {ch["name"]: ch for ch in done[1]["invariants"]["checks"]}
    assert not checks["stall"]["ok"] and checks["stall"]["figure"] == pytest.approx(0.012, abs=1e-5)
    assert all(ch["ok"] for name, ch in checks.items() if name != "stall"), checks
    assert Path(done[1]["invariants"]["slice"]).is_file()
    windows.discard()
    assert [p.name for p in (tmp_path / "windows").iterdir()] == ["window-002.mcap"]


def test_every_recorded_topic_has_a_time_to_be_filed_by() -> None:
    """A topic the robot records but the windows cannot place (the /robot/task topic once) stops
    every soak at its first message."""
    import msgspec

    from telesurg.teleop.harness.recording_windows import _TIME_FIELD
    from telesurg.teleop.robot.records import RECORD_TYPES

    for topic, struct in RECORD_TYPES.items():
        if topic == TOPIC_STALLS:
            continue
        assert topic in _TIME_FIELD, topic
        assert _TIME_FIELD[topic] in {f.name for f in msgspec.structs.fields(struct)}, topic


def test_soak_refuses_a_window_longer_than_the_run(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "telesurg.teleop.cli",
            "soak",
            "--minutes",
            "1",
            "--window-minutes",
            "2",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "longer than the soak" in proc.stderr, proc.stderr


# ---------------------------------------------------------------------- the real soak
def _soak(out: Path, minutes: str, window_minutes: str) -> subprocess.Popen:
    require("chromium")
    argv = ["soak", "--minutes", minutes, "--window-minutes", window_minutes, "--out", str(out)]
    return subprocess.Popen(
        [sys.executable, "-m", "telesurg.teleop.cli", *argv],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _windows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "windows.jsonl").read_text().splitlines()]


def _only_stalls_broke(windows: list[dict]) -> bool:
    """KNOWN ISSUE (as in the safety harness): on these shared 2-core machines a control period of
    10–30 ms occasionally appears even under real-time scheduling. The soak judges it (timing is not
    what these tests check); every other invariant must hold."""
    return all(ch["ok"] or ch["name"] == "stall" for w in windows for ch in w["invariants"]["checks"])


@pytest.mark.slow
def test_a_short_soak_writes_each_window_as_it_goes_and_checks_the_whole_recording(tmp_path: Path) -> None:
    out = tmp_path / "soak"
    # 3.5 min: a console cycle of all five tasks fits even when each one runs to its timeout.
    proc = _soak(out, "3.5", "0.5")
    lines: list[str] = []
    seen_while_running = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith("[window "):
                seen_while_running.append(len(_windows(out)))  # written before the line was printed
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "\n".join(lines)
    summary = json.loads((out / "summary.json").read_text())
    windows = _windows(out)
    full = [w for w in windows if not w["partial"]]
    assert proc.returncode in (0, 1), text[-3000:]
    assert proc.returncode == 0 or _only_stalls_broke(windows), text[-3000:]
    assert not summary["failure"] and not summary["interrupted"], summary["failure"]
    # Written as it went: each window was on disk when its progress line came, one line each.
    assert seen_while_running == list(range(1, len(windows) + 1)), seen_while_running
    assert len(full) >= 3 and (out / "windows.md").read_text().count("\n| ") >= len(windows)
    for w in windows:
        assert set(WINDOW_KEYS) <= set(w), sorted(set(WINDOW_KEYS) - set(w))
        assert {c["name"] for c in w["invariants"]["checks"]} == {
            "force",
            "hold",
            "commands",
            "speed",
            "workspace",
            "stall",
        }
    for w in full:
        assert w["latency"]["samples"] > 0 and w["latency"]["p99_ms"] >= w["latency"]["p50_ms"] > 150.0, w["latency"]
        assert w["periods"]["count"] > 0.9 * w["duration_s"] / PERIOD_S, w["periods"]
        # The browser stayed attached and kept decoding frames.
        assert w["browser"]["frames_in_window"] > 0 and w["browser"]["connection"] == "connected", w["browser"]
        for role in PROCESSES:
            entry = w["processes"].get(role)
            assert entry and entry["rss_bytes"] > 10 * 2**20 and entry["fds"] > 0, (role, w["processes"])
        assert w["processes"]["browser"]["rss_bytes"] > 10 * 2**20
        assert w["recording_bytes"] > 0
    sizes = [w["recording_bytes"] for w in full]
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0]
    # Every task ran (an episode ended, in success or not): the console cycled through all five.
    ran = {task for w in windows for task in w["tasks"]["by_task"]}
    assert ran == set(TASKS), ran
    # The recording: every period present, closed by the robot, read whole by the mcap library.
    rec = summary["recording"]
    assert rec["ok"] and rec["closed"] and rec["complete"]["missing"] == 0, rec
    assert rec["mcap_reader"]["summary"] and rec["mcap_reader"]["messages"] == rec["messages_read"] > 0, rec
    assert {t["name"] for t in summary["targets"]} == {
        "invariants",
        "memory growth",
        "command latency drift",
        "video latency drift",
        "recording",
    }
    assert "| target | goal | figure | verdict |" in text and "[window 1/7]" in text  # progress and table


@pytest.mark.slow
def test_an_interrupted_soak_keeps_its_windows_and_leaves_no_process_behind(tmp_path: Path) -> None:
    out = tmp_path / "soak"
    proc = _soak(out, "10", "0.5")
    lines: list[str] = []
    names: dict[int, str] = {}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith("[window 1/"):
                names = {pid: procstats.cmdline(pid)[:100] for pid in procstats.descendants(proc.pid)}
                proc.send_signal(signal.SIGINT)
                break
        rest, _ = proc.communicate(timeout=180)
        lines += rest.splitlines()
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "\n".join(lines)
    windows = _windows(out)
    assert proc.returncode in (130, 1), text[-3000:]
    assert proc.returncode == 130 or _only_stalls_broke(windows), text[-3000:]
    assert "SIGINT: stopping" in text
    # The first window as it was written, and the rest (cut short) as a partial one.
    assert windows[0]["index"] == 1 and not windows[0]["partial"]
    assert len(windows) >= 2 and windows[-1]["partial"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and summary["recording"]["ok"], summary["recording"]
    # Robot, recorder, media process, renderer, console, host probe, browser: all gone.
    assert len(names) >= 8 and any("chrom" in n for n in names.values()), names
    for part in ("cli robot", "cli video", "cli console", "hostprobe", "spawn_main"):
        assert any(part in n for n in names.values()), (part, names)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(procstats.alive(pid) for pid in names):
        time.sleep(0.2)
    assert not [n for pid, n in names.items() if procstats.alive(pid)]

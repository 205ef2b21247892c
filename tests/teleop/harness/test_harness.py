"""The safety harness: the reduced matrix passes every invariant; negative controls (the watchdog or
the speed limit disabled through a test-only setting) make the matching invariant fail; each check
fails on a recording that breaks it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from telesurg.teleop.harness.hostprobe import Gap
from telesurg.teleop.harness.invariants import ClockJump, check_recording
from telesurg.teleop.robot.recorder import Recorder
from telesurg.teleop.robot.records import (
    TOPIC_APPLIED,
    TOPIC_CONFIG,
    TOPIC_CONTROL,
    TOPIC_EVENTS,
    TOPIC_STALLS,
    TOPIC_STATE,
    CommandRecord,
    ConfigRecord,
    ControlRecord,
    EventRecord,
    StallRecord,
    StateRecord,
)

REPO = Path(__file__).resolve().parents[3]


def _safety(out: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "telesurg.teleop.cli", "safety", "--out", str(out), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _cells(out: Path) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads((out / "cells.json").read_text())["cells"]}


@pytest.mark.slow
def test_the_quick_matrix_passes_every_invariant_and_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = _safety(out, "--quick")  # once: the stall invariant included, the first run must pass
    report = (out / "summary.md").read_text() if (out / "summary.md").exists() else ""
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + report
    cells = _cells(out)
    names = set(cells)
    # Delay, loss (message level), an outage, a console kill and every correction stage on are covered.
    assert any("/d200/" in n for n in names) and any("/l20/message" in n for n in names)
    assert any("outage" in n for n in names) and any("console_kill" in n for n in names)
    all_stages = cells["reach/d200/all-stages"]
    assert all_stages["correction"]["prediction"] == "learned" and all_stages["correction"]["twin_enabled"]
    assert all_stages["surgeon"] == {"feedback": "twin"}
    for cell in cells.values():
        assert cell["invariants_ok"], cell
        assert {c["name"] for c in cell["checks"]} >= {"force", "hold", "commands", "speed", "workspace", "stall"}
        assert cell["recordings"] and all(Path(r).is_file() for r in cell["recordings"])
    assert cells["reach/d0/j0/l0/tcp"]["success"], cells["reach/d0/j0/l0/tcp"]
    summary = (out / "summary.md").read_text()
    assert "every invariant held in every cell" in summary
    assert (out / "heatmap_tcp.png").stat().st_size > 1000 and (out / "outage_timeline.png").stat().st_size > 1000
    assert "[  6/6]" in proc.stdout and "ETA" in proc.stdout  # progress lines


@pytest.mark.slow
def test_negative_control_watchdog_off_fails_the_hold_invariant(tmp_path: Path) -> None:
    out = tmp_path / "neg"
    proc = _safety(out, "--quick", "--cells", "console_kill", "--negative-control", "watchdog")
    assert proc.returncode == 1, proc.stdout[-3000:]
    (cell,) = _cells(out).values()
    checks = {c["name"]: c for c in cell["checks"]}
    assert not checks["hold"]["ok"] and checks["hold"]["figure"] > 0.5, checks["hold"]
    assert "INVARIANTS FAILED" in (out / "summary.md").read_text()


@pytest.mark.slow
def test_negative_control_speed_limit_off_fails_the_speed_invariant(tmp_path: Path) -> None:
    # After an outage the console's target has run ahead: without the limit the arm jumps to it.
    out = tmp_path / "neg"
    proc = _safety(out, "--quick", "--cells", "outage", "--negative-control", "speed")
    assert proc.returncode == 1, proc.stdout[-3000:]
    (cell,) = _cells(out).values()
    checks = {c["name"]: c for c in cell["checks"]}
    assert not checks["speed"]["ok"] and checks["speed"]["figure"] > 0.2, checks["speed"]


# ---------------------------------------------------------------------- each check on crafted recordings
CONFIG = dict(
    arm="psm1",
    task="Reach",
    seed=0,
    control_period_s=0.002,
    watchdog_s=0.1,
    age_slowdown_s=0.3,
    max_age_s=0.75,
    max_tip_speed_m_s=0.1,
    max_jaw_rate_per_s=1.0,
    hard_force_N=6.0,
    workspace_low_m=(-0.1, -0.1, -0.1),
    workspace_high_m=(0.1, 0.1, 0.1),
    forbidden_m=[((0.05, 0.05, 0.05), (0.08, 0.08, 0.08))],
    negative_controls=[],
)


def _record(path: Path, n: int = 500, stalls: tuple[StallRecord, ...] = (), **change) -> Path:
    """A clean recording of an engaged arm moving at 0.05 m/s along x, commanded every period;
    ``change`` hooks alter single periods: state(i, dict), applied(i, dict); ``stalls`` are recorded
    as the server records its long periods."""
    with Recorder(path) as rec:
        ch = {
            t: rec.channel(t, c)
            for t, c in (
                (TOPIC_CONFIG, ConfigRecord),
                (TOPIC_STATE, StateRecord),
                (TOPIC_APPLIED, CommandRecord),
                (TOPIC_EVENTS, EventRecord),
                (TOPIC_CONTROL, ControlRecord),
                (TOPIC_STALLS, StallRecord),
            )
        }
        for stall in stalls:
            rec.write(ch[TOPIC_STALLS], stall, 5)
        rec.write(ch[TOPIC_CONFIG], ConfigRecord(robot_s=0.0, **CONFIG), 1)
        rec.write(ch[TOPIC_CONTROL], ControlRecord(1.0, "c", "engage", True, "", "1-aa"), 2)
        rec.write(ch[TOPIC_EVENTS], EventRecord(1.0, "IDLE", "ENGAGED", "engaged by c"), 3)
        for i in range(n):
            t = 1.0 + 0.002 * i
            x = -0.02 + 0.0001 * i
            state = dict(
                robot_s=t,
                period_s=0.002,
                tip_m=(x, 0.0, 0.0),
                setpoint_m=(x, 0.0, 0.0),
                jaw=0.0,
                jaw_setpoint=0.0,
                force_N=(0.0, 0.0, 0.0),
                force_mag_N=0.0,
                force_peak_N=0.0,
                state="ENGAGED",
                reason="",
                last_cmd_seq=i + 1,
                session="1-aa",
            )
            cmd = dict(
                received_robot_s=t + 0.0005,
                session="1-aa",
                seq=i + 1,
                sent_console_s=t + 0.0004,
                target_m=(x, 0.0, 0.0),
                jaw=0.0,
                clutch=True,
                estop=False,
                accepted=True,
                code="",
                reason="",
                age_s=0.0001,
                clock_offset_s=0.0,
                clock_uncertainty_s=0.0001,
            )
            if "state" in change:
                change["state"](i, state)
            skip = "applied" in change and change["applied"](i, cmd) is False
            rec.write(ch[TOPIC_STATE], StateRecord(**state), 10 + i)
            if not skip:
                rec.write(ch[TOPIC_APPLIED], CommandRecord(**cmd), 10 + i)
    return path


def _failed(path: Path, jumps=(), gaps=()) -> set[str]:
    return {c.name for c in check_recording(path, jumps, gaps) if not c.ok}


def test_a_clean_recording_passes(tmp_path: Path) -> None:
    assert _failed(_record(tmp_path / "ok.mcap")) == set()


def test_each_invariant_fails_on_a_recording_that_breaks_it(tmp_path: Path) -> None:
    def force(i, s):
        if i == 200:
            s["force_peak_N"] = 6.5

    def gap(i, c):
        return not 100 <= i < 200  # 200 ms without a valid command while ENGAGED

    def stale(i, c):
        if i == 300:
            c["sent_console_s"] -= 1.0

    def foreign(i, c):
        if i == 310:
            c["session"] = "2-bb"

    def reorder(i, c):
        if i == 320:
            c["seq"] = 5

    def jump(i, s):
        if i >= 250:
            s["tip_m"] = (s["tip_m"][0] + 0.01, 0.0, 0.0)  # a 10 mm jump
            s["setpoint_m"] = s["tip_m"]

    def forbidden(i, s):
        if i == 400:
            s["tip_m"] = s["setpoint_m"] = (0.06, 0.06, 0.06)

    def stall(i, s):
        if i == 100:
            s["period_s"] = 0.02

    cases = {
        "force": dict(state=force),
        "hold": dict(applied=gap),
        "commands": dict(applied=stale),
        "speed": dict(state=jump),
        "workspace": dict(state=forbidden),
        "stall": dict(state=stall),
    }
    for name, change in cases.items():
        assert name in _failed(_record(tmp_path / f"{name}.mcap", **change)), name
    for name, hook in (("foreign", foreign), ("reorder", reorder)):
        assert "commands" in _failed(_record(tmp_path / f"{name}.mcap", applied=hook)), name


def test_an_injected_clock_jump_is_undone_before_judging_age(tmp_path: Path) -> None:
    def ahead(i, c):
        if i >= 100:
            c["sent_console_s"] += 1.0  # the console clock jumped 1 s ahead from seq 101 on

    def behind(i, c):
        if i >= 100:
            c["sent_console_s"] -= 1.0  # … or 1 s back: these look 1 s old unless undone

    assert "commands" not in _failed(_record(tmp_path / "a.mcap", applied=ahead), (ClockJump("1-aa", 101, 1.0),))
    path = _record(tmp_path / "b.mcap", applied=behind)
    assert "commands" in _failed(path)
    assert "commands" not in _failed(path, (ClockJump("1-aa", 101, -1.0),))


def test_records_are_plain_structs() -> None:
    assert msgspec.json.decode(msgspec.json.encode(ConfigRecord(robot_s=0.0, **CONFIG)))["hard_force_N"] == 6.0


def test_a_stall_is_set_apart_as_the_hosts_only_when_the_probe_was_held_up_as_long(
    tmp_path: Path,
) -> None:
    def stall(i, s):
        if i == 100:
            s["period_s"] = 0.02  # the period that ended at 1.2 s began at 1.18 s

    def record(name: str, kind: str | None) -> Path:
        rec = () if kind is None else (StallRecord(1.18, 0.02, 0.0, 0.0, 0.0003, 0.0197, 0.0, kind),)
        return _record(tmp_path / f"{name}.mcap", stalls=rec, state=stall)

    probe_long = (Gap(1.181, 0.016),)  # ≥ 80% of its 18 ms lateness, at the same moment
    probe_split = (Gap(1.181, 0.008), Gap(1.1895, 0.008))  # the same, seen as two gaps in a row
    probe_short = (Gap(1.181, 0.010),)
    probe_elsewhere = (Gap(3.0, 0.05),)
    wait = record("wait", "wait")
    assert _failed(wait, gaps=probe_long) == set()
    check = next(c for c in check_recording(wait, (), probe_long) if c.name == "stall")
    assert "1 longer period(s) (1 wait, 0 work) set apart as the host's" in check.detail and check.figure <= 0.0021
    assert _failed(wait, gaps=probe_split) == set()
    assert "stall" in _failed(wait, gaps=probe_short)
    # A failing stall carries its evidence: the record's breakdown and the probe's gaps beside it.
    check = next(c for c in check_recording(wait, (), probe_short) if c.name == "stall")
    assert "20.0 ms from robot time 1.1800 s, wait:" in check.detail and "wait 19.70" in check.detail
    assert "+1.0 ms: 10.00 (0.00 queued)" in check.detail and "host share 10.00 ms" in check.detail
    assert "stall" in _failed(wait, gaps=probe_elsewhere)
    assert "stall" in _failed(wait)
    # The probe runs above the robot: held up through the robot's work, the CPU was taken from both.
    work = record("work", "work")
    assert _failed(work, gaps=probe_long) == set()
    assert "stall" in _failed(work, gaps=probe_short)
    assert "stall" in _failed(work)
    # A long period without a stall record is never the host's.
    assert "stall" in _failed(record("unknown", None), gaps=probe_long)


def test_a_work_stall_in_which_the_loop_did_not_run_is_the_hosts_without_the_probe(tmp_path: Path) -> None:
    """The loop's CPU clock leaves out time the hypervisor took: 19 ms of work that cost the loop
    0.5 ms of its own CPU was the host's, even where the probe (runnable, queued) saw nothing."""

    def stall(i, s):
        if i == 100:
            s["period_s"] = 0.02

    def record(name: str, kind: str, cpu_s: float, queued_s: float = 0.0, blocked: bool = False) -> Path:
        rec = StallRecord(1.18, 0.02, 0.0002, 0.0, 0.0195, 0.0003, 0.0, kind, work_cpu_s=cpu_s, work_queued_s=queued_s)
        rec.work_blocked = blocked
        return _record(tmp_path / f"{name}.mcap", stalls=(rec,), state=stall)

    assert _failed(record("stolen", "work", 0.0005)) == set()
    check = next(c for c in check_recording(record("stolen2", "work", 0.0005), (), ()) if c.name == "stall")
    assert "(0 wait, 1 work) set apart as the host's" in check.detail
    assert "stall" in _failed(record("ran", "work", 0.019))  # it ran all along: its own work
    assert "stall" in _failed(record("unmeasured", "work", -1.0))  # no CPU time recorded: not evidence
    # Not running because it slept (a lock, a blocking call) or waited behind a higher priority in
    # the guest is the guest's.
    assert "stall" in _failed(record("slept", "work", 0.0005, blocked=True))
    assert "stall" in _failed(record("queued", "work", 0.0005, queued_s=0.015))
    # A wait stall's lateness is not in its work: the loop's CPU clock says nothing about it.
    assert "stall" in _failed(record("wait", "wait", 0.0))

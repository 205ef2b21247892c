"""The teleoperation stack end to end: a real `telesurg robot` process, real ZeroMQ sockets on
loopback, consoles as clients or subprocesses, and the robot's MCAP recording as the ground truth."""

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

from telesurg.teleop.robot.reader import read_topic
from telesurg.teleop.wire import protocol as p
from telesurg.teleop.wire.channels import ClientKeys, generate_keys

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.slow


def _tip(tel) -> np.ndarray:
    return np.asarray(tel.tool.pos_m)


def _console(robot, tmp_path: Path, *args: str) -> subprocess.Popen:
    e = robot.endpoints
    cfg = tmp_path / f"console-{e.cmd_port}.toml"
    cfg.write_text(
        "[console]\n"
        f"[console.endpoints]\ncmd_port = {e.cmd_port}\ntelemetry_port = {e.telemetry_port}\n"
        f"control_port = {e.control_port}\n"
    )
    return subprocess.Popen(
        [sys.executable, "-m", "telesurg.teleop.cli", "console", "--config", str(cfg), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_console_drives_the_arm_to_a_target(robot, client):
    r = robot()
    c = client(r.endpoints)
    c.connect()
    start = _tip(c.telemetry())
    assert c.engage().ok
    target = tuple(start + np.array([0.01, -0.008, -0.01]))
    tel = c.drive(target, duration_s=0.6)
    # 17 mm at the 0.1 m/s limit takes 0.17 s; the arm is there well within the drive.
    assert np.linalg.norm(_tip(tel) - np.asarray(target)) < 0.001
    assert tel.state == "ENGAGED" and tel.last_cmd_seq >= c.seq - 5


def test_scripted_surgeon_completes_reach_through_the_stack(robot, tmp_path):
    r = robot()
    summary = tmp_path / "summary.json"
    proc = _console(r, tmp_path, "--tasks", "Reach", "--seed", "3", "--summary-json", str(summary))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    s = json.loads(summary.read_text())
    assert s["episodes"][0]["task"] == "Reach" and s["episodes"][0]["success"] is True
    assert s["latency_samples"] > 10
    r.stop()
    # The robot's recording agrees: the session's commands were applied and the task was reached.
    applied = read_topic(r.record, "/robot/applied")
    assert len(applied) > 10 and all(a["accepted"] for a in applied)


def test_killing_the_console_holds_the_arm_within_the_watchdog(robot, tmp_path):
    r = robot()
    proc = _console(r, tmp_path, "--tasks", "Palpate", "--seed", "1")
    # Let it engage and move for a while, then kill it mid-motion.
    deadline = time.monotonic() + 30
    assert proc.stdout is not None
    time.sleep(2.0)
    while time.monotonic() < deadline and not any("ENGAGED" in line for line in r.lines):
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    time.sleep(0.6)
    r.stop()
    applied = read_topic(r.record, "/robot/applied")
    events = read_topic(r.record, "/robot/events")
    states = read_topic(r.record, "/robot/state")
    last_valid = applied[-1]["received_robot_s"]
    holds = [e for e in events if e["state"] == "HOLD" and e["robot_s"] >= last_valid]
    assert holds, events
    hold_s = holds[0]["robot_s"]
    assert "watchdog" in holds[0]["reason"]
    assert hold_s - last_valid <= 0.1 + 0.05, (hold_s - last_valid, holds[0])
    # The tool stops: after the hold has settled (50 ms), it moves less than 0.3 mm.
    after = np.array([s["tip_m"] for s in states if s["robot_s"] > hold_s + 0.05])
    assert len(after) > 100
    assert np.max(np.linalg.norm(after - after[0], axis=1)) < 0.0003


def test_out_of_order_stale_and_foreign_commands_are_never_applied(robot, client):
    r = robot()
    c = client(r.endpoints)
    c.connect()
    start = _tip(c.telemetry())
    assert c.engage().ok
    hold = tuple(start)
    c.drive(hold, 0.2)
    good = c.seq
    away = tuple(start + np.array([0.0, 0.0, 0.02]))

    def send(**kw) -> None:
        c.link.ping()
        c.link.poll_control()
        c.command(away, **kw)
        time.sleep(0.02)  # the cmd socket keeps only the newest: let each one be judged

    send(seq=good - 3)  # out of order
    send(seq=good + 100, session="1-deadbeef")  # foreign session
    send(seq=good + 101, sent_console_s=c.link.clock() - 2.0)  # stale (2 s old)
    send(seq=good + 102, sent_console_s=c.link.clock() + 1.0)  # from the future (console clock jumped)
    tel = c.telemetry()
    r.stop()
    applied = read_topic(r.record, "/robot/applied")
    assert applied and not [a for a in applied if abs(a["target_m"][2] - away[2]) < 1e-9]
    assert max(a["seq"] for a in applied) == good  # nothing after the last good command
    received = {(cmd["seq"], cmd["code"]) for cmd in read_topic(r.record, "/robot/commands")}
    for code in ("out_of_order", "foreign_session", "stale", "clock_ahead"):
        assert any(c_ == code for _, c_ in received), (code, received)
        assert tel.counters.get(f"cmd.{code}", 0) >= 1, tel.counters
    # And the arm never went toward the refused target.
    states = read_topic(r.record, "/robot/state")
    assert max(s["tip_m"][2] for s in states) < start[2] + 0.001


def test_estop_latches_also_from_the_command_flag(robot, client):
    r = robot()
    c = client(r.endpoints)
    c.connect()
    start = _tip(c.telemetry())
    assert c.engage().ok
    c.drive(tuple(start), 0.1)
    c.command(tuple(start), estop=True)
    tel = c.wait_for(lambda t: t.state == "ESTOP")
    assert "flag in command" in tel.reason
    # Latched: commands are refused, engage is refused, until an explicit reset.
    c.drive(tuple(start + np.array([0.0, 0.0, 0.02])), 0.3)
    tel = c.telemetry()
    assert tel.state == "ESTOP"
    assert np.linalg.norm(_tip(tel) - start) < 0.0005
    assert not c.engage().ok
    assert c.link.request(p.Reset(client="test")).ok
    c.wait_for(lambda t: t.state == "IDLE")
    assert c.engage().ok
    # The e-stop request on the control channel latches too, from anyone (no hello needed).
    stranger = client(r.endpoints, "stranger")
    assert stranger.link.request(p.EStop(reason="test button")).ok
    tel = c.wait_for(lambda t: t.state == "ESTOP")
    assert "test button" in tel.reason


def test_a_second_console_is_refused(robot, client):
    r = robot()
    a, b = client(r.endpoints, "console-a"), client(r.endpoints, "console-b")
    a.connect()
    b.connect()
    assert a.engage().ok
    refused = b.engage()
    assert not refused.ok and "console-a" in refused.reason
    # b's commands with a's session id cannot be forged either: they count as a's only if the id
    # matches, so using its own (empty) session is refused.
    start = _tip(a.telemetry())
    b.session = "2-00000000"
    b.drive(tuple(start + np.array([0.0, 0.0, 0.02])), 0.2)
    assert b.telemetry().counters.get("cmd.foreign_session", 0) > 0


def test_a_client_without_the_curve_key_moves_nothing(robot, client, tmp_path):
    keys = tmp_path / "keys"
    generate_keys(keys, "robot")
    generate_keys(keys / "authorized", "console")
    generate_keys(tmp_path / "stranger", "stranger")
    r = robot(
        keys__secret_file=str(keys / "robot.key_secret"),
        keys__authorized_dir=str(keys / "authorized"),
    )
    good = client(r.endpoints, "good", ClientKeys(keys / "authorized" / "console.key_secret", keys / "robot.key"))
    good.connect()
    start = _tip(good.telemetry())
    # A stranger with its own key pair, and a client without CURVE at all: neither gets an answer
    # nor telemetry, and their commands never move the arm.
    stranger_keys = ClientKeys(tmp_path / "stranger" / "stranger.key_secret", keys / "robot.key")
    stranger = client(r.endpoints, "stranger", stranger_keys)
    plain = client(r.endpoints, "plain")
    for bad in (stranger, plain):
        with pytest.raises(Exception, match="no answer"):
            bad.link.request(p.Hello(client="intruder"), timeout_s=1.0)
        with pytest.raises(TimeoutError):
            bad.telemetry(timeout_s=0.5)
        bad.session = "1-00000000"
        bad.drive(tuple(start + np.array([0.0, 0.0, 0.02])), 0.3, expect_telemetry=False)
    tel = good.telemetry()
    assert np.linalg.norm(_tip(tel) - start) < 0.0005
    assert tel.state == "IDLE"
    # The authorised console does drive it.
    assert good.engage().ok
    target = tuple(start + np.array([0.0, 0.0, 0.01]))
    tel = good.drive(target, 0.5)
    # (The counters say where the commands went if this fails: cmd.* judged, zap.* refused handshakes.)
    assert np.linalg.norm(_tip(tel) - np.asarray(target)) < 0.001, (tel.state, tel.reason, tel.counters)


def test_a_target_inside_a_forbidden_region_never_brings_the_tool_inside(robot, client):
    # Region in the world frame (m): a block above the tissue next to the start pose.
    region = [[-0.03, -0.01, 0.0], [-0.01, 0.01, 0.04]]
    r = robot(arm__forbidden_m=[region])
    c = client(r.endpoints)
    c.connect()
    tel = c.telemetry()
    start = _tip(tel)
    box = [b for name, b in tel.objects.items() if name.startswith("forbidden")]
    assert box, tel.objects  # the scene shows it
    # World → base is a translation: the tip's world position is known from the home pose (0, 0, 0.05).
    offset = start - np.array([0.0, 0.0, 0.05])
    low, high = np.asarray(region[0]) + offset, np.asarray(region[1]) + offset
    inside = tuple((low + high) / 2)
    assert c.engage().ok
    c.drive(inside, 1.0)
    r.stop()
    tips = np.array([s["tip_m"] for s in read_topic(r.record, "/robot/state")])
    setpoints = np.array([s["setpoint_m"] for s in read_topic(r.record, "/robot/state")])
    assert not np.any(np.all((setpoints > low) & (setpoints < high), axis=1))
    assert not np.any(np.all((tips > low) & (tips < high), axis=1))
    # It did go as far as it could: it stopped at the region's face (x = high x), within 1 mm.
    assert abs(tips[-1][0] - high[0]) < 0.001


def test_mcap_of_a_killed_server_holds_every_applied_command(robot, client):
    r = robot(record_flush_s=0.2)
    c = client(r.endpoints)
    c.connect()
    start = _tip(c.telemetry())
    assert c.engage().ok
    echoed: list[tuple[float, int]] = []
    end = time.monotonic() + 2.0
    i = 0
    while time.monotonic() < end:
        c.link.ping()
        c.link.poll_control()
        tel = c.link.poll_telemetry()
        if tel is not None and tel.last_cmd_seq:
            echoed.append((time.monotonic(), tel.last_cmd_seq))
        i += 1
        c.command(tuple(start + np.array([0.005 * np.sin(i / 100), 0.0, 0.0])))
        time.sleep(0.005)
    r.kill()  # SIGKILL: no chance to finish the file
    applied = read_topic(r.record, "/robot/applied")
    seqs = {a["seq"] for a in applied}
    assert applied and len(seqs) == len(applied)
    # Every command the robot reported as applied more than a second before the kill is in the file
    # (those are the commands sent up to then that were not superseded on the conflating socket).
    cutoff = end - 1.0
    confirmed = {seq for t, seq in echoed if t < cutoff}
    assert confirmed and confirmed <= seqs
    # And the file holds every applied command up to its end: sequence numbers only ever rise.
    ordered = [a["seq"] for a in applied]
    assert ordered == sorted(ordered)


def test_a_recorded_hand_trace_replays_through_the_stack(robot, tmp_path):
    # assets/traces/reach_seed0.csv was recorded by `telesurg console --tasks Reach --seed 0
    # --record-trace …`; replayed open loop from the same start it reaches the same goal.
    r = robot(arm__task="Palpate")  # the console loads Reach itself
    summary = tmp_path / "trace.json"
    trace = REPO / "assets/traces/reach_seed0.csv"
    proc = _console(
        r, tmp_path, "--input", "trace", "--trace", str(trace), "--tasks", "Reach", "--summary-json", str(summary)
    )
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    episode = json.loads(summary.read_text())["episodes"][0]
    assert episode["task"] == "Reach" and episode["success"] is True, episode


def test_a_trace_replay_that_fails_its_task_exits_non_zero(robot, tmp_path):
    # The Reach trace replayed on Palpate never presses the tissue: the task fails, and so does the run.
    r = robot()
    summary = tmp_path / "wrong.json"
    trace = REPO / "assets/traces/reach_seed0.csv"
    proc = _console(
        r,
        tmp_path,
        *("--input", "trace", "--trace", str(trace), "--tasks", "Palpate", "--summary-json", str(summary)),
        *("--tremor", "on", "--prediction", "alphabeta"),
    )
    out, _ = proc.communicate(timeout=60)
    assert "console: correction: scaling off, tremor on, prediction alphabeta, blending off, fixtures off" in out, out
    assert proc.returncode == 1, out
    assert "trace replay on Palpate seed 0: FAILED" in out, out
    assert json.loads(summary.read_text())["episodes"][0]["success"] is False


def test_a_console_link_spec_delays_every_command_by_the_emulated_delay(robot, tmp_path):
    # The emulator inside the console process: 100 ms one way on every channel. The robot's own
    # clock sync and the telemetry echo see it: command latency ≈ 100 ms, and the task still succeeds.
    r = robot()
    summary = tmp_path / "delayed.json"
    proc = _console(r, tmp_path, "--tasks", "Reach", "--link", "delay=100ms", "--summary-json", str(summary))
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    s = json.loads(summary.read_text())
    assert s["episodes"][0]["success"], s
    assert 95.0 <= s["latency_p50_ms"] <= 130.0, s

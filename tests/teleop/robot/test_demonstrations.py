"""Demonstrations from the robot's recordings: the scripted surgeon drives every task through a
real `telesurg robot` (real sockets, the supervisor, the MCAP recording), and the recording becomes
episodes in the env's terms whose columns match what was recorded and whose actions, replayed in the
env, retrace the recorded tool path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from telesurg import envs
from telesurg.teleop.robot.demonstrations import RecordingSkipped, UnknownTask, recording_episodes
from telesurg.teleop.robot.reader import read_topic
from telesurg.teleop.robot.recorder import Recorder
from telesurg.teleop.robot.records import TOPIC_TASK, TaskRecord

REPO = Path(__file__).resolve().parents[3]
TASKS = ("Reach", "Palpate", "Retract", "Transfer", "Trace")
pytestmark = pytest.mark.slow


def _scripted_session(robot, tmp_path: Path, tasks: tuple[str, ...], seed: int) -> Path:
    r = robot(arm__preload=list(tasks))
    e = r.endpoints
    cfg = tmp_path / "console.toml"
    cfg.write_text(
        "[console]\n"
        f"[console.endpoints]\ncmd_port = {e.cmd_port}\ntelemetry_port = {e.telemetry_port}\n"
        f"control_port = {e.control_port}\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "telesurg.teleop.cli", "console", "--config", str(cfg), "--tasks", *tasks,
         "--seed", str(seed)],
        cwd=REPO, capture_output=True, text=True, timeout=180, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert r.stop() == 0
    assert r.record is not None
    return r.record


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Path:
    from tests.teleop.conftest import RobotProcess

    tmp = tmp_path_factory.mktemp("session")
    started: list[RobotProcess] = []

    def robot(**options):
        started.append(RobotProcess(tmp, **options))
        return started[-1]

    try:
        return _scripted_session(robot, tmp, TASKS, seed=5)
    finally:
        for r in started:
            r.kill()


def test_every_task_load_becomes_one_episode_with_the_recorded_columns(session):
    episodes = recording_episodes(session, "scripted")
    assert [(e.task, e.seed) for e in episodes] == [(t, 5 + i) for i, t in enumerate(TASKS)]
    assert all(e.success and e.source == "scripted" and not e.hard_limit_exceeded for e in episodes)
    records = read_topic(session, TOPIC_TASK)
    for e in episodes:
        mine = [r for r in records if r["task"] == e.task and r["seed"] == e.seed]
        obs = np.array([r["observation"] for r in mine], dtype=np.float32)
        # The rows are consecutive task periods of the recording, from the first engaged one.
        start = next(i for i in range(len(obs)) if np.array_equal(obs[i], e.observation[0]))
        assert np.array_equal(obs[start : start + e.length], e.observation)
        assert np.array_equal(
            np.array([r["desired_goal"] for r in mine[start : start + e.length]], np.float32), e.desired_goal
        )
        assert list(e.next_success) == [r["success"] for r in mine[start + 1 : start + 1 + e.length]]
        assert e.next_success[-1] and not e.next_success[:-1].any()  # it ends at the first success
        assert e.max_force_N == pytest.approx(max(r["force_max_N"] for r in mine[start + 1 : start + 1 + e.length]))
        assert np.all(np.abs(e.action) <= 1.0)
    assert max(e.max_force_N for e in episodes) > 1.0  # the contact tasks pressed


def test_replaying_the_actions_in_the_env_retraces_the_recorded_tip_within_2_mm(session):
    for e in recording_episodes(session, "scripted"):
        env = gym.make(envs.env_id(e.task))
        obs, _ = env.reset(seed=e.seed)
        assert np.allclose(obs["observation"][:3], e.observation[0, :3], atol=1e-4)
        tips = []
        for a in e.action:
            obs, *_ = env.step(a)
            tips.append(obs["observation"][:3])
        env.close()
        error = np.linalg.norm(np.array(tips[:-1]) - e.observation[1:, :3], axis=1)
        assert error.max() < 0.002, (e.task, error.max())
        assert e.replay_tip_error_m == pytest.approx(max(error.max(), e.replay_tip_error_m), abs=1e-6)


def test_a_truncated_or_malformed_recording_is_skipped_by_name(session, tmp_path):
    data = session.read_bytes()
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordingSkipped, match=r"cut\.mcap: truncated"):
        recording_episodes(cut, "scripted")
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(data[:64] + b"\0" * 4096 + data[-64:])
    with pytest.raises(RecordingSkipped, match=r"bad\.mcap: malformed"):
        recording_episodes(bad, "scripted")
    # The build goes on without them and says so.
    out = tmp_path / "demos"
    r = subprocess.run(
        [sys.executable, "-m", "telesurg.teleop.cli", "dataset", "build", str(out), "--scripted", str(cut), str(bad),
         str(session)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "skipped" in r.stdout and "cut.mcap" in r.stdout and "bad.mcap" in r.stdout
    assert "5 episodes" in r.stdout and "2 recording(s) skipped" in r.stdout


def test_a_recording_of_an_unknown_task_stops_the_build(tmp_path):
    path = tmp_path / "odd.mcap"
    with Recorder(path) as rec:
        ch = rec.channel(TOPIC_TASK, TaskRecord)
        rec.write(ch, TaskRecord(1.0, "Suture", 0, 0.0, [0.0] * 10, [0.0] * 3, [0.0] * 3, False, 0.0), log_time_ns=1)
    with pytest.raises(UnknownTask, match="Suture"):
        recording_episodes(path, "human")
    out = tmp_path / "demos"
    r = subprocess.run(
        [sys.executable, "-m", "telesurg.teleop.cli", "dataset", "build", str(out), "--human", str(path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "Suture" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()

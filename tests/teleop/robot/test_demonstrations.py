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


def _scripted_session(
    robot, tmp_path: Path, tasks: tuple[str, ...], seed: int, demo: bool = False, timeout_s: float = 300
) -> Path:
    r = robot(arm__preload=sorted(set(tasks)))
    e = r.endpoints
    cfg = tmp_path / "console.toml"
    # For demonstrations: the surgeon holds the result for 0.5 s, the hand carries 1 mm of noise and
    # eases into the target over a few periods (time constant 0.12 s) instead of landing in one, so
    # the recordings show the last millimetres (a clone's fixed point came out 3-5 mm off the target
    # in some pretraining seeds when every approach ended in a single 3 mm step).
    extra = "settle_s = 0.5\n[console.surgeon]\nnoise_rms_m = 0.001\napproach_tau_s = 0.12\n" if demo else ""
    cfg.write_text(
        "[console]\n"
        f"{extra}[console.endpoints]\ncmd_port = {e.cmd_port}\ntelemetry_port = {e.telemetry_port}\n"
        f"control_port = {e.control_port}\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "telesurg.teleop.cli", "console", "--config", str(cfg), "--tasks", *tasks,
         "--seed", str(seed)],
        cwd=REPO, capture_output=True, text=True, timeout=timeout_s, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert r.stop() == 0
    assert r.record is not None
    return r.record


def _recorded(tmp: Path, tasks: tuple[str, ...], seed: int, demo: bool = False, timeout_s: float = 300) -> Path:
    from tests.teleop.conftest import RobotProcess

    started: list[RobotProcess] = []

    def robot(**options):
        started.append(RobotProcess(tmp, **options))
        return started[-1]

    try:
        return _scripted_session(robot, tmp, tasks, seed, demo, timeout_s)
    finally:
        for r in started:
            r.kill()


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Path:
    return _recorded(tmp_path_factory.mktemp("session"), TASKS, seed=5)


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
        assert e.next_success[-1]  # the console ends an episode after success has held for settle_s
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
        # The episode's stored figure is that very replay's (it also covers the last period, whose
        # recorded tip is not a row): it bounds what is seen here and is within the tolerance too.
        assert error.max() <= e.replay_tip_error_m + 1e-7 and e.replay_tip_error_m < 0.002


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


def test_a_clone_of_recorded_reach_demonstrations_reaches_on_its_own(tmp_path):
    """The loop closed: the scripted surgeon through the real robot server → MCAP → dataset →
    behaviour cloning → the clone alone, in the env, succeeds in ≥ 80% of 20 episodes (within 3 mm
    at the end). 300 recorded episodes, about six and a half minutes of recording. Measured (40
    episodes each, 200 epochs): 100% for each of five pretraining seeds, every final distance within
    1.2 mm (100 epochs: also 100%, but one seed's clone stopped 2.3 mm off half its targets); 52–92%
    without the velocity and jaw decorrelation, 43–95% from 100 recorded episodes (README)."""
    recording = _recorded(tmp_path, ("Reach",) * 300, seed=2000, demo=True, timeout_s=1200)
    out = tmp_path / "demos"
    cli = [sys.executable, "-m", "telesurg.teleop.cli"]
    r = subprocess.run([*cli, "dataset", "build", str(out), "--scripted", str(recording)], cwd=REPO,
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0 and "300 episodes" in r.stdout, r.stdout + r.stderr
    clone = tmp_path / "reach_bc"
    r = subprocess.run([*cli, "pretrain", "launch/train/reach_ppo.toml", "--dataset", str(out), "--out", str(clone),
                        "--epochs", "200", "--augment-shift", "0.1", "--shuffle-fields", "tip_vel_m_s", "jaw_opening"],
                       cwd=REPO,
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    from telesurg.policies.bundle import Policy

    policy = Policy.load(clone)
    assert policy.card.training["pretrain"]["sources"] == ["scripted"]
    env = gym.make("telesurg/ReachDense-v0")
    successes, finals = 0, []
    for seed in range(1_000_000, 1_000_020):
        obs, _ = env.reset(seed=seed)
        for _ in range(50):
            obs, _, _, _, info = env.step(policy.predict(obs))
        successes += bool(info["is_success"])
        finals.append(float(np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"])))
    env.close()
    print(f"clone of 300 recorded episodes: {successes}/20 (final distances {np.round(np.array(finals) * 1e3, 1)} mm)")
    assert successes >= 16, finals


def test_a_recording_the_env_cannot_reproduce_is_skipped_by_name(session, monkeypatch):
    """Another observation layout, or a scene the default env does not have (a robot run with other
    env options): the file is skipped with the reason, never converted against the wrong env."""
    import telesurg.teleop.robot.demonstrations as demonstrations

    # Reach's recorded observations fed to an env of another size (Palpate's has one field more).
    monkeypatch.setattr(demonstrations, "env_id", lambda task: envs.env_id("Palpate" if task == "Reach" else task))
    with pytest.raises(RecordingSkipped, match=r"session.*Reach observations have \d+ values, this version's env \d+"):
        recording_episodes(session, "scripted")
    monkeypatch.undo()

    class HalfSteps(gym.ActionWrapper):
        """An arm that moves half as far as asked: not the scene the recording was made in."""

        def action(self, action):
            out = np.array(action, dtype=np.float32)
            out[:3] *= 0.5
            return out

    make = gym.make
    monkeypatch.setattr(demonstrations.gym, "make", lambda *a, **k: HalfSteps(make(*a, **k)))
    with pytest.raises(RecordingSkipped, match=r"task load #\d+ \(Reach\) replayed in the env strays [\d.]+ mm"):
        recording_episodes(session, "scripted")

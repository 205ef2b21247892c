"""Surgeon inputs: tremor, hand traces (load, save, replay) and the scripted surgeon on telemetry."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from telesurg import envs  # noqa: F401  (registers the ids)
from telesurg.teleop.console.mapping import HandToTool, MappingConfig
from telesurg.teleop.console.scripted import ScriptedSurgeon, SurgeonConfig, Trace, TraceReplay
from telesurg.teleop.correction.signals import Tremor
from telesurg.teleop.wire import protocol as p

# ---------------------------------------------------------------------- tremor
FS_HZ = 1000.0
T_10S = np.arange(0.0, 10.0, 1.0 / FS_HZ)


def tremor_samples(rms_m: float, band_hz: tuple[float, float], seed: int) -> np.ndarray:
    tremor = Tremor(rms_m, band_hz, np.random.default_rng(seed))
    return np.array([tremor.at(t) for t in T_10S])  # (samples, 3 axes)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("rms_m", [1e-4, 3e-4])
def test_tremor_rms_per_axis_is_the_configured_value_over_10_s(seed: int, rms_m: float) -> None:
    x = tremor_samples(rms_m, (8.0, 12.0), seed)
    rms = np.sqrt(np.mean(x**2, axis=0))
    np.testing.assert_allclose(rms, rms_m, rtol=0.2)
    assert np.all(np.abs(x.mean(axis=0)) < 0.1 * rms_m)  # a tremor oscillates about the hand, no drift


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("band_hz", [(8.0, 12.0), (4.0, 6.0)])
def test_tremor_power_is_in_its_band(seed: int, band_hz: tuple[float, float]) -> None:
    x = tremor_samples(1e-4, band_hz, seed)
    # A Hann window keeps the leakage of 10 s of non-periodic sinusoids out of the far bins.
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))[:, None], axis=0)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / FS_HZ)
    in_band = (freqs >= band_hz[0] - 0.5) & (freqs <= band_hz[1] + 0.5)
    fraction = spectrum[in_band].sum(axis=0) / spectrum.sum(axis=0)
    assert np.all(fraction > 0.9), fraction


# ---------------------------------------------------------------------- trace files
def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_trace_save_then_load_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.uniform(0.004, 0.006, 50))
    t -= t[0]
    trace = Trace(t, rng.normal(0.0, 0.05, (50, 3)), rng.uniform(0.0, 1.0, 50))
    trace.save(tmp_path / "trace.csv")
    loaded = Trace.load(tmp_path / "trace.csv")
    np.testing.assert_allclose(loaded.t_s, trace.t_s, atol=1e-6)
    np.testing.assert_allclose(loaded.hand_m, trace.hand_m, atol=1e-7)
    np.testing.assert_allclose(loaded.jaw, trace.jaw, atol=1e-4)
    assert loaded.duration_s == pytest.approx(t[-1], abs=1e-6)


def test_trace_load_starts_time_at_zero_clips_jaw_and_allows_no_jaw_column(tmp_path: Path) -> None:
    with_jaw = Trace.load(write(tmp_path / "a.csv", "t,x,y,z,jaw\n5.0,0,0,0,-0.5\n5.5,0.1,0.2,0.3,1.5\n\n"))
    np.testing.assert_allclose(with_jaw.t_s, [0.0, 0.5])
    np.testing.assert_allclose(with_jaw.hand_m[1], [0.1, 0.2, 0.3])
    np.testing.assert_allclose(with_jaw.jaw, [0.0, 1.0])
    no_jaw = Trace.load(write(tmp_path / "b.csv", " t , x , y , z \n0,1,2,3\n1,4,5,6\n"))
    np.testing.assert_allclose(no_jaw.hand_m, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_allclose(no_jaw.jaw, [0.0, 0.0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,x,y,z\n0,0,0,0\n1,0,0,0\n", r"header must be 't,x,y,z\[,jaw\]'.*'time,x,y,z'"),
        ("t,x,y,z,grip\n0,0,0,0,0\n1,0,0,0,0\n", "header must be"),
        ("", "header must be"),
        ("t,x,y,z\n0,0,0,0\n0.1,0,zero,0\n", r"trace\.csv:3: not numbers"),
        ("t,x,y,z\n0,0,0,0\n0.1,0,0\n", r"trace\.csv:3: need 4 finite numbers"),
        ("t,x,y,z\n0,0,0,0\n0.1,0,nan,0\n", r"trace\.csv:3: need 4 finite numbers"),
        ("t,x,y,z\n0,0,0,0\n0.2,0,0,0\n0.2,1,0,0\n", "times must increase strictly"),
        ("t,x,y,z\n0,0,0,0\n0.2,0,0,0\n0.1,1,0,0\n", "times must increase strictly"),
        ("t,x,y,z\n0,0,0,0\n", "at least two samples"),
        ("t,x,y,z\n", "at least two samples"),
    ],
)
def test_trace_load_rejects_bad_files_with_clear_messages(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "trace.csv", text)
    with pytest.raises(ValueError, match=message) as info:
        Trace.load(path)
    assert str(path) in str(info.value)


def test_trace_load_of_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"trace file .*nowhere\.csv not found"):
        Trace.load(tmp_path / "nowhere.csv")


# ---------------------------------------------------------------------- trace replay
def test_trace_replay_interpolates_from_its_first_read_and_quits_after_the_end() -> None:
    trace = Trace(
        np.array([0.0, 1.0, 3.0]),
        np.array([[0.0, 0.0, 0.0], [0.1, -0.2, 0.4], [0.3, -0.2, 0.0]]),
        np.array([0.0, 1.0, 0.5]),
    )
    replay = TraceReplay(trace)
    t0 = 1234.5  # the console's clock: replay time counts from the first read
    first = replay.read(t0, None, HandToTool())
    np.testing.assert_allclose(first.hand_m, [0.0, 0.0, 0.0])
    assert first.clutch and not first.quit

    mid = replay.read(t0 + 0.25, None, HandToTool())
    np.testing.assert_allclose(mid.hand_m, [0.025, -0.05, 0.1])
    assert mid.jaw == pytest.approx(0.25)

    later = replay.read(t0 + 2.0, None, HandToTool())
    np.testing.assert_allclose(later.hand_m, [0.2, -0.2, 0.2])
    assert later.jaw == pytest.approx(0.75)

    at_end = replay.read(t0 + 3.0, None, HandToTool())
    np.testing.assert_allclose(at_end.hand_m, trace.hand_m[-1])
    assert not at_end.quit

    # It holds the last sample (no extrapolation) for hold_end_s (0.5 s by default), then quits.
    holding = replay.read(t0 + 3.4, None, HandToTool())
    assert not holding.quit
    np.testing.assert_allclose(holding.hand_m, trace.hand_m[-1])
    after = replay.read(t0 + 3.51, None, HandToTool())
    assert after.quit
    np.testing.assert_allclose(after.hand_m, trace.hand_m[-1])


# ---------------------------------------------------------------------- scripted surgeon
# An oblique endoscope, so moving toward the goal needs the real hand–eye inverse.
CAMERA = (-0.9486832980505139, 0.0, 0.0, 0.316227766016838)
RATE_HZ = 200.0


def telemetry(seq: int, t_s: float, tool_m: np.ndarray, obs: dict[str, np.ndarray]) -> p.Telemetry:
    """Telemetry as the robot publishes it for the Reach task, through the wire codec."""
    tool = tuple(float(v) for v in tool_m)
    msg = p.Telemetry(
        arm="psm1",
        seq=seq,
        robot_s=t_s,
        joint_pos=[0.0] * 6,
        tool=p.Pose(tool),  # type: ignore[arg-type]
        jaw=0.0,
        force_N=(0.0, 0.0, 0.0),
        force_mag_N=0.0,
        state="ENGAGED",
        reason="",
        task=p.TaskState(
            name="Reach",
            seed=3,
            observation=[float(v) for v in obs["observation"]],
            achieved_goal=list(tool),
            desired_goal=[float(v) for v in obs["desired_goal"]],
            success=False,
            episode_s=t_s,
        ),
    )
    return p.decode(p.encode(msg), p.Telemetry)


class SurgeonRun:
    """The scripted surgeon driving a perfect robot (the tool is wherever the mapped target is) through
    the console's mapping, with fresh telemetry every console period."""

    def __init__(self, config: SurgeonConfig, mapping: MappingConfig, seconds: float, clutch: bool = True) -> None:
        env = gym.make("telesurg/Reach-v0")
        obs, _ = env.reset(seed=3)
        self.layout = env.unwrapped.obs_layout
        env.close()
        self.goal = obs["desired_goal"].astype(float)
        self.tool0 = self.layout.get(obs["observation"], "tip_pos_m").astype(float)
        tool = self.tool0.copy()
        self.mapping = HandToTool(mapping)
        self.mapping.set_camera(CAMERA)
        self.surgeon = ScriptedSurgeon(config)
        self.surgeon.start_task("Reach")
        self.targets: list[np.ndarray] = []
        self.voluntary: list[np.ndarray] = []
        self.inputs = []
        dt = 1.0 / RATE_HZ
        for i in range(round(seconds * RATE_HZ) + 1):
            now = i * dt
            o = dict(obs)
            o["observation"] = obs["observation"].copy()
            o["observation"][self.layout.slice("tip_pos_m")] = tool
            hand = self.surgeon.read(now, telemetry(i + 1, now, tool, o), self.mapping)
            self.inputs.append(hand)
            self.voluntary.append(self.surgeon.hand_m.copy())
            target = self.mapping.update(hand.hand_m, clutch and hand.clutch, tool)
            if target is not None:
                tool = target.copy()
            self.targets.append(tool.copy())

    def speeds_m_s(self) -> np.ndarray:
        return np.linalg.norm(np.diff(np.array(self.targets), axis=0), axis=1) * RATE_HZ


@pytest.mark.parametrize("max_speed", [0.08, 0.03])
def test_scripted_surgeon_moves_the_tool_to_the_reach_goal_at_its_speed(max_speed: float) -> None:
    cfg = SurgeonConfig(max_tool_speed_m_s=max_speed, noise_rms_m=0.0)
    run = SurgeonRun(cfg, MappingConfig(motion_scale=0.2), seconds=2.5)
    start_gap = float(np.linalg.norm(run.goal - run.tool0))
    assert start_gap > 0.02  # the goal is far enough for the speed cap to matter
    assert all(h.clutch for h in run.inputs)

    targets = np.array(run.targets)
    # Heads for the goal: early motion points at it…
    early = targets[round(0.2 * RATE_HZ)] - run.tool0
    cos = early @ (run.goal - run.tool0) / (np.linalg.norm(early) * start_gap)
    assert cos > 0.98
    # …and it gets there (the tremor is a fraction of a millimetre at the tool).
    assert np.linalg.norm(targets[-1] - run.goal) < 1e-3
    gaps = np.linalg.norm(targets - run.goal, axis=1)
    assert np.argmax(gaps < 1e-3) / RATE_HZ >= 0.9 * start_gap / max_speed  # not faster than its speed allows

    # Voluntary hand motion, mapped to the tool, never exceeds the surgeon's speed…
    voluntary_tool = np.array([run.mapping.matrix @ h for h in run.voluntary])
    voluntary_speed = np.linalg.norm(np.diff(voluntary_tool, axis=0), axis=1) * RATE_HZ
    assert voluntary_speed.max() <= max_speed * (1 + 1e-9)
    assert voluntary_speed.max() >= 0.95 * max_speed  # and it does move at that speed while far away
    # …and the tremor on top adds only a little (0.1 mm RMS at 8–12 Hz in the hand, scaled by 0.2).
    assert run.speeds_m_s().max() <= max_speed + 0.02


def test_scripted_surgeon_moves_the_hand_only_while_the_clutch_is_closed() -> None:
    run = SurgeonRun(SurgeonConfig(), MappingConfig(), seconds=0.5, clutch=False)
    assert not run.mapping.clutched
    np.testing.assert_array_equal(run.voluntary[-1], np.zeros(3))
    hands = np.array([h.hand_m for h in run.inputs])
    assert np.abs(hands).max() < 1e-3  # tremor and noise only, about the resting hand


def test_scripted_surgeon_is_reproducible_for_a_seed() -> None:
    cfg = SurgeonConfig(seed=7)
    a = SurgeonRun(cfg, MappingConfig(), seconds=0.3)
    b = SurgeonRun(cfg, MappingConfig(), seconds=0.3)
    c = SurgeonRun(replace(cfg, seed=8), MappingConfig(), seconds=0.3)
    np.testing.assert_array_equal(np.array(a.targets), np.array(b.targets))
    assert not np.allclose(np.array(a.targets), np.array(c.targets), rtol=0.0, atol=1e-9)


def test_scripted_surgeon_without_telemetry_holds_the_hand_with_tremor() -> None:
    surgeon = ScriptedSurgeon(SurgeonConfig(tremor_rms_m=2e-4, noise_rms_m=0.0))
    surgeon.start_task("Reach")
    mapping = HandToTool()
    hands = np.array([surgeon.read(i / RATE_HZ, None, mapping).hand_m for i in range(2000)])
    rms = float(np.sqrt(np.mean(hands**2)))
    assert rms == pytest.approx(2e-4, rel=0.2)
    assert math.isclose(float(np.abs(hands.mean(axis=0)).max()), 0.0, abs_tol=2e-5)

"""Demonstrations from the robot's recordings: one episode per task load, in the env's terms.

The robot records the task's state (``/robot/task``) when a task is loaded and at the end of every
task period (40 ms, the env's control period; the simulated arm steps the task's bookkeeping exactly
as the env does), and every 2 ms control period (``/robot/state``, 500 Hz). An episode's rows are
the task periods: row ``k`` is the task's observation at the start of period ``k`` (as recorded) and
the action that moved it, reconstructed from the 500 Hz stream: the supervisor's setpoint at the
end of the period (the last one commanded in it: where the tip was headed when the period closed)
and the jaw setpoint there. The env's actions are relative (tip step as a fraction of
``max_step_m``), so the setpoints are turned into actions by replaying them in the env itself,
reset with the recording's seed: ``a_k = (setpoint_k − env tip_k) / max_step_m``, clipped to
[-1, 1], jaw ``2 × setpoint − 1``. Relative to the recorded tip instead, each action would carry
the robot's tracking lag (its tip trails a moving setpoint by ~0.3 mm at 70 mm/s, while the env's
arm reaches each period's target), and replaying them would integrate it: 5–8 mm off within a
second. Replayed this way the env's tip stays within the robot's lag of the recorded path
(``replay_tip_error_m``, kept per episode), pressing offsets in contact are kept, and since the
env is deterministic, replaying the dataset's actions from the same seed reproduces that run.
Resampling is exact in time: the periods are the simulation's own, not the host's clock.

An episode keeps the periods from the first in which the arm was engaged to the last (a surgeon
who holds the result after success shows that too, as the env's episodes do); its ``success`` is
the task's success test at its end. A load the surgeon never engaged gives none.
``hard_limit_exceeded`` flags an episode in which the contact force passed the hard limit in force
(the recording's ``/robot/config``).

A file that ends early (a killed recorder: no MCAP footer) or does not decode is skipped with its
reason (``RecordingSkipped``); a task this version does not know stops the build (``UnknownTask``).
So is a file whose observations are not this version's size (another layout), and one with an
episode the env does not reproduce: replayed, its tip strays more than ``REPLAY_TOLERANCE_M``
from the recorded path — a robot run with other env options (a scene the default env does not
have) would otherwise become actions for the wrong scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np

from telesurg.envs import env_id
from telesurg.envs.layout import ROBOT_FIELDS
from telesurg.envs.tasks import TASKS_BY_NAME
from telesurg.policies.dataset.episode import Episode
from telesurg.teleop.robot.reader import MCAP_MAGIC, read
from telesurg.teleop.robot.records import TOPIC_CONFIG, TOPIC_STATE, TOPIC_TASK

#: Where the tool tip (m, base frame) sits in every task's observation: its leading field.
assert ROBOT_FIELDS[0].name == "tip_pos_m"
TIP = slice(0, ROBOT_FIELDS[0].size)


#: The most an episode's replay in the env may stray from its recorded tool path (m).
REPLAY_TOLERANCE_M = 0.002


class RecordingSkipped(ValueError):
    """A recording that cannot be read whole (truncated or malformed); the message says why."""


class UnknownTask(ValueError):
    """A recording of a task this version of telesurg does not have."""


@dataclass
class _Load:
    """What one task load recorded: task states (the load's first), and per control period the
    robot time, setpoint, jaw setpoint, whether engaged and the peak force."""

    task: str
    seed: int
    hard_N: float
    frames: list[dict] = field(default_factory=list)
    state_s: list[float] = field(default_factory=list)
    setpoint: list[tuple[float, float, float]] = field(default_factory=list)
    jaw: list[float] = field(default_factory=list)
    engaged: list[bool] = field(default_factory=list)
    peak_N: list[float] = field(default_factory=list)


def recording_episodes(path: str | Path, source: str) -> list[Episode]:
    """The episodes of one robot recording (``source``: "human" or "scripted"); see the module
    docstring. Raises ``RecordingSkipped`` or ``UnknownTask``."""
    path = Path(path)
    if not path.is_file():
        raise RecordingSkipped(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(len(MCAP_MAGIC))
        f.seek(max(0, path.stat().st_size - len(MCAP_MAGIC)))
        tail = f.read()
    if head != MCAP_MAGIC:
        raise RecordingSkipped(f"{path}: not an MCAP file")
    if tail != MCAP_MAGIC:
        raise RecordingSkipped(f"{path}: truncated (no MCAP footer: its recorder was stopped before closing it)")
    expected = _message_count(path)
    loads: list[_Load] = []
    hard_N = float("inf")
    count = 0
    try:
        for msg in read(path):
            count += 1
            d = msg.data
            if msg.topic == TOPIC_CONFIG:
                hard_N = float(d["hard_force_N"])
            elif msg.topic == TOPIC_TASK:
                if d["task"] not in TASKS_BY_NAME:
                    raise UnknownTask(f"{path}: task {d['task']!r} is not one of {', '.join(sorted(TASKS_BY_NAME))}")
                if d["episode_s"] == 0.0 or not loads:
                    loads.append(_Load(d["task"], int(d["seed"]), hard_N))
                loads[-1].frames.append(d)
            elif msg.topic == TOPIC_STATE and loads:
                cur = loads[-1]
                cur.state_s.append(float(d["robot_s"]))
                cur.setpoint.append(tuple(d["setpoint_m"]))
                cur.jaw.append(float(d["jaw_setpoint"]))
                cur.engaged.append(d["state"] == "ENGAGED")
                cur.peak_N.append(float(d["force_peak_N"]))
    except UnknownTask:
        raise
    except Exception as exc:  # a damaged chunk, bad JSON, a missing field: the file is not usable
        raise RecordingSkipped(f"{path}: malformed ({type(exc).__name__}: {exc})") from None
    if expected is not None and count != expected:
        raise RecordingSkipped(f"{path}: malformed (its summary lists {expected} messages, {count} could be read)")
    out = []
    for n, load in enumerate(loads):
        episode = _episode(load, f"{path}#{n}", source)
        if episode is None:
            continue
        if episode.replay_tip_error_m > REPLAY_TOLERANCE_M:
            raise RecordingSkipped(
                f"{path}: task load #{n} ({load.task}) replayed in the env strays "
                f"{episode.replay_tip_error_m * 1e3:.1f} mm from its recorded tool path (over "
                f"{REPLAY_TOLERANCE_M * 1e3:.0f} mm: was the robot run with other env options?)"
            )
        out.append(episode)
    return out


def _message_count(path: Path) -> int | None:
    """The message count in a complete file's summary (None when it has no statistics)."""
    from mcap.reader import make_reader

    try:
        with open(path, "rb") as f:
            summary = make_reader(f).get_summary()
    except Exception as exc:  # the mcap library's own errors and whatever bad offsets lead to
        raise RecordingSkipped(f"{path}: malformed (summary unreadable: {type(exc).__name__}: {exc})") from None
    if summary is None or summary.statistics is None:
        return None
    return int(summary.statistics.message_count)


def _episode(load: _Load, origin: str, source: str) -> Episode | None:
    frames = load.frames
    if len(frames) < 2:
        return None
    times = np.asarray(load.state_s)
    bounds = np.searchsorted(times, [f["robot_s"] for f in frames], side="right")
    rows = []
    for k in range(len(frames) - 1):
        lo, hi = bounds[k], bounds[k + 1]
        if hi <= lo:
            continue  # no control period recorded in it (cannot happen in a whole recording)
        rows.append((k, lo, hi, any(load.engaged[lo:hi])))
    engaged = [r for r in rows if r[3]]
    if not engaged:
        return None
    first, last = rows.index(engaged[0]), rows.index(engaged[-1])
    kept = rows[first : last + 1]
    obs, ach, des, act, succ, force = [], [], [], [], [], []
    peak, tip_error = 0.0, 0.0
    env = gym.make(env_id(load.task))
    try:
        size, recorded = env.observation_space["observation"].shape[0], len(frames[0]["observation"])
        if recorded != size:
            raise RecordingSkipped(
                f"{origin.rsplit('#', 1)[0]}: {load.task} observations have {recorded} values, this version's "
                f"env {size} (recorded with another observation layout)"
            )
        env_obs, _ = env.reset(seed=load.seed)
        max_step_m = env.unwrapped.max_step_m
        for k, lo, hi, _ in kept:
            f, nxt = frames[k], frames[k + 1]
            env_tip = env_obs["observation"][TIP].astype(np.float64)
            a = np.empty(4, dtype=np.float32)
            a[:3] = np.clip((np.asarray(load.setpoint[hi - 1]) - env_tip) / max_step_m, -1.0, 1.0)
            a[3] = 2.0 * float(np.clip(load.jaw[hi - 1], 0.0, 1.0)) - 1.0
            env_obs, *_ = env.step(a)
            tip_error = max(tip_error, math.dist(env_obs["observation"][TIP].tolist(), nxt["observation"][TIP]))
            obs.append(f["observation"])
            ach.append(f["achieved_goal"])
            des.append(f["desired_goal"])
            act.append(a)
            succ.append(bool(nxt["success"]))
            force.append(float(nxt["force_max_N"]))
            peak = max(peak, max(load.peak_N[lo:hi]))
    finally:
        env.close()
    return Episode(
        task=load.task,
        seed=load.seed,
        source=source,
        origin=origin,
        observation=np.asarray(obs, dtype=np.float32),
        achieved_goal=np.asarray(ach, dtype=np.float32),
        desired_goal=np.asarray(des, dtype=np.float32),
        action=np.asarray(act, dtype=np.float32),
        next_success=np.asarray(succ, dtype=bool),
        force_max_N=np.asarray(force, dtype=np.float32),
        success=succ[-1],
        hard_limit_exceeded=max(peak, max(force)) > load.hard_N,
        replay_tip_error_m=tip_error,
    )

"""Every registered id passes Gymnasium's checker and renders an image of the documented shape."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs import ENV_IDS, env_id
from envs.tasks import TASKS


def test_ids_are_built_for_every_task_and_variant() -> None:
    expected = {env_id(t.name, dense, discrete) for t in TASKS for dense in (False, True) for discrete in (False, True)}
    assert set(ENV_IDS) == expected
    assert len(ENV_IDS) == len(expected) == 20


@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version")
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env(env_id: str, make_env) -> None:
    env = make_env(env_id, render_mode="rgb_array", render_width=64, render_height=48)
    check_env(env.unwrapped if not env_id.endswith("Discrete-v0") else env, skip_render_check=False)
    if env_id.endswith("Discrete-v0"):
        assert isinstance(env.action_space, gym.spaces.Discrete)
    else:
        assert env.action_space.shape == (4,)
        assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    obs_space = env.observation_space
    assert set(obs_space.spaces) == {"observation", "achieved_goal", "desired_goal"}
    assert obs_space["achieved_goal"].shape == obs_space["desired_goal"].shape


@pytest.mark.parametrize("task", [t.name for t in TASKS])
def test_render_returns_documented_shape_and_shows_motion(task: str, make_env) -> None:
    env = make_env(env_id(task), render_mode="rgb_array", render_width=160, render_height=120)
    env.reset(seed=0)
    before = env.render()
    assert before.shape == (120, 160, 3)
    assert before.dtype == np.uint8
    assert before.std() > 5  # a real picture, not a blank frame
    for _ in range(8):
        env.step(np.array([-1.0, -1.0, -1.0, 1.0], dtype=np.float32))
    after = env.render()
    assert np.abs(after.astype(int) - before.astype(int)).sum() > 0, "the camera should see the arm move"


def test_render_without_render_mode_returns_none(make_env) -> None:
    env = make_env(env_id("Reach"))
    env.reset(seed=0)
    assert env.render() is None

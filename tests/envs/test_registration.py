"""Every registered id passes Gymnasium's and stable-baselines3's checkers and renders an image of
the documented shape."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from telesurg.envs import ENV_IDS, env_id
from telesurg.envs.tasks import TASKS
from telesurg.envs.wrappers import CostPenalty, DiscreteActions


def _discrete_layer(env: gym.Env) -> DiscreteActions:
    """The wrapper that gives a Discrete id its action space (under gym.make's own wrappers)."""
    while not isinstance(env, DiscreteActions):
        env = env.env
    return env


def test_ids_are_built_for_every_task_and_variant() -> None:
    expected = {env_id(t.name, dense, discrete) for t in TASKS for dense in (False, True) for discrete in (False, True)}
    assert set(ENV_IDS) == expected
    assert len(ENV_IDS) == len(expected) == 20


# What gym.make hands out (time limit, order enforcing, passive checker included) is what users get,
# so it is checked whole; Box ids are checked unwrapped as well, where no wrapper can hide a fault.
@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version")
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_check_env(env_id: str, make_env) -> None:
    env = make_env(env_id, render_mode="rgb_array", render_width=64, render_height=48)
    check_env(env, skip_render_check=False)
    if not env_id.endswith("Discrete-v0"):
        check_env(env.unwrapped, skip_render_check=False)
    if env_id.endswith("Discrete-v0"):
        assert isinstance(env.action_space, gym.spaces.Discrete)
    else:
        assert env.action_space.shape == (4,)
        assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    obs_space = env.observation_space
    assert set(obs_space.spaces) == {"observation", "achieved_goal", "desired_goal"}
    assert obs_space["achieved_goal"].shape == obs_space["desired_goal"].shape


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_check_env(env_id: str, make_env) -> None:
    """SB3 calls ``compute_reward`` on the env it is given (gym.make's wrappers have none), so Box
    ids are checked unwrapped, as panda-gym's are, and Discrete ids at their Discrete wrapper. It
    asserts that the step reward equals ``compute_reward`` of the observed goals, single and batched."""
    env = make_env(env_id)
    target = _discrete_layer(env) if env_id.endswith("Discrete-v0") else env.unwrapped
    sb3_check_env(target)
    assert target.action_space == env.action_space


@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version")
def test_training_wrappers_pass_both_checkers(make_env) -> None:
    """The shield leaves the reward alone and CostPenalty's ``compute_reward`` subtracts the cost
    as its ``step`` does, so the training stack is still a goal env to both checkers."""
    env = CostPenalty(make_env(env_id("Palpate", dense=True, discrete=True), shield=True), weight=5.0)
    check_env(env)
    sb3_check_env(env)


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

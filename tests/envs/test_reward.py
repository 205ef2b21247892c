"""The step reward is exactly ``compute_reward`` of the goals the observation carries.

Hindsight experience replay relabels stored transitions with ``compute_reward(achieved_goal,
desired_goal, info)`` on the float32 goals it saw, so the reward ``step`` returned must be that very
number (``==``, not approximately), with and without contact force, in every wrapper.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from telesurg.envs import ENV_IDS, env_id
from telesurg.envs.experts import make_expert
from telesurg.envs.wrappers import CostPenalty

PRESS_DOWN = np.array([0.0, 0.0, -0.25, -1.0], dtype=np.float32)  # 1 mm per step, jaws closed
PUSH_DOWN = np.array([0.0, 0.0, -1.0, -1.0], dtype=np.float32)  # 4 mm per step: the tissue in ~13 steps


def _assert_reward_is_compute_reward(env: gym.Env, obs: dict, reward: float, info: dict) -> None:
    goals = obs["achieved_goal"], obs["desired_goal"]
    assert goals[0].dtype == goals[1].dtype == np.float32
    assert reward == env.unwrapped.compute_reward(*goals, info)
    # What SB3's HER calls through its VecEnv: the outermost compute_reward below the given env.
    assert reward == env.get_wrapper_attr("compute_reward")(*goals, info)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_step_reward_is_compute_reward_of_the_observed_goals(env_id: str, make_env) -> None:
    env = make_env(env_id)
    base = env.unwrapped
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    achieved, desired, infos, rewards = [], [], [], []
    for _ in range(15):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        _assert_reward_is_compute_reward(env, obs, reward, info)
        if base.config.reward_type == "sparse":
            # The success term of the reward is the success reported in info.
            penalty = base.config.violation_penalty * info["force_limit_exceeded"]
            assert reward == float(info["is_success"]) - 1.0 - penalty
        achieved.append(obs["achieved_goal"])
        desired.append(obs["desired_goal"])
        infos.append(info)
        rewards.append(reward)
        if terminated or truncated:
            break
    batch = base.compute_reward(np.array(achieved), np.array(desired), infos)
    np.testing.assert_array_equal(batch, rewards)


@pytest.mark.parametrize("dense", [False, True])
def test_palpate_rewards_match_through_contact_success_and_violation(dense: bool, make_env) -> None:
    """The force fields of the goal and info matter here: the expert presses to the target force
    and holds it (success), then the tool is pushed on through the warn band to the hard limit."""
    env = make_env(env_id("Palpate", dense=dense), max_episode_steps=200)
    limits = env.unwrapped.limits
    expert = make_expert(env)
    obs, _ = env.reset(seed=2)
    expert.reset()
    seen: list[dict] = []
    for _ in range(75):
        obs, reward, _, _, info = env.step(expert.action(obs))
        _assert_reward_is_compute_reward(env, obs, reward, info)
        seen.append(info)
        if info["is_success"]:
            break
    assert seen[-1]["is_success"], "the expert should hold the target force at the spot"
    assert obs["achieved_goal"][3] > 0.0, "the achieved goal carries the contact force"
    for _ in range(40):
        obs, reward, terminated, _, info = env.step(PRESS_DOWN)
        _assert_reward_is_compute_reward(env, obs, reward, info)
        seen.append(info)
        if terminated:
            break
    assert seen[-1]["force_limit_exceeded"], "pressing on must reach the hard limit"
    assert any(limits.warn_N < i["contact_force_max_N"] <= limits.hard_N for i in seen), "warn band never seen"


def test_cost_penalty_relabels_with_the_cost_it_charged(make_env) -> None:
    """The training stack (shield, then CostPenalty): the penalised step reward is the penalised
    ``compute_reward``, also for a relabelled goal, and the task reward underneath is unchanged."""
    weight = 5.0
    env = CostPenalty(make_env(env_id("Palpate", dense=True), shield=True), weight=weight)
    base = env.unwrapped
    obs, _ = env.reset(seed=0)
    achieved, infos, costs, shielded = [], [], [], []
    for _ in range(25):
        obs, reward, _, _, info = env.step(PUSH_DOWN)
        goals = obs["achieved_goal"], obs["desired_goal"]
        assert reward == env.compute_reward(*goals, info)
        assert info["reward_without_cost"] == base.compute_reward(*goals, info)
        achieved.append(obs["achieved_goal"])
        infos.append(info)
        costs.append(info["cost"])
        shielded.append(info["shield_active"])
    assert any(shielded) and max(costs) > 0.0, "the shield should hold the tool inside the warn band"
    # HER relabelling: the goal replaced by what was achieved, in a batch.
    relabelled = env.compute_reward(np.array(achieved), np.array(achieved), infos)
    task_only = base.compute_reward(np.array(achieved), np.array(achieved), infos)
    np.testing.assert_array_equal(relabelled, task_only - weight * np.array(costs))

"""Discrete actions: the lookup table, jaw memory, and millimetre precision for DQN."""

from __future__ import annotations

import numpy as np

from telesurg.envs import env_id


def test_table_has_noop_coarse_and_fine_steps_and_jaw_only_where_needed(make_env) -> None:
    reach = make_env(env_id("Reach", discrete=True))
    retract = make_env(env_id("Retract", discrete=True))
    assert reach.action_space.n == 13
    assert retract.action_space.n == 15
    labels = reach.get_wrapper_attr("labels")
    assert labels[0] == "no-op"
    assert "+x fine" in labels and "-z coarse" in labels
    assert "jaw open" in retract.get_wrapper_attr("labels")


def test_jaw_command_persists_across_motion_actions(make_env) -> None:
    env = make_env(env_id("Retract", discrete=True))
    base = env.unwrapped
    env.reset(seed=0)
    labels = env.get_wrapper_attr("labels")
    env.step(labels.index("jaw open"))
    for _ in range(4):
        obs, *_ = env.step(labels.index("+x fine"))
    assert base.obs_layout.get(obs["observation"], "jaw_opening")[0] > 0.9
    env.step(labels.index("jaw close"))
    for _ in range(4):
        obs, *_ = env.step(0)
    assert base.obs_layout.get(obs["observation"], "jaw_opening")[0] < 0.1


def test_greedy_discrete_controller_reaches_within_3mm(make_env) -> None:
    env = make_env(env_id("Reach", discrete=True))
    base = env.unwrapped
    table = env.get_wrapper_attr("table")
    steps = np.array([s for s, _ in table]) * base.max_step_m
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        info = {"is_success": False}
        for _ in range(50):
            error = obs["desired_goal"] - obs["achieved_goal"]
            # Pick the table step that brings the tip closest to the goal.
            action = int(np.argmin(np.linalg.norm(error - steps, axis=1)))
            obs, _, _, _, info = env.step(action)
            if info["is_success"]:
                break
        assert info["is_success"], f"seed {seed}: ended {np.linalg.norm(error) * 1000:.1f} mm away"

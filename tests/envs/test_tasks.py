"""Task behaviour: HER-style pure rewards, and the rules each task's success depends on."""

from __future__ import annotations

import numpy as np
import pytest

from telesurg.envs import env_id
from telesurg.envs.experts import make_expert
from telesurg.envs.tasks import TASKS


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("task", [t.name for t in TASKS])
def test_compute_reward_is_a_pure_vectorised_function_of_goals_and_info(task: str, dense: bool, make_env) -> None:
    env = make_env(env_id(task, dense=dense))
    base = env.unwrapped
    expert = make_expert(env)
    obs, _ = env.reset(seed=1)
    expert.reset()
    achieved, desired, infos, rewards = [], [], [], []
    for _ in range(200):
        obs, reward, terminated, truncated, info = env.step(expert.action(obs))
        achieved.append(obs["achieved_goal"])
        desired.append(obs["desired_goal"])
        infos.append(info)
        rewards.append(reward)
        if terminated or truncated:
            break
    batch = base.compute_reward(np.array(achieved), np.array(desired), infos)
    np.testing.assert_array_equal(batch, rewards)  # exactly: HER relabels with compute_reward
    # Relabelling the goal with what was achieved (HER) counts as success in the sparse reward.
    if not dense:
        relabelled = base.compute_reward(np.array(achieved), np.array(achieved), infos)
        assert np.all(relabelled == 0.0)
    assert any(i["is_success"] for i in infos)


def test_palpate_hold_resets_when_force_leaves_the_band(make_env) -> None:
    env = make_env(env_id("Palpate"))
    base = env.unwrapped
    expert = make_expert(env)
    obs, _ = env.reset(seed=2)
    expert.reset()
    for _ in range(75):
        obs, _, _, _, info = env.step(expert.action(obs))
        if info["hold_s"] > 0.2:
            break
    assert info["hold_s"] > 0.2
    # Lift off: force drops out of the band and the hold timer restarts from zero.
    obs, _, _, _, info = env.step(np.array([0.0, 0.0, 1.0, -1.0], dtype=np.float32))
    obs, _, _, _, info = env.step(np.array([0.0, 0.0, 1.0, -1.0], dtype=np.float32))
    assert info["hold_s"] == 0.0
    assert base.obs_layout.get(obs["observation"], "hold_s")[0] == 0.0
    assert not info["is_success"]


def test_trace_progress_needs_contact_force_in_band(make_env) -> None:
    env = make_env(env_id("Trace"))
    base = env.unwrapped
    obs, _ = env.reset(seed=3)
    # Hover 3 mm above the path and follow the lookahead point without touching: no progress.
    for _ in range(60):
        look = base.obs_layout.get(obs["observation"], "lookahead_m").astype(np.float64)
        tip = base.obs_layout.get(obs["observation"], "tip_pos_m").astype(np.float64)
        target = look + np.array([0.0, 0.0, 0.0055])
        action = np.clip((target - tip) / base.max_step_m, -1, 1)
        obs, _, _, _, info = env.step(np.array([*action, -1.0], dtype=np.float32))
        assert info["contact_force_N"] == 0.0
    assert info["progress"] == 0.0


def test_retract_grasp_needs_jaws_opened_then_closed_at_the_tab(make_env) -> None:
    env = make_env(env_id("Retract"))
    base = env.unwrapped
    obs, _ = env.reset(seed=0)

    def go_to(target_offset, jaw, steps=40):
        nonlocal obs
        for _ in range(steps):
            tab = base.obs_layout.get(obs["observation"], "tab_pos_m").astype(np.float64)
            tip = base.obs_layout.get(obs["observation"], "tip_pos_m").astype(np.float64)
            action = np.clip((tab + target_offset - tip) / base.max_step_m, -1, 1)
            obs, *_ = env.step(np.array([*action, jaw], dtype=np.float32))

    go_to(np.array([0, 0, 0.0022]), jaw=-1.0)  # arrive with closed jaws
    assert base.obs_layout.get(obs["observation"], "grasped")[0] == 0.0
    go_to(np.array([0, 0, 0.0022]), jaw=1.0, steps=10)  # open...
    go_to(np.array([0, 0, 0.0022]), jaw=-1.0, steps=10)  # ...and close on the tab
    assert base.obs_layout.get(obs["observation"], "grasped")[0] == 1.0
    go_to(np.array([0, 0, 0.0022]), jaw=1.0, steps=5)  # opening releases
    assert base.obs_layout.get(obs["observation"], "grasped")[0] == 0.0


def test_transfer_block_stays_on_its_peg_unless_grasped(make_env) -> None:
    env = make_env(env_id("Transfer"))
    obs, _ = env.reset(seed=5)
    start = obs["achieved_goal"].copy()
    rng = np.random.default_rng(0)
    for _ in range(80):
        action = rng.uniform(-1, 1, 4).astype(np.float32)
        action[3] = -1.0  # jaws stay closed: no grasp possible
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    np.testing.assert_allclose(obs["achieved_goal"], start, atol=1e-4)


def test_scene_state_mirrors_into_another_world(make_env) -> None:
    """Every body is rigid or articulated: poses and joint values reproduce the scene exactly."""
    source = make_env(env_id("Retract"), render_mode="rgb_array", render_width=96, render_height=72)
    mirror = make_env(env_id("Retract"), render_mode="rgb_array", render_width=96, render_height=72)
    expert = make_expert(source)
    obs, _ = source.reset(seed=4)
    mirror.reset(seed=11)
    expert.reset()
    for _ in range(40):
        obs, *_ = source.step(expert.action(obs))
    snapshot = source.unwrapped.sim.snapshot()
    assert not np.array_equal(source.render(), mirror.render())
    mirror.unwrapped.sim.apply_snapshot(snapshot)
    np.testing.assert_array_equal(source.render(), mirror.render())


@pytest.mark.parametrize("task", [t.name for t in TASKS])
def test_the_force_band_a_console_draws_is_the_one_success_needs(task: str, make_env) -> None:
    """``Task.force_band_N`` (the target band on every force bar) holds every force the expert's
    successful episodes keep while the task counts progress; tasks with no band give None."""
    env = make_env(env_id(task))
    base = env.unwrapped
    band = type(base.task).force_band_N()
    expert = make_expert(env)
    obs, _ = env.reset(seed=4)
    expert.reset()
    held = []
    for _ in range(300):
        obs, _, terminated, truncated, info = env.step(expert.action(obs))
        if info.get("hold_s", 0.0) > 0.0 or info.get("progress_made", False):
            held.append(info["contact_force_N"])
        if terminated or truncated:
            break
    assert info["is_success"]
    if task in ("Palpate", "Trace"):
        assert band is not None and 0.0 < band[0] < band[1] < base.limits.warn_N
        if task == "Palpate":
            assert held and all(band[0] - 1e-6 <= f <= band[1] + 1e-6 for f in held)
    else:
        assert band is None

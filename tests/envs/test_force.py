"""Contact force: grows with indentation, the hard limit ends the episode, the shield holds it."""

from __future__ import annotations

import numpy as np
import pytest

from telesurg.envs import env_id
from telesurg.envs.safety import ForceLimits, ForceShield


def _press_down(env, seed: int = 0, dz_action: float = -0.25, steps: int = 40):
    """Hover at the reset pose, then descend straight down ``dz_action`` × 4 mm per step."""
    obs, _ = env.reset(seed=seed)
    base = env.unwrapped
    records = []
    for _ in range(steps):
        obs, _, terminated, truncated, info = env.step(np.array([0.0, 0.0, dz_action, -1.0], dtype=np.float32))
        tip_world = base.arm.base_to_world(base.obs_layout.get(obs["observation"], "tip_pos_m").astype(np.float64))
        records.append((tip_world, info))
        if terminated or truncated:
            break
    return records


def test_force_rises_monotonically_with_indentation_at_documented_stiffness(make_env) -> None:
    env = make_env(env_id("Palpate"))
    base = env.unwrapped
    radius = 0.0025  # the tool-tip sphere
    surface = base.scene.surface_z_m
    # Descend 1 mm per step from 50 mm until 5 N; force is read after each 40 ms period.
    records = _press_down(env, dz_action=-0.25, steps=70)
    depths, forces = [], []
    for tip, info in records:
        depth = surface + radius - tip[2]
        if info["contact_force_N"] > 5.0:
            break
        depths.append(depth)
        forces.append(info["contact_force_N"])
    depths, forces = np.array(depths), np.array(forces)
    touching = depths > 0.0005
    assert touching.sum() >= 10, "the tool should have indented the tissue over several steps"
    assert np.all(np.diff(forces[touching]) > 0), "force must rise with every millimetre of indentation"
    assert np.all(forces[depths < -0.0005] == 0.0), "no force before contact"
    slope = np.polyfit(depths[touching], forces[touching], 1)[0]
    stiffness = base.config.scene.tissue.stiffness_N_m
    assert abs(slope - stiffness) / stiffness < 0.05, f"measured {slope:.0f} N/m, documented {stiffness:.0f} N/m"
    # The force is a vector pointing out of the tissue (base +z here).
    vec = records[len(depths) - 1][1]["contact_force_vec_N"]
    assert vec[2] > 0.95 * np.linalg.norm(vec)


def test_crossing_the_hard_limit_terminates_with_a_cost(make_env) -> None:
    env = make_env(env_id("Palpate"), max_episode_steps=200)
    records = _press_down(env, dz_action=-1.0, steps=200)
    _, info = records[-1]
    assert info["force_limit_exceeded"]
    assert info["contact_force_max_N"] > env.unwrapped.limits.hard_N
    assert info["cost"] == 1.0
    assert len(records) < 200, "the episode must end on the violation"
    assert all(not i["force_limit_exceeded"] for _, i in records[:-1])
    # The reward carries the penalty (sparse reward: -1 per step otherwise).
    env.reset(seed=0)
    base = env.unwrapped
    reward = base.compute_reward(np.zeros(5), np.ones(5), info)
    assert reward <= -1.0 - base.config.violation_penalty + 1e-9


def test_shield_keeps_a_downward_pushing_agent_below_the_hard_limit(make_env) -> None:
    env = make_env(env_id("Palpate"), shield=True, max_episode_steps=300)
    env.reset(seed=0)
    max_force, active = 0.0, 0
    for _ in range(200):
        _, _, terminated, truncated, info = env.step(np.array([0.0, 0.0, -1.0, -1.0], dtype=np.float32))
        assert not info["force_limit_exceeded"]
        assert not terminated and not truncated
        max_force = max(max_force, info["contact_force_max_N"])
        active += info["shield_active"]
    hard = env.unwrapped.limits.hard_N
    assert max_force < hard
    assert max_force > env.unwrapped.limits.warn_N, "the agent really pressed into the warn band"
    assert active > 100


@pytest.mark.parametrize("hard_N", [3.5, 5.0, 8.0])
@pytest.mark.parametrize("drag", [False, True])
def test_shield_holds_any_hard_limit_while_pushing_and_dragging(make_env, hard_N: float, drag: bool) -> None:
    """Full-speed pushing into tissue peaks above the force it settles at (damping while the servo
    moves), and sliding under load adds friction and servo dip; whatever the hard limit, bang-bang
    lateral moves with a constant push down must never cross it."""
    env = make_env(env_id("Palpate"), shield=True, hard_N=hard_N, max_episode_steps=100)
    rng = np.random.default_rng(0)
    peak = 0.0
    for seed in range(4):
        env.reset(seed=seed)
        for _ in range(100):
            action = rng.choice([-1.0, 1.0], 4) if drag else np.array([0.0, 0.0, -1.0, -1.0])
            action[2] = -1.0
            _, _, terminated, _, info = env.step(action)
            peak = max(peak, info["contact_force_max_N"])
            assert not terminated, f"hard limit {hard_N} N crossed: {info['contact_force_max_N']:.2f} N"
    assert peak > hard_N - 1.5  # it really pressed up to the shield's ceiling


def test_shield_alone() -> None:
    shield = ForceShield(ForceLimits(warn_N=3.0, hard_N=6.0))
    down = np.array([0.0, 0.0, -0.004])
    # No contact: motion passes unchanged.
    np.testing.assert_array_equal(shield.filter(down, np.zeros(3)), down)
    # Light contact, far from the ceiling: unchanged.
    np.testing.assert_allclose(shield.filter(down, np.array([0.0, 0.0, 1.0])), down)
    # In the warn band: the motion into tissue shrinks, and sliding slows by the same factor
    # (halfway from warn 3 N to the 5 N ceiling: half speed).
    shield.reset()
    out = shield.filter(np.array([0.002, 0.0, -0.004]), np.array([0.0, 0.0, 4.0]))
    assert out[0] == pytest.approx(0.001)
    assert -0.004 < out[2] <= 0.0
    # Above the ceiling (hard - margin): it backs off along the normal.
    shield.reset()
    out = shield.filter(down, np.array([0.0, 0.0, 5.8]))
    assert out[2] > 0.0
    # A stiff contact is learned: after a big force rise per metre, the allowance shrinks.
    shield.reset()
    shield.filter(np.array([0.0, 0.0, -0.001]), np.array([0.0, 0.0, 0.5]))
    shield.filter(np.array([0.0, 0.0, -0.001]), np.array([0.0, 0.0, 2.5]))
    assert shield.stiffness_N_m >= 1900.0
    # Moving away from tissue is never restricted.
    np.testing.assert_allclose(shield.filter(np.array([0.0, 0.0, 0.004]), np.array([0.0, 0.0, 5.0])), [0, 0, 0.004])
    # A non-finite reading allows no motion.
    np.testing.assert_array_equal(shield.filter(down, np.array([np.nan, 0.0, 1.0])), np.zeros(3))


def test_a_spike_does_not_slow_sliding_for_the_rest_of_the_contact() -> None:
    """A jump in force raises the learned rise per metre at once; it decays back toward the prior
    while the contact goes on quietly, so sliding returns to its commanded speed."""
    shield = ForceShield(ForceLimits(warn_N=3.0, hard_N=6.0))
    period_s = 0.002
    slide = np.array([2e-4, 0.0, 0.0])  # full speed (0.1 m/s) along the surface
    normal_force = np.array([0.0, 0.0, 2.4])
    shield.filter(slide, normal_force, None, period_s)
    # The tissue snaps: the period's peak reaches 5.9 N, far more than 0.2 mm of sliding predicts.
    shield.filter(slide, normal_force, 5.9, period_s)
    assert shield.shear_rise_N_m > 50 * shield.config.shear_rise_N_m
    slowed = float(np.linalg.norm(shield.filter(slide, normal_force, None, period_s)))
    assert slowed < 0.85 * 2e-4  # right after the spike the shield is cautious
    for _ in range(int(5.0 / period_s)):  # 5 s of quiet contact at the same force
        out = shield.filter(slide, normal_force, None, period_s)
    assert float(np.linalg.norm(out)) == pytest.approx(2e-4)
    assert shield.shear_rise_N_m < 1.1 * shield.config.shear_rise_N_m
    # Without step times (dt_s None) nothing decays: the caller decides.
    still = ForceShield(ForceLimits(warn_N=3.0, hard_N=6.0))
    still.filter(slide, normal_force)
    still.filter(slide, normal_force, 5.9)
    raised = still.shear_rise_N_m
    for _ in range(100):
        still.filter(slide, normal_force)
    assert still.shear_rise_N_m == raised


def test_force_wobble_over_tiny_steps_does_not_ratchet_the_shield() -> None:
    """At 500 Hz the force wobbles by up to ~0.2 N with no motion at all (tissue and servo
    dynamics), and many periods move the setpoint only a few µm (the target nearly reached, a
    held command). Dividing such a wobble by a µm step had raised the learned rises a thousandfold
    and ratcheted: sliding crawled at a third of its commanded speed along tissue at 1.5 N."""
    rng = np.random.default_rng(0)
    shield = ForceShield(ForceLimits(warn_N=3.0, hard_N=6.0))
    want = np.array([1.97e-4, 0.0, -2.6e-5])  # full speed along the surface, a little into it
    ratios = []
    for _ in range(5000):  # 10 s at 500 Hz
        step = want if rng.random() > 0.3 else want * 0.0025
        force = 1.5 + 0.02 * rng.standard_normal() + (0.2 if rng.random() < 0.01 else 0.0)
        out = shield.filter(step, np.array([0.0, 0.0, force]), None, 0.002)
        ratios.append(float(np.linalg.norm(out[:2]) / np.linalg.norm(step[:2])))
    assert np.mean(ratios[-1000:]) > 0.95
    assert shield.shear_rise_N_m < 20 * shield.config.shear_rise_N_m

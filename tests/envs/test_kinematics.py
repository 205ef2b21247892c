"""Kinematics against the simulator: the shaft stays through the trocar, joint limits hold, IK
reaches workspace targets, and the reported tool-tip pose is the simulator's."""

from __future__ import annotations

import numpy as np
import pytest

from telesurg.envs import env_id
from telesurg.envs.arm import SurgicalArm
from telesurg.envs.geometry import point_line_distance, quat_to_matrix
from telesurg.envs.kinematics import psm_kinematics
from telesurg.envs.scene import PatientScene, SceneConfig
from telesurg.envs.sim import Sim

TROCARS = [(0.07, 0.0, 0.11), (-0.03, 0.04, 0.13)]


def _tip_from_sim(env) -> tuple[np.ndarray, np.ndarray]:
    """Tool-tip position (m) and rotation in the base frame, read from the simulator's link state."""
    base = env.unwrapped
    arm = base.arm
    pos, quat = base.sim.link_pose(arm.name, arm.tip_link)
    rot = quat_to_matrix(quat)
    tip_world = pos + rot @ arm.tip_offset_m
    return arm.world_to_base(tip_world), arm.base.rotation_from_parent(rot)


@pytest.mark.parametrize("trocar", TROCARS)
def test_shaft_passes_through_trocar_and_pose_matches_simulator(trocar, make_env) -> None:
    env = make_env(env_id("Reach"), trocar_m=trocar)
    base = env.unwrapped
    arm, sim = base.arm, base.sim
    lower, upper = arm.joint_limits()
    shaft_link = sim.link(arm.name, "insertion_link")
    rng = np.random.default_rng(1)
    worst_rcm, worst_tip, worst_rot = 0.0, 0.0, 0.0
    obs, _ = env.reset(seed=3)
    for step in range(150):
        action = rng.uniform(-1, 1, 4).astype(np.float32)
        obs, _, terminated, truncated, _ = env.step(action)
        # The shaft axis is the insertion link's z axis through its origin.
        pos, quat = sim.link_pose(arm.name, shaft_link)
        axis = quat_to_matrix(quat)[:, 2]
        worst_rcm = max(worst_rcm, point_line_distance(np.array(trocar), pos, axis))
        q = arm.read().joint_positions
        assert np.all(q >= lower - 1e-6) and np.all(q <= upper + 1e-6), f"joint limits violated at step {step}: {q}"
        tip_sim, rot_sim = _tip_from_sim(env)
        reported = base.obs_layout.get(obs["observation"], "tip_pos_m").astype(np.float64)
        worst_tip = max(worst_tip, float(np.linalg.norm(reported - tip_sim)))
        state = arm.read()
        worst_rot = max(worst_rot, float(np.linalg.norm(state.tip_rotation - rot_sim)))
        if terminated or truncated:
            obs, _ = env.reset()
    assert worst_rcm < 0.001, f"shaft passed {worst_rcm * 1000:.3f} mm from the trocar"
    assert worst_tip < 1e-4, f"reported tip differs from the simulator by {worst_tip * 1000:.4f} mm"
    assert worst_rot < 1e-3


@pytest.mark.parametrize("trocar", TROCARS)
def test_ik_reaches_workspace_targets_within_1mm(trocar) -> None:
    with Sim() as sim:
        scene = PatientScene(sim, SceneConfig(trocar_m=trocar))
        arm = SurgicalArm(sim, np.array(trocar))
        arm.set_home(arm.world_to_base(np.array(scene.config.home_tip_m)))
        arm.reset()
        rng = np.random.default_rng(2)
        errors = []
        for _ in range(12):
            target = arm.world_to_base(rng.uniform([-0.05, -0.05, 0.005], [0.05, 0.05, 0.06]))
            start = arm.read().tip_position_m
            # Move in 4 mm increments, as the environment does, then let the servo settle.
            n = max(1, int(np.ceil(np.linalg.norm(target - start) / 0.004)))
            for k in range(1, n + 1):
                reachable = arm.command_tip(start + (target - start) * k / n, 0.0)
                for _ in range(20):
                    sim.step()
            assert reachable
            for _ in range(100):
                sim.step()
            pos, quat = sim.link_pose(arm.name, arm.tip_link)
            tip = arm.world_to_base(pos + quat_to_matrix(quat) @ arm.tip_offset_m)
            errors.append(float(np.linalg.norm(tip - target)))
        assert max(errors) < 0.001, f"IK missed by up to {max(errors) * 1000:.3f} mm"


def test_analytic_ik_round_trip_and_limits() -> None:
    kin = psm_kinematics()
    rng = np.random.default_rng(0)
    for _ in range(500):
        q = rng.uniform(kin.lower * 0.9, kin.upper * 0.9)
        q[2] = rng.uniform(0.03, 0.23)
        tip, _ = kin.forward(q)
        solved, reachable = kin.inverse_position(tip, tuple(q[3:]))
        assert reachable
        np.testing.assert_allclose(kin.forward(solved)[0], tip, atol=1e-9)
    # Far outside the workspace: clamped to the limits and flagged.
    q, reachable = kin.inverse_position(kin.rcm_in_base_m + np.array([0.5, 0.0, -0.01]))
    assert not reachable
    assert np.all(q >= kin.lower) and np.all(q <= kin.upper)


def test_inverse_pose_holds_orientation() -> None:
    kin = psm_kinematics()
    rng = np.random.default_rng(1)
    for _ in range(100):
        tip = kin.rcm_in_base_m + rng.uniform([-0.06, -0.06, -0.16], [0.06, 0.06, -0.06])
        q, reachable = kin.inverse_pose(tip, np.eye(3), iterations=8)
        assert reachable
        pos, rot = kin.forward(q)
        np.testing.assert_allclose(pos, tip, atol=1e-9)
        assert np.linalg.norm(rot - np.eye(3)) < 1e-4

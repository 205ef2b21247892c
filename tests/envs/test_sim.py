"""The simulator layer: save/restore, idempotent close, culling that never hides a contact."""

from __future__ import annotations

import numpy as np
import pytest

from telesurg.envs import env_id
from telesurg.envs.sim import Sim


def test_save_and_restore_state_round_trip(make_env) -> None:
    env = make_env(env_id("Transfer"))
    sim = env.unwrapped.sim
    env.reset(seed=0)
    saved = sim.save_state()
    before = sim.snapshot()
    for _ in range(10):
        env.step(np.array([1.0, 0.5, -0.5, 1.0], dtype=np.float32))
    assert sim.snapshot() != before
    sim.restore_state(saved)
    after = sim.snapshot()
    for name, state in before.items():
        np.testing.assert_allclose(after[name]["position_m"], state["position_m"], atol=1e-12)
        np.testing.assert_allclose(after[name]["joint_positions"], state["joint_positions"], atol=1e-12)


def test_close_is_idempotent_and_use_after_close_fails_clearly() -> None:
    sim = Sim()
    sim.create_body("box", [{"kind": "box", "half_extents_m": (0.01, 0.01, 0.01)}])
    sim.close()
    sim.close()
    with pytest.raises(RuntimeError, match="closed"):
        sim.save_state()


def test_unknown_names_and_shapes_are_reported() -> None:
    with Sim() as sim:
        with pytest.raises(KeyError, match="no body named"):
            sim.body("ghost")
        with pytest.raises(ValueError, match="unknown shape kind"):
            sim.create_body("blob", [{"kind": "blob"}])
        sim.create_body("box", [{"kind": "box", "half_extents_m": (0.01, 0.01, 0.01)}])
        with pytest.raises(ValueError, match="already exists"):
            sim.create_body("box", [{"kind": "box", "half_extents_m": (0.01, 0.01, 0.01)}])


def test_contact_culling_never_misses_a_contact(make_env) -> None:
    """Random motion near tissue: every period the culling skips really has no contact."""
    env = make_env(env_id("Palpate"))
    base = env.unwrapped
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    skipped, real_contacts_missed = 0, 0
    for _ in range(400):
        a = rng.uniform(-1, 1, 4)
        a[2] = rng.uniform(-1.0, 0.6)  # drift toward the tissue
        tip = base.arm.read().tip_position_m
        target = np.clip(tip + a[:3] * base.max_step_m, base._ws_low, base._ws_high)
        margin = float(np.linalg.norm(target - tip)) + base.CONTACT_MARGIN_M
        culled = not base.sim.may_touch(base.arm.name, base._tool_links, margin)
        _, _, terminated, truncated, info = env.step(a.astype(np.float32))
        if culled:
            skipped += 1
            # Check the same period's end state directly: the tip must not be in the tissue.
            hit = base.sim.deepest_point(base.arm.name, base.arm.tip_link, "tissue", -1)
            real_contacts_missed += hit is not None
            assert info["contact_force_max_N"] == 0.0
        if terminated or truncated:
            env.reset()
    assert skipped > 50 and real_contacts_missed == 0


def test_camera_intrinsics_match_the_render_projection(make_env) -> None:
    """A marker at a known world point appears at the pixel the pinhole intrinsics predict."""
    import math

    from telesurg.envs.scene import camera_intrinsics

    env = make_env(env_id("Reach"), render_mode="rgb_array", render_width=160, render_height=120)
    base = env.unwrapped
    env.reset(seed=0)
    cam = base.camera
    fx, fy, cx, cy = camera_intrinsics(cam, 160, 120)
    assert fx == fy and (cx, cy) == (80, 60)
    assert math.isclose(math.degrees(2 * math.atan((120 / 2) / fy)), cam.fov_deg)
    # Put the green Reach marker on the camera's optical axis: it must render at the image centre.
    eye, target = np.array(cam.eye_m), np.array(cam.target_m)
    point = eye + 0.6 * (target - eye)
    base.sim.reset_base_pose("reach_target", point)
    image = env.render().astype(int)
    green = (image[:, :, 1] > 150) & (image[:, :, 0] < 120) & (image[:, :, 2] < 120)
    ys, xs = np.nonzero(green)
    assert len(xs) > 0
    assert abs(xs.mean() - cx) < 3 and abs(ys.mean() - cy) < 3

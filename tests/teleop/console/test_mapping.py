"""Hand → tool mapping: clutch anchoring, motion scaling, hand–eye alignment and its inverse."""

from __future__ import annotations

import math

import numpy as np
import pytest

from telesurg.teleop.console.mapping import HandToTool, MappingConfig


def rotate(q_xyzw: tuple[float, float, float, float], v: np.ndarray) -> np.ndarray:
    """``v`` rotated by the unit quaternion ``q`` as q · (v, 0) · q* (Hamilton products), written out
    here so the expectation does not reuse the rotation-matrix code under test."""

    def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ax, ay, az, aw = a
        bx, by, bz, bw = b
        return np.array(
            [
                aw * bx + ax * bw + ay * bz - az * by,
                aw * by - ax * bz + ay * bw + az * bx,
                aw * bz + ax * by - ay * bx + az * bw,
                aw * bw - ax * bx - ay * by - az * bz,
            ]
        )

    q = np.asarray(q_xyzw, dtype=float)
    conj = q * np.array([-1.0, -1.0, -1.0, 1.0])
    return mul(mul(q, np.array([*v, 0.0])), conj)[:3]


def axis_angle(axis: tuple[float, float, float], angle_rad: float) -> tuple[float, float, float, float]:
    a = np.asarray(axis, dtype=float)
    a /= np.linalg.norm(a)
    s = math.sin(angle_rad / 2)
    return (float(a[0] * s), float(a[1] * s), float(a[2] * s), math.cos(angle_rad / 2))


# A camera looking down and tilted about an oblique axis: no axis of it lines up with the base's.
OBLIQUE = axis_angle((0.3, -0.5, 0.8), 2.1)
HAND0 = np.array([0.31, -0.12, 0.07])
TOOL0 = np.array([-0.07, -0.30, -0.06])


def test_closing_the_clutch_anchors_at_the_measured_tool_without_a_jump() -> None:
    m = HandToTool()
    m.set_camera(OBLIQUE)
    assert not m.clutched
    target = m.update(HAND0, True, TOOL0)
    assert m.clutched
    # Whatever the hand's absolute position, the first target is exactly where the tool is.
    np.testing.assert_allclose(target, TOOL0, atol=1e-15)
    np.testing.assert_allclose(m.target_m, TOOL0, atol=1e-15)


def test_while_clutched_the_measured_tool_is_ignored_and_motion_is_relative_to_the_anchor() -> None:
    m = HandToTool(MappingConfig(motion_scale=0.5))
    m.update(HAND0, True, TOOL0)
    # The tool drifting (e.g. delayed telemetry) must not move the anchor.
    target = m.update(HAND0 + np.array([0.02, 0.0, 0.0]), True, TOOL0 + np.array([0.05, 0.05, 0.05]))
    np.testing.assert_allclose(target, TOOL0 + np.array([0.01, 0.0, 0.0]), atol=1e-12)


def test_open_clutch_gives_no_target_and_closing_again_re_anchors() -> None:
    m = HandToTool(MappingConfig(motion_scale=0.2))
    m.update(HAND0, True, TOOL0)
    moved = m.update(HAND0 + np.array([0.05, 0.0, 0.0]), True, TOOL0)
    assert moved is not None and np.linalg.norm(moved - TOOL0) > 0.009

    assert m.update(HAND0 + np.array([0.05, 0.0, 0.0]), False, moved) is None
    assert m.target_m is None and not m.clutched

    # The surgeon repositions the hand far away while the robot holds, then clutches in again.
    hand1 = HAND0 + np.array([-0.20, 0.15, -0.10])
    tool1 = moved + np.array([0.0005, -0.0002, 0.0001])  # where the robot actually stopped
    np.testing.assert_allclose(m.update(hand1, True, tool1), tool1, atol=1e-15)
    # …and motion continues from the new anchors, not the old ones.
    np.testing.assert_allclose(
        m.update(hand1 + np.array([0.0, 0.0, -0.05]), True, TOOL0), tool1 + np.array([0.0, 0.0, 0.01]), atol=1e-12
    )


@pytest.mark.parametrize("scale", [0.1, 0.2, 0.5, 1.0])
def test_motion_scale_is_exact(scale: float) -> None:
    m = HandToTool(MappingConfig(motion_scale=scale))
    m.set_camera(OBLIQUE)
    m.update(HAND0, True, TOOL0)
    rng = np.random.default_rng(1)
    for _ in range(20):
        d = rng.normal(0.0, 0.05, 3)
        target = m.update(HAND0 + d, True, TOOL0)
        assert target is not None
        assert np.linalg.norm(target - TOOL0) == pytest.approx(scale * np.linalg.norm(d), rel=1e-12)


def test_identity_camera_maps_screen_axes_to_camera_axes() -> None:
    """Camera frame = base frame: right → +x, up → −y (image y is down), toward the surgeon → −z."""
    m = HandToTool(MappingConfig(motion_scale=0.5))
    m.update(HAND0, True, TOOL0)
    for hand_d, tool_d in [
        ((0.1, 0.0, 0.0), (0.05, 0.0, 0.0)),
        ((0.0, 0.1, 0.0), (0.0, -0.05, 0.0)),
        ((0.0, 0.0, 0.1), (0.0, 0.0, -0.05)),
    ]:
        np.testing.assert_allclose(m.update(HAND0 + np.array(hand_d), True, TOOL0), TOOL0 + tool_d, atol=1e-12)


def test_camera_turned_90_degrees_about_z_moves_the_tool_along_base_y_for_a_hand_move_right() -> None:
    m = HandToTool(MappingConfig(motion_scale=0.2))
    m.set_camera(axis_angle((0.0, 0.0, 1.0), math.pi / 2))  # image x is base +y
    m.update(HAND0, True, TOOL0)
    target = m.update(HAND0 + np.array([0.05, 0.0, 0.0]), True, TOOL0)
    np.testing.assert_allclose(target - TOOL0, [0.0, 0.01, 0.0], atol=1e-12)


@pytest.mark.parametrize("quat", [OBLIQUE, axis_angle((1.0, 0.0, 0.0), -2.5), axis_angle((0.0, 1.0, 1.0), 0.7)])
def test_hand_eye_alignment_follows_the_camera_axes_in_the_base_frame(quat) -> None:
    scale = 0.25
    m = HandToTool(MappingConfig(motion_scale=scale))
    m.set_camera(quat)
    m.update(HAND0, True, TOOL0)
    cam_x, cam_y, cam_z = (rotate(quat, e) for e in np.eye(3))
    step = 0.04
    right = m.update(HAND0 + np.array([step, 0, 0]), True, TOOL0)
    np.testing.assert_allclose(right - TOOL0, scale * step * cam_x, atol=1e-12)
    up = m.update(HAND0 + np.array([0, step, 0]), True, TOOL0)
    np.testing.assert_allclose(up - TOOL0, -scale * step * cam_y, atol=1e-12)  # up on screen = −image y
    toward = m.update(HAND0 + np.array([0, 0, step]), True, TOOL0)
    np.testing.assert_allclose(toward - TOOL0, -scale * step * cam_z, atol=1e-12)  # out of the scene


def test_changing_the_camera_re_anchors_and_the_same_camera_does_not() -> None:
    m = HandToTool()
    m.set_camera(OBLIQUE)
    m.update(HAND0, True, TOOL0)
    m.set_camera(OBLIQUE)  # telemetry repeats the same pose every period
    assert m.clutched
    m.set_camera(axis_angle((0.0, 0.0, 1.0), 0.3))
    assert not m.clutched
    # The next clutched update anchors afresh at the measured tool: no jump from the new rotation.
    tool1 = TOOL0 + np.array([0.003, 0.0, 0.0])
    np.testing.assert_allclose(m.update(HAND0 + 0.1, True, tool1), tool1, atol=1e-15)


@pytest.mark.parametrize("quat", [(0.0, 0.0, 0.0, 1.0), OBLIQUE, axis_angle((1.0, 0.0, 0.0), -2.5)])
def test_hand_velocity_for_inverts_matrix(quat) -> None:
    m = HandToTool(MappingConfig(motion_scale=0.3))
    m.set_camera(quat)
    rng = np.random.default_rng(2)
    for _ in range(10):
        v_tool = rng.normal(0.0, 0.05, 3)
        v_hand = m.hand_velocity_for(v_tool)
        np.testing.assert_allclose(m.matrix @ v_hand, v_tool, atol=1e-14)
        # The hand speed is the tool speed divided by the scale (the mapping is a scaled rotation).
        assert np.linalg.norm(v_hand) == pytest.approx(np.linalg.norm(v_tool) / 0.3, rel=1e-12)
    # Moving the hand at that velocity through the clutch moves the tool at the requested velocity.
    v_tool = np.array([0.02, -0.01, 0.005])
    m.update(HAND0, True, TOOL0)
    dt = 0.1
    np.testing.assert_allclose(m.update(HAND0 + m.hand_velocity_for(v_tool) * dt, True, TOOL0), TOOL0 + v_tool * dt)


@pytest.mark.parametrize("bad", [0.0, -0.2, 1.0001, 5.0, math.nan, math.inf])
def test_mapping_config_rejects_bad_scales(bad: float) -> None:
    with pytest.raises(ValueError, match="motion_scale"):
        MappingConfig(motion_scale=bad)


def test_mapping_config_accepts_the_ends_of_its_range() -> None:
    assert HandToTool(MappingConfig(motion_scale=1.0)).matrix[0, 0] == pytest.approx(1.0)
    assert HandToTool(MappingConfig(motion_scale=1e-3)).matrix[0, 0] == pytest.approx(1e-3)

"""The robot interface and the simulated arm on a real pybullet world (2 ms control periods)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

from telesurg.envs.scene import SceneConfig
from telesurg.teleop.robot.arm import RobotInterface, RobotReading, SimArmConfig, SimulatedArm

DT = 0.002
# The "vessel" of launch/robot.toml: one forbidden box in the world frame.
REGION_WORLD = ((-0.065, 0.045, 0.0), (-0.055, 0.065, 0.03))


@pytest.fixture(scope="module")
def arm() -> Iterator[SimulatedArm]:
    """One connected arm for the module (building scenes is the slow part); tests reload the task."""
    a = SimulatedArm(SimArmConfig(preload=(), forbidden_m=(REGION_WORLD,), camera_width=800, camera_height=600))
    a.connect()
    yield a
    a.disconnect()


@pytest.fixture
def fresh(arm: SimulatedArm) -> SimulatedArm:
    arm.load_task("Reach", 0)
    return arm


def run(arm: SimulatedArm, seconds: float) -> np.ndarray:
    """Advance ``seconds`` in control periods; the tip position (m, base frame) after each."""
    tips = []
    for _ in range(round(seconds / DT)):
        arm.update(DT)
        tips.append(arm.read().tip_m.copy())
    return np.array(tips)


def test_simulated_arm_is_a_robot_interface() -> None:
    assert isinstance(SimulatedArm(), RobotInterface)
    assert not isinstance(object(), RobotInterface)


def test_the_arms_force_limits_are_known_before_it_connects() -> None:
    arm = SimulatedArm(SimArmConfig(env_options={"hard_N": 5.0}, preload=("Reach",)))
    assert arm.limits.hard_N == 5.0  # the server announces them before the first scene is built
    arm.connect()
    try:
        assert arm.env is not None and arm.env.config.limits == arm.limits
    finally:
        arm.disconnect()


@pytest.mark.parametrize(
    "call",
    [
        lambda a: a.read(),
        lambda a: a.command(np.zeros(3), 0.0),
        lambda a: a.hold(),
        lambda a: a.update(DT),
        lambda a: a.camera(),
        lambda a: a.task_snapshot(),
    ],
)
def test_using_the_arm_before_connect_is_a_runtime_error(call) -> None:
    with pytest.raises(RuntimeError, match=r"not connected \(call connect\(\)\)"):
        call(SimulatedArm(SimArmConfig(preload=())))


def test_disconnect_makes_the_arm_unusable_until_connected_again() -> None:
    a = SimulatedArm(SimArmConfig(preload=()))
    a.connect()
    a.read()
    a.disconnect()
    with pytest.raises(RuntimeError):
        a.read()
    a.connect()
    assert isinstance(a.read(), RobotReading)
    a.disconnect()


def test_read_reports_a_consistent_state(fresh: SimulatedArm) -> None:
    r = fresh.read()
    assert len(r.joint_pos) == 6 and all(math.isfinite(q) for q in r.joint_pos)
    assert r.tip_m.shape == (3,)
    assert np.linalg.norm(r.tip_quat_xyzw) == pytest.approx(1.0, abs=1e-9)
    assert 0.0 <= r.jaw <= 1.0
    np.testing.assert_array_equal(r.force_N, np.zeros(3))  # at home, nothing touches the tool
    # The tip starts where the env's observation says, in the base frame.
    np.testing.assert_allclose(r.tip_m, fresh.task_snapshot().observation[:3], atol=1e-6)


@pytest.mark.parametrize("offset", [(0.01, 0.01, -0.01), (-0.015, 0.0, -0.02), (0.0, -0.02, 0.005)])
def test_commanded_target_is_reached_within_1_mm_in_1_s(fresh: SimulatedArm, offset) -> None:
    start = fresh.read().tip_m.copy()
    target = start + np.asarray(offset)
    low, high = fresh.workspace_m()
    assert np.all(target > low) and np.all(target < high)
    fresh.command(target, 0.0)
    tips = run(fresh, 1.0)
    assert np.linalg.norm(tips[-1] - target) < 1e-3
    assert np.linalg.norm(tips[0] - target) > 2e-3  # it servoed there over time, it did not jump


def test_jaw_follows_the_command(fresh: SimulatedArm) -> None:
    fresh.command(fresh.read().tip_m, 1.0)
    run(fresh, 1.0)
    assert fresh.read().jaw > 0.9
    fresh.command(fresh.read().tip_m, 0.0)
    run(fresh, 1.0)
    assert fresh.read().jaw < 0.1


def test_hold_stops_at_the_current_position_instead_of_the_last_command(fresh: SimulatedArm) -> None:
    run(fresh, 0.1)  # at rest
    here = fresh.read().tip_m.copy()
    fresh.command(here + np.array([0.01, 0.0, -0.01]), 0.0)
    fresh.hold()
    tips = run(fresh, 0.5)
    assert np.max(np.linalg.norm(tips - here, axis=1)) < 2e-4


def test_hold_while_moving_at_the_supervisor_speed_stops_within_0_2_mm(fresh: SimulatedArm) -> None:
    # Setpoints ramping at 0.1 m/s (the supervisor's default speed limit), as the server sends them.
    start = fresh.read().tip_m.copy()
    direction = np.array([1.0, 1.0, -1.0]) / math.sqrt(3.0)
    for i in range(100):
        fresh.command(start + direction * 0.1 * DT * (i + 1), 0.0)
        fresh.update(DT)
    moved = fresh.read().tip_m.copy()
    assert np.linalg.norm(moved - start) > 0.015  # it really was moving
    fresh.hold()
    tips = run(fresh, 0.5)
    assert np.max(np.linalg.norm(tips - moved, axis=1)) < 2e-4


@pytest.mark.parametrize("period_s", [0.003, 0.001, 0.0, -0.002, 0.0025])
def test_update_period_must_be_a_whole_number_of_physics_steps(fresh: SimulatedArm, period_s: float) -> None:
    before = fresh.sim_time_s
    with pytest.raises(ValueError, match="must be a whole multiple of the physics step"):
        fresh.update(period_s)
    assert fresh.sim_time_s == before


def test_update_by_several_physics_steps_advances_the_clock(fresh: SimulatedArm) -> None:
    fresh.update(2 * fresh.physics_step_s)
    fresh.update(fresh.physics_step_s)
    assert fresh.sim_time_s == pytest.approx(3 * fresh.physics_step_s)


def test_task_snapshot_follows_the_episode_and_reports_success(fresh: SimulatedArm) -> None:
    snap = fresh.task_snapshot()
    assert (snap.name, snap.seed, snap.episode_s, snap.success) == ("Reach", 0, 0.0, False)
    fresh.command(np.asarray(snap.desired_goal), 0.0)
    run(fresh, 1.0)
    snap = fresh.task_snapshot()
    assert snap.episode_s == pytest.approx(1.0)
    assert snap.success
    np.testing.assert_allclose(snap.achieved_goal, fresh.read().tip_m, atol=1e-3)


def test_load_task_switches_the_task_and_restarts_the_episode(fresh: SimulatedArm) -> None:
    home = fresh.read().tip_m.copy()
    fresh.command(home + np.array([0.01, 0.0, -0.01]), 0.0)
    run(fresh, 0.3)
    assert fresh.task_snapshot().episode_s > 0.25
    reach_obs = len(fresh.task_snapshot().observation)

    fresh.load_task("Palpate", 5)
    snap = fresh.task_snapshot()
    assert (snap.name, snap.seed, snap.episode_s) == ("Palpate", 5, 0.0)
    assert fresh.sim_time_s == 0.0
    assert len(snap.observation) != reach_obs  # Palpate's own observation layout
    np.testing.assert_allclose(fresh.read().tip_m, home, atol=1e-6)  # the arm went home
    run(fresh, 0.1)
    assert fresh.task_snapshot().episode_s == pytest.approx(0.1)

    with pytest.raises(ValueError, match="unknown task 'Knit'"):
        fresh.load_task("Knit", 0)
    assert fresh.task_snapshot().name == "Palpate"


def test_load_task_with_another_seed_samples_another_goal(fresh: SimulatedArm) -> None:
    goal0 = fresh.task_snapshot().desired_goal
    fresh.load_task("Reach", 1)
    assert fresh.task_snapshot().desired_goal != goal0
    fresh.load_task("Reach", 0)
    assert fresh.task_snapshot().desired_goal == goal0


def test_camera_is_a_unit_quaternion_looking_at_the_scene_with_consistent_intrinsics(fresh: SimulatedArm) -> None:
    cam = fresh.camera()
    q = np.asarray(cam.pose.quat_xyzw)
    assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-12)
    assert (cam.width, cam.height) == (800, 600)
    assert (cam.cx, cam.cy) == (400.0, 300.0)
    assert cam.fx == pytest.approx(cam.fy)
    assert fresh.env is not None
    spec = fresh.env.camera
    # The vertical field of view recovered from the intrinsics is the scene camera's.
    assert math.degrees(2 * math.atan(cam.height / 2 / cam.fy)) == pytest.approx(spec.fov_deg)
    assert 0 < cam.near_m < cam.far_m

    # The optical axis (+z of the quaternion) points from the eye at the scene's look-at point, and
    # image x is horizontal (the camera is not rolled).
    x, y, z, w = q
    z_axis = np.array([2 * (x * z + y * w), 2 * (y * z - x * w), 1 - 2 * (x * x + y * y)])
    x_axis = np.array([1 - 2 * (y * y + z * z), 2 * (x * y + z * w), 2 * (x * z - y * w)])
    offset = np.asarray(fresh.read().tip_m) - np.asarray(SceneConfig().home_tip_m)  # world → base translation
    eye = np.asarray(spec.eye_m) + offset
    look = np.asarray(spec.target_m) + offset
    np.testing.assert_allclose(cam.pose.pos_m, eye, atol=1e-9)
    np.testing.assert_allclose(z_axis, (look - eye) / np.linalg.norm(look - eye), atol=1e-9)
    assert abs(x_axis[2]) < 1e-9


def test_forbidden_regions_are_converted_to_the_base_frame(fresh: SimulatedArm) -> None:
    regions = fresh.forbidden_regions_m()
    assert len(regions) == 1
    low, high = regions[0]
    # The base frame is the world frame translated: the home tip (world) maps to the measured tip.
    offset = fresh.read().tip_m - np.asarray(SceneConfig().home_tip_m)
    assert np.linalg.norm(offset) > 0.05  # the frames really differ
    np.testing.assert_allclose(low, np.asarray(REGION_WORLD[0]) + offset, atol=1e-6)
    np.testing.assert_allclose(high, np.asarray(REGION_WORLD[1]) + offset, atol=1e-6)


def test_no_forbidden_regions_unless_configured() -> None:
    a = SimulatedArm(SimArmConfig(preload=()))
    a.connect()
    try:
        assert a.forbidden_regions_m() == []
    finally:
        a.disconnect()


def test_sim_arm_config_rejects_unknown_tasks() -> None:
    with pytest.raises(ValueError, match="unknown task 'Knit'"):
        SimArmConfig(task="Knit")
    with pytest.raises(ValueError, match="unknown task 'Sew'"):
        SimArmConfig(preload=("Reach", "Sew"))


def test_contact_force_and_its_peak_since_the_last_read(fresh: SimulatedArm) -> None:
    home = fresh.read().tip_m.copy()
    world_to_base = home - np.asarray(SceneConfig().home_tip_m)
    fresh.command(np.array([0.0, 0.0, -0.008]) + world_to_base, 0.0)  # 8 mm into the tissue (surface z=0)
    for _ in range(500):  # 1 s without reading: the impact transient must still show in the peak
        fresh.update(DT)
    pressed = fresh.read()
    assert pressed.force_N[2] > 1.0  # the tissue pushes the tool up
    assert np.linalg.norm(pressed.force_N[:2]) < 0.3 * pressed.force_N[2]
    assert pressed.force_peak_N > 1.5 * np.linalg.norm(pressed.force_N)
    # The peak covers only the time since the previous read: with nothing new, it is the force now.
    again = fresh.read()
    assert again.force_peak_N == pytest.approx(np.linalg.norm(again.force_N))

    fresh.command(home, 0.0)
    for _ in range(500):
        fresh.update(DT)
    lifted = fresh.read()
    np.testing.assert_array_equal(lifted.force_N, np.zeros(3))
    assert lifted.force_peak_N > 1.0  # still pressing when the lift began, since the last read
    assert fresh.read().force_peak_N == 0.0

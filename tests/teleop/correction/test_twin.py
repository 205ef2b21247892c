"""The local twin: its model alone, its ghost projected onto the camera image, and end to end over
an emulated 200 ms link (it shows where the tool is going; a scripted surgeon closing its loop on
it finishes sooner)."""

from __future__ import annotations

import numpy as np
import pytest

from telesurg.envs.kinematics import psm_kinematics
from telesurg.teleop.correction.twin import LocalTwin, TwinConfig
from telesurg.teleop.wire import protocol as p


def _telemetry(seq: int, robot_s: float, tip: np.ndarray, last_cmd: int, accepted_s: float) -> p.Telemetry:
    return p.Telemetry(
        arm="psm1",
        seq=seq,
        robot_s=robot_s,
        joint_pos=[0.0, 0.0, 0.1, 0.0, 0.0, 0.0],
        tool=p.Pose(tuple(float(v) for v in tip)),
        jaw=0.0,
        force_N=(0.0, 0.0, 0.0),
        force_mag_N=0.0,
        state="ENGAGED",
        reason="",
        last_cmd_seq=last_cmd,
        last_cmd_accepted_robot_s=accepted_s,
    )


def test_the_twin_runs_ahead_on_commands_in_flight_and_the_telemetry_corrects_it() -> None:
    twin = LocalTwin(TwinConfig(max_tip_speed_m_s=0.1, period_s=0.005))
    start = np.array([0.0, -0.3, -0.05])
    twin.observe(_telemetry(1, 10.0, start, 0, 0.0))
    assert np.allclose(twin.tip_m(), start)
    # Commands asking for a point 1 cm along x: at 0.1 m/s × 5 ms each, the twin moves 0.5 mm per
    # command, so 10 of them take it half way and it reaches the target after 20.
    goal = start + np.array([0.01, 0.0, 0.0])
    for seq in range(1, 11):
        twin.sent(seq, goal)
    assert np.allclose(twin.tip_m(), start + np.array([0.005, 0, 0]), atol=1e-9)  # speed-limited like the robot
    assert twin.pending() == 10
    for seq in range(11, 41):
        twin.sent(seq, goal)
    assert np.allclose(twin.tip_m(), goal)
    # Clutch open: holds.
    twin.sent(41, None)
    assert np.allclose(twin.tip_m(), goal)
    # The robot reports it applied up to 30 and measured the tip 4 mm short of the goal: the twin
    # continues from there through the commands still in flight (31..41: 10 moves, 5 mm of reach).
    measured = start + np.array([0.006, 0.001, 0.0])
    twin.observe(_telemetry(2, 10.2, measured, 30, 10.2))
    assert twin.pending() == 11
    expected = measured.copy()
    for _ in range(1 + 10):  # the rest of command 30's period, then 31..40 (41 has the clutch open)
        d = goal - expected
        n = np.linalg.norm(d)
        expected = goal if n <= 0.0005 else expected + d / n * 0.0005
    assert np.allclose(twin.tip_m(), expected, atol=1e-9)
    # Everything applied: the twin is the telemetry.
    twin.observe(_telemetry(3, 10.4, goal + np.array([0, 0.002, 0]), 41, 10.39))
    assert np.allclose(twin.tip_m(), goal + np.array([0, 0.002, 0]))
    assert twin.pending() == 0


def test_the_twins_skeleton_is_its_forward_kinematics() -> None:
    kin = psm_kinematics()
    twin = LocalTwin()
    tel = _telemetry(1, 1.0, np.zeros(3), 0, 0.0)
    q_true, ok = kin.inverse_position(np.array([0.01, -0.31, -0.06]), (0.2, 0.1, -0.1))
    assert ok
    tel.joint_pos = [float(v) for v in q_true]
    tel.tool = p.Pose(tuple(float(v) for v in kin.tip_position(q_true)))
    twin.observe(tel)
    skeleton = twin.skeleton_m()
    assert np.allclose(twin.joints(), q_true, atol=1e-9)
    assert np.allclose(skeleton[-1], kin.tip_position(q_true), atol=1e-9)
    assert np.allclose(skeleton[1], kin.rcm_in_base_m)
    # The shaft runs straight through the RCM, and the wrist and tip links have their URDF lengths.
    shaft = skeleton[2] - skeleton[0]
    assert np.linalg.norm(np.cross(shaft, skeleton[1] - skeleton[0])) < 1e-12
    assert np.linalg.norm(skeleton[4] - skeleton[3]) == pytest.approx(kin._tip_len)
    assert np.linalg.norm(skeleton[3] - skeleton[2]) == pytest.approx(kin._wrist_len)


def _camera(arm) -> p.Camera:
    return arm.camera()


def test_the_ghost_lands_on_the_tool_in_the_camera_image() -> None:
    """Project with the camera the telemetry carries onto pybullet's own render of the scene: the
    goal marker's centre lands on the green marker and the skeleton's tool links on the tool."""
    from telesurg.teleop.robot.arm import SimArmConfig, SimulatedArm
    from telesurg.teleop.video.overlay import draw_ghost, project

    arm = SimulatedArm(SimArmConfig(task="Reach", seed=0, preload=("Reach",)))
    arm.connect()
    try:
        arm.command(arm.read().tip_m + np.array([0.02, 0.01, -0.03]), 0.0)  # jaws closed: the tip is on metal
        for _ in range(600):
            arm.update(0.002)
        env = arm.env
        assert env is not None
        w, h = 320, 240
        image = env.sim.render(env.camera, w, h).astype(int)
        camera = _camera(arm)  # intrinsics for 640 × 480: projected at 320 × 240, as the video may be
        green = (image[..., 1] > image[..., 0] + 40) & (image[..., 1] > image[..., 2] + 40)
        ys, xs = np.nonzero(green)
        goal_px, front = project(env.task.goal_m[None, :], camera, w, h)
        assert front.all()
        assert np.linalg.norm(goal_px[0] - [xs.mean(), ys.mean()]) < 2.5

        q = np.asarray(arm.read().joint_pos[:6])
        skeleton = psm_kinematics().skeleton(q)
        # The tool is grey metal with a dark wrist; the tissue behind it is pink.
        tool = (np.ptp(image, axis=2) < 25) | (image.max(axis=2) < 60)
        # Sample the shaft below the RCM and the wrist/tip links; nearly all should be on tool pixels
        # (within 2 px, the links are a few pixels wide at this size).
        pts = np.concatenate([np.linspace(skeleton[i], skeleton[i + 1], 12) for i in (2, 3)])
        shaft_in_view = np.linspace(skeleton[1], skeleton[2], 40)
        px, front = project(np.concatenate([pts, shaft_in_view]), camera, w, h)
        assert front.all()
        on_tool = []
        for u, v in px:
            iu, iv = (int(c) for c in np.rint([u, v]))
            if 2 <= iu < w - 2 and 2 <= iv < h - 2:
                on_tool.append(tool[iv - 2 : iv + 3, iu - 2 : iu + 3].any())
        assert len(on_tool) >= 30, "the tool is out of view"
        assert np.mean(on_tool) > 0.9, f"only {np.mean(on_tool):.0%} of the projected skeleton is on the tool"

        # draw_ghost paints exactly around the projection (in place).
        canvas = np.zeros((h, w, 3), np.uint8)
        draw_ghost(canvas, skeleton, camera)
        tip_px, _ = project(skeleton[-1:], camera, w, h)
        u, v = (int(c) for c in np.rint(tip_px[0]))
        assert canvas[v - 6 : v + 7, u - 6 : u + 7].any()
        assert canvas.any(axis=2).mean() < 0.05
    finally:
        arm.disconnect()


# ---------------------------------------------------------------------- end to end (slow)
@pytest.mark.slow
def test_over_a_200_ms_link_the_twin_shows_where_the_tool_is_going(robot) -> None:
    """Replay min-jerk strokes over 200 ms each way with the twin on: at each moment the twin is
    much closer to where the robot's tool will be once the commands in flight arrive (200 ms later)
    than the telemetry is (showing where it was 200 ms ago)."""
    from telesurg.teleop.console.config import ConsoleConfig
    from telesurg.teleop.console.core import Console
    from telesurg.teleop.console.scripted import TraceReplay
    from telesurg.teleop.correction.config import CorrectionConfig
    from telesurg.teleop.harness.evaluation import hand_trace
    from telesurg.teleop.robot.reader import read_topic
    from telesurg.teleop.robot.records import TOPIC_STATE

    r = robot(realtime=True, arm__preload=["Reach"])
    trace, _, _ = hand_trace(0)
    log: list[tuple[float, np.ndarray, np.ndarray]] = []

    class Logged(TraceReplay):
        def read(self, now_s, telemetry, mapping):
            if telemetry is not None and console.twin is not None and console.twin.ready and mapping.clutched:
                log.append((now_s, console.twin.tip_m().copy(), np.asarray(telemetry.tool.pos_m)))
            return super().read(now_s, telemetry, mapping)

    config = ConsoleConfig(
        endpoints=r.endpoints,
        input="trace",
        trace="replay.csv",
        tasks=("Reach",),
        request_timeout_s=4.0,
        link_timeout_s=1.5,
        link="delay=200ms jitter=10% seed=0",
        correction=CorrectionConfig(twin_enabled=True),
    )
    console = Console(config, device=Logged(trace, hold_end_s=0.5))
    console.run()
    assert console.twin is not None
    r.stop()
    states = read_topic(r.record, TOPIC_STATE)
    robot_t = np.array([s["robot_s"] for s in states])
    robot_tip = np.array([s["tip_m"] for s in states])
    t = np.array([x[0] for x in log])
    keep = (t > t[0] + 1.0) & (t + 0.2 < robot_t[-1])
    future = np.stack([np.interp(t[keep] + 0.2, robot_t, robot_tip[:, k]) for k in range(3)], axis=1)
    twin_err = np.linalg.norm(np.array([x[1] for x in log])[keep] - future, axis=1)
    tel_err = np.linalg.norm(np.array([x[2] for x in log])[keep] - future, axis=1)
    assert keep.sum() > 1000
    rms_twin, rms_tel = (float(np.sqrt(np.mean(e**2))) * 1e3 for e in (twin_err, tel_err))
    assert rms_tel > 2.0, rms_tel  # the strokes move the tool millimetres in 400 ms
    assert rms_twin < 0.35 * rms_tel, (rms_twin, rms_tel)


@pytest.mark.slow
def test_a_scripted_surgeon_closing_its_loop_on_the_twin_finishes_sooner(robot) -> None:
    """Reach over 200 ms each way: on the delayed telemetry the scripted surgeon moves and waits;
    on the twin it does not have to, and reaches the goal sooner, with no hard-limit violation."""
    from telesurg.teleop.harness.evaluation import METHODS, SCENARIOS, run_one, score
    from telesurg.teleop.robot.reader import read_topic
    from telesurg.teleop.robot.records import TOPIC_CONFIG, TOPIC_STATE

    r = robot(realtime=True, arm__preload=["Reach"])
    runs = {
        (method, seed): run_one(r.endpoints, 0.2, METHODS[method], seed, SCENARIOS["scripted/Reach"])
        for seed in (0, 1)
        for method in ("none", "twin loop")
    }
    r.stop()
    states = read_topic(r.record, TOPIC_STATE)
    hard = read_topic(r.record, TOPIC_CONFIG)[-1]["hard_force_N"]
    for seed in (0, 1):
        delayed, twin = (score(runs[(m, seed)], states, hard) for m in ("none", "twin loop"))
        assert delayed["success"] and twin["success"], (delayed, twin)
        assert twin["time_s"] < 0.8 * delayed["time_s"], (seed, twin["time_s"], delayed["time_s"])
        assert twin["violations"] == delayed["violations"] == 0

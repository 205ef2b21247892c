"""The video path's parts alone: the shared-memory frame hand-off, the scene mirror, ICE address
and candidate restriction, the internal signalling messages, and the robot refusing offers when it
serves no video."""

from __future__ import annotations

import asyncio
import re

import numpy as np
import pytest

from telesurg.teleop.robot.arm import SimArmConfig, SimulatedArm
from telesurg.teleop.video.aiortc_patches import check_internals, use_ice_addresses
from telesurg.teleop.video.frames import SLOTS, FrameBuffer
from telesurg.teleop.video.renderer import RendererConfig, SceneMirror
from telesurg.teleop.video.webrtc import keep_candidates
from telesurg.teleop.wire import protocol as p
from telesurg.teleop.wire import signalling


def test_frame_buffer_hands_over_the_newest_image_and_detects_a_torn_read() -> None:
    fb = FrameBuffer(32, 16, create=True)
    reader = FrameBuffer(32, 16, name=fb.name)
    try:
        images = [np.full((16, 32, 3), i, np.uint8) for i in range(SLOTS + 1)]
        for i, image in enumerate(images):
            fb.write(i % SLOTS, image)
        got = reader.read(SLOTS % SLOTS)
        assert got is not None and (got == images[SLOTS]).all()  # the slot holds the newest write
        # A writer in the middle of a slot (odd sequence) makes the read fail instead of tearing.
        seq = fb._header(1)
        fb._set_header(1, seq + 1)
        assert reader.read(1) is None
        fb._set_header(1, seq + 2)
        assert reader.read(1) is not None
        with pytest.raises(ValueError, match="shape"):
            fb.write(0, np.zeros((8, 8, 3), np.uint8))
    finally:
        reader.close()
        fb.close()


def test_scene_mirror_poses_the_arm_and_objects_from_telemetry() -> None:
    arm = SimulatedArm(SimArmConfig(task="Reach", seed=3, preload=("Reach",)))
    arm.connect()
    mirror = SceneMirror(RendererConfig(backend="tiny", width=64, height=48))
    try:
        arm.command(arm.read().tip_m + np.array([0.02, -0.01, -0.01]), 0.5)
        for _ in range(400):
            arm.update(0.002)
        reading = arm.read()
        objects = arm.objects()
        tel = p.Telemetry(
            arm="psm1",
            seq=1,
            robot_s=0.0,
            joint_pos=reading.joint_pos,
            tool=p.Pose(tuple(reading.tip_m), reading.tip_quat_xyzw),
            jaw=reading.jaw,
            force_N=(0.0, 0.0, 0.0),
            force_mag_N=0.0,
            state="ENGAGED",
            reason="",
            objects={k: p.Pose(pos, quat) for k, (pos, quat) in objects.items()},
            task=p.TaskState(
                name="Reach", seed=3, observation=[], achieved_goal=[], desired_goal=[], success=False, episode_s=0
            ),
        )
        mirror.apply(tel)
        env = mirror.env
        assert env is not None
        np.testing.assert_allclose(env.arm.read().tip_position_m, reading.tip_m, atol=1e-6)
        for name, (pos, _) in objects.items():
            np.testing.assert_allclose(env.arm.world_to_base(env.sim.base_pose(name)[0]), pos, atol=1e-6)
        assert mirror.render(64, 48).shape == (48, 64, 3)
    finally:
        mirror.close()
        arm.disconnect()


def test_ice_uses_only_the_configured_addresses() -> None:
    import aioice.ice

    original = aioice.ice.get_host_addresses
    try:
        use_ice_addresses(["127.0.0.1"])
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]
        with pytest.raises(ValueError):
            use_ice_addresses(["not-an-address"])
    finally:
        aioice.ice.get_host_addresses = original


def test_remote_candidates_outside_the_allowed_addresses_are_dropped() -> None:
    sdp = "\r\n".join(
        [
            "v=0",
            "a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
            "a=candidate:2 1 udp 2122194687 192.0.2.2 50001 typ host",
            "a=candidate:3 1 udp 2122129151 0b6d5a4e-1111.local 50002 typ host",
            "a=candidate:4 1 udp 1686052607 203.0.113.9 50003 typ srflx raddr 0.0.0.0 rport 0",
            "a=end-of-candidates",
        ]
    )
    kept = keep_candidates(sdp, ["127.0.0.1"])
    assert "127.0.0.1 50000" in kept
    assert "192.0.2.2" not in kept and ".local" not in kept and "203.0.113.9" not in kept
    assert "a=end-of-candidates" in kept and kept.startswith("v=0")


def test_signalling_messages_round_trip_and_reject_garbage() -> None:
    req = signalling.SignalRequest(7, "console", "v=0")
    assert signalling.decode_request(signalling.encode(req)) == req
    reply = signalling.SignalReply(7, False, reason="bad")
    assert signalling.decode_reply(signalling.encode(reply)) == reply
    with pytest.raises(ValueError):
        signalling.decode_request(b"\x93garbage")
    with pytest.raises(ValueError, match="too large"):
        signalling.decode_request(b"x" * 40_000)


def test_a_robot_without_video_refuses_offers_with_a_reason(robot, client) -> None:
    r = robot(record=False)
    c = client(r.endpoints)
    c.connect()
    ack = c.link.request(p.Offer(sdp="v=0\r\n"))
    assert isinstance(ack, p.Ack) and not ack.ok and ack.reason.startswith("no_video")


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    assert len(xs) > 10, "nothing of that colour in the image"
    return np.array([xs.mean(), ys.mean()])


def test_lean_gl_renderer_draws_the_scene_where_pybullet_does() -> None:
    from telesurg.teleop.video.glrender import GLSceneRenderer

    arm = SimulatedArm(SimArmConfig(task="Reach", seed=0, preload=("Reach",)))
    arm.connect()
    try:
        arm.command(arm.read().tip_m + np.array([0.02, 0.01, -0.03]), 0.5)
        for _ in range(600):
            arm.update(0.002)
        env = arm.env
        assert env is not None
        gl = GLSceneRenderer(env.sim, env.camera, 320, 240)
        try:
            ours = gl.render().astype(int)
        finally:
            gl.close()
        theirs = env.sim.render(env.camera, 320, 240).astype(int)
        for image in (ours, theirs):
            assert image.shape == (240, 320, 3)

        # The green goal marker and the grey tool land on the same pixels (within a few) in both.
        def green(im: np.ndarray) -> np.ndarray:
            return (im[..., 1] > im[..., 0] + 40) & (im[..., 1] > im[..., 2] + 40)

        def grey(im: np.ndarray) -> np.ndarray:  # metal: not pybullet's white beyond the tissue's far edge
            return (np.ptp(im, axis=2) < 25) & (im.mean(axis=2) > 60) & (im.min(axis=2) < 250)

        assert np.linalg.norm(_centroid(green(ours)) - _centroid(green(theirs))) < 3.0
        assert np.linalg.norm(_centroid(grey(ours)) - _centroid(grey(theirs))) < 8.0
    finally:
        arm.disconnect()


@pytest.mark.parametrize("show", [None, True, False])
def test_the_opencv_window_is_retired_show_true_says_where_the_video_is(
    show: bool | None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from telesurg.teleop.video.client import WINDOW_RETIRED, VideoClient, VideoClientConfig

    monkeypatch.setenv("DISPLAY", ":42")  # a desktop: the console opens no window and says nothing
    if show:
        with pytest.raises(ValueError, match="^" + re.escape(WINDOW_RETIRED) + "$"):
            VideoClientConfig(enabled=True, show=show)
        return
    client = VideoClient(VideoClientConfig(enabled=True, show=show))
    client.close()
    assert capsys.readouterr().err == ""


def test_every_aiortc_internal_the_video_path_patches_is_there() -> None:
    # An aiortc or aioice upgrade that moves one fails here, by name, not as a silent stall; the
    # check runs whether or not the calling thread has an event loop (an earlier asyncio.run
    # leaves none), and leaves it as it was.
    asyncio.set_event_loop(None)
    assert check_internals() == []
    with pytest.raises(RuntimeError):
        asyncio.get_event_loop_policy().get_event_loop()


def test_a_still_scene_is_not_drawn_again_but_any_motion_is() -> None:
    """The renderer reuses its last image when the telemetry poses the scene as it drew it
    (``pose_key``): a newer message of a still arm; a moved joint, jaw, object or another task is drawn."""
    from msgspec.structs import replace

    from telesurg.teleop.video.renderer import pose_key

    tel = p.Telemetry(
        arm="psm1",
        seq=1,
        robot_s=1.0,
        joint_pos=[0.1, -0.2, 0.05, 0.0, 0.0, 0.0],
        tool=p.Pose((0.0, 0.0, 0.05), (0.0, 0.0, 0.0, 1.0)),
        jaw=0.0,
        force_N=(0.0, 0.0, 0.0),
        force_mag_N=0.0,
        state="ENGAGED",
        reason="",
        objects={"reach_target": p.Pose((0.01, 0.02, 0.03), (0.0, 0.0, 0.0, 1.0))},
        task=p.TaskState(
            name="Reach", seed=3, observation=[], achieved_goal=[], desired_goal=[], success=False, episode_s=0
        ),
    )
    later = replace(tel, seq=2, robot_s=1.004, force_mag_N=0.5, state="HOLD")
    assert pose_key(later) == pose_key(tel)
    moved = [
        replace(tel, joint_pos=[0.1, -0.2, 0.0501, 0.0, 0.0, 0.0]),
        replace(tel, jaw=0.3),
        replace(tel, objects={"reach_target": p.Pose((0.011, 0.02, 0.03), (0.0, 0.0, 0.0, 1.0))}),
        replace(tel, task=replace(tel.task, seed=4)),
    ]
    assert all(pose_key(m) != pose_key(tel) for m in moved)


def test_a_lost_packet_is_waited_for_a_bounded_time_then_a_keyframe_is_asked() -> None:
    """A packet whose retransmission never comes no longer holds every later frame in the jitter
    buffer until 512 packets pile up (seconds of video): after ``max_wait_s`` the partial frames
    are dropped and a keyframe requested; a retransmission in time is simply used."""
    from aiortc import RTCRtpReceiver
    from aiortc.rtp import RtpPacket

    from telesurg.teleop.video.aiortc_patches import bound_nacks

    class _Transport:
        state = "new"

        def _register_rtp_receiver(self, *_: object) -> None: ...

    async def scenario(retransmit_at: int | None) -> tuple[int, int]:
        receiver = RTCRtpReceiver("video", _Transport())  # type: ignore[arg-type]
        plis: list[int] = []

        async def _pli(ssrc: int) -> None:
            plis.append(ssrc)

        receiver._send_rtcp_pli = _pli  # type: ignore[method-assign]
        now = [0.0]
        bound_nacks(receiver, max_gap_packets=40, max_wait_s=0.5, clock=lambda: now[0])
        nacks = receiver._RTCRtpReceiver__nack_generator  # type: ignore[attr-defined]
        jitter = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]

        def send(seq: int) -> None:
            packet = RtpPacket(payload_type=96, sequence_number=seq, timestamp=3000 * (seq // 3), ssrc=7)
            packet._data = b"x"  # the depayloaded bytes (the receiver sets them)
            nacks.add(packet)
            jitter.add(packet)

        for seq in range(200):  # 5 ms apart; packet 30 is lost
            now[0] = seq * 0.005
            if seq != 30:
                send(seq)
            if retransmit_at is not None and seq == retransmit_at:
                send(30)
        await asyncio.sleep(0)
        return len(plis), nacks.given_up

    # Given up ~0.5 s after the gap was seen (at packet 31): one keyframe request.
    assert asyncio.run(scenario(None)) == (1, 1)
    # The retransmission arrives 0.3 s later: nothing given up.
    assert asyncio.run(scenario(90)) == (0, 0)

"""The robot's telemetry, as part of ``RobotServer``: one ``Telemetry`` per published period, on
the telemetry socket and the loopback state feed (the renderer's)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import zmq

from telesurg.teleop.robot.records import vec3
from telesurg.teleop.wire import protocol as p

log = logging.getLogger("telesurg.robot")


class TelemetryFeed:
    """Owns ``_telemetry_seq``, ``_camera``, ``_state_pub``; reads the arm, the supervisor, the
    sessions' clock sync and the counters."""

    def _publish(self, now: float, reading: Any, f: np.ndarray, fmag: float) -> None:
        sup = self.supervisor
        assert sup is not None and self.sockets is not None
        self._telemetry_seq += 1
        sync = self._owner_sync()
        rtt = 0.0
        owner = self._clients.get(self._session_owner) if self._session_owner else None
        if owner is not None and owner.clock.ready:
            rtt = owner.clock.best().rtt_s
        msg = p.Telemetry(
            arm=self.arm_id,
            seq=self._telemetry_seq,
            robot_s=now,
            joint_pos=reading.joint_pos,
            tool=p.Pose(vec3(reading.tip_m), reading.tip_quat_xyzw),
            jaw=min(max(reading.jaw, 0.0), 1.0),
            force_N=vec3(f),
            force_mag_N=fmag,
            state=str(sup.state),  # type: ignore[arg-type]
            reason=sup.reason[:200],
            last_cmd_seq=sup.applied_seq,
            last_cmd_sent_console_s=sup.applied_sent_console_s,
            last_cmd_accepted_robot_s=sup.applied_robot_s,
            clock_offset_s=sync.offset_s if sync else 0.0,
            clock_rtt_s=rtt,
            objects={name: p.Pose(pos, quat) for name, (pos, quat) in self.robot.objects().items()},  # type: ignore[arg-type]
            camera=self._camera,
            counters=dict(self.counters),
            task=self.robot.task_snapshot(),
        )
        data = p.encode(msg)
        try:
            self.sockets.telemetry.send(data, zmq.NOBLOCK)
        except zmq.Again:
            self.counters["telemetry.dropped"] += 1
        if self._state_pub is not None:
            try:
                self._state_pub.send(data, zmq.NOBLOCK)
            except zmq.Again:
                self.counters["state_feed.dropped"] += 1

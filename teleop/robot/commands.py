"""Command intake, as part of ``RobotServer``: the cmd socket drained (CONFLATE: the newest per
connection), the session owner's newest command decoded and judged by the supervisor, every
other message refused and counted, e-stop requests latched whatever else is wrong."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import zmq

from telesurg.teleop.robot.records import (
    TOPIC_APPLIED,
    TOPIC_COMMANDS,
    CommandRecord,
)
from telesurg.teleop.wire import protocol as p
from telesurg.teleop.wire.channels import frame_property
from telesurg.teleop.wire.clock import ClockSync

log = logging.getLogger("telesurg.robot")

#: One drain of the cmd socket reads for at most this long (s) and this many messages: enough to
#: reach every connection of a 200-connection flood each period (~1.5 µs a message), bounded so a
#: flood cannot take the period (checked every 16 messages).
COMMAND_DRAIN_BUDGET_S = 0.0006
COMMAND_DRAIN_MAX = 1024


class CommandIntake:
    """Reads the sockets, the supervisor and the sessions; records ``/robot/commands`` and ``/robot/applied``."""

    def _take_command(self, now: float) -> None:
        """Drain the cmd socket and judge what matters: the owner's newest command every time,
        whatever else is pending (issue 15: ``CONFLATE`` keeps one message per connection and ZeroMQ
        reads connections in turn, so reading one message per turn gave the owner 1/(N+1) of them).

        Every pending message is read (within ``COMMAND_DRAIN_BUDGET_S`` and ``COMMAND_DRAIN_MAX``)
        and peeked at (``protocol.peek_command``): an e-stop request is judged at once; of the rest
        the newest (highest ``seq``) per session is kept. The supervisor's session's newest is then
        judged, and one other message (a session's newest, or one whose session cannot be read, which
        the full decode refuses by reason); the rest are counted (``cmd.superseded``: an older command
        of a kept session, ``cmd.superseded_own`` when the owner's; ``cmd.unjudged``: another
        session's, dropped unread like a conflated one)."""
        assert self.sockets is not None and self.supervisor is not None
        sock = self.sockets.cmd
        curve = self.sockets.auth is not None  # the sender's key is a property of the received frame
        own = self.supervisor.session
        newest: dict[str, tuple[int, list[Any]]] = {}
        unreadable: list[list[Any]] = []
        end = now + COMMAND_DRAIN_BUDGET_S
        for n in range(COMMAND_DRAIN_MAX):
            if n % 16 == 15 and self.clock() > end:
                break
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK, copy=not curve)
            except zmq.Again:
                break
            data = parts[-1] if not curve else parts[-1].bytes
            peek = p.peek_command(data) if len(parts) == 1 else p.CommandPeek(None, None, None)
            if peek.estop is not None:
                self._judge_command(parts, self.clock())
                continue
            if peek.session is None or peek.seq is None:
                unreadable.append(parts)
                continue
            if curve and own and peek.session == own and self._foreign(parts, len(data), now):
                continue
            kept = newest.get(peek.session)
            if kept is not None:
                self.counters["cmd.superseded_own" if own and peek.session == own else "cmd.superseded"] += 1
                if kept[0] >= peek.seq:
                    continue
            newest[peek.session] = (peek.seq, parts)
        mine = newest.pop(own, None) if own else None
        if mine is not None:
            self._judge_command(mine[1], self.clock())
        others = [kept[1] for kept in newest.values()] + unreadable
        if others:
            self._judge_command(others[0], self.clock())
            if len(others) > 1:
                self.counters["cmd.unjudged"] += len(others) - 1

    def _foreign(self, parts: list[Any], size: int, now: float) -> bool:
        """Under CURVE: refuse (and count) a command carrying the owner's session id from another key."""
        owner_key = self._clients[self._session_owner].key if self._session_owner in self._clients else ""
        if owner_key and frame_property(parts[0], "User-Id") != owner_key:
            self._reject("cmd", "foreign_identity", "the session's id from another key", size, now)
            return True
        return False

    def _judge_command(self, parts: list[Any], now: float) -> None:
        """Decode one command in full and hand it to the supervisor (or refuse it, counted by reason)."""
        assert self.sockets is not None and self.supervisor is not None
        frames = [part if isinstance(part, bytes) else part.bytes for part in parts]
        if len(frames) != 1:  # CONFLATE delivers single frames; be strict anyway
            self._reject("cmd", "malformed", f"{len(frames)} frames", sum(len(f) for f in frames), now)
            for frame in frames:
                if self._odd_estop("cmd", None, frame, "malformed", now):
                    break
            return
        data = frames[0]
        try:
            cmd = p.decode(data, p.Command)
        except p.ProtocolError as exc:
            self._reject("cmd", exc.reason, exc.detail, len(data), now)
            self._odd_estop("cmd", None, data, exc.reason, now)
            return
        self.counters["cmd.received"] += 1
        if cmd.arm != self.arm_id:
            self._reject("cmd", "wrong_arm", f"command for arm {cmd.arm!r}, this is {self.arm_id!r}", len(data), now)
            self._odd_estop("cmd", None, data, "wrong_arm", now)
            return
        owner_key = self._clients[self._session_owner].key if self._session_owner in self._clients else ""
        if not cmd.estop and (owner_key or self.sockets.auth is not None):
            sender = frame_property(parts[0], "User-Id")
            if self._revoked(sender):
                self._reject("cmd", "revoked", "a command from a revoked key", len(data), now)
                return
            if owner_key and cmd.session == self.supervisor.session and sender != owner_key:
                # The owner's session id from another key: never its command.
                self._reject("cmd", "foreign_identity", "the session's id from another key", len(data), now)
                return
        sync = self._owner_sync() if self.supervisor.session == cmd.session else None
        clock = sync or ClockSync(0.0, 0.0)
        was = self.supervisor.state
        verdict = self.supervisor.on_command(
            cmd.session,
            cmd.seq,
            cmd.sent_console_s,
            np.asarray(cmd.target.pos_m, dtype=float),
            cmd.jaw,
            cmd.clutch,
            cmd.estop,
            now,
            clock,
        )
        self._latched(was)
        if verdict.accepted:
            self.counters["cmd.accepted"] += 1
            if self._session_owner in self._clients:
                self._clients[self._session_owner].last_seen_s = now
        else:
            self.counters[f"cmd.{verdict.code}"] += 1
        if self.recorder is not None:
            rec = CommandRecord(
                received_robot_s=now,
                session=cmd.session,
                seq=cmd.seq,
                sent_console_s=cmd.sent_console_s,
                target_m=cmd.target.pos_m,
                jaw=cmd.jaw,
                clutch=cmd.clutch,
                estop=cmd.estop,
                accepted=verdict.accepted,
                code=verdict.code,
                reason=verdict.reason,
                age_s=now - (cmd.sent_console_s + clock.offset_s),
                clock_offset_s=clock.offset_s,
                clock_uncertainty_s=clock.uncertainty_s,
            )
            self._record(TOPIC_COMMANDS, rec)
            if verdict.accepted:
                self._record(TOPIC_APPLIED, rec)
        self._flush_events()

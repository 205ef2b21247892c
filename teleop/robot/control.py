"""The control channel, as part of ``RobotServer``: requests read into the fair intake
(``telesurg.teleop.robot.intake``) within a budget, answered in turn (hello, clock ping, engage,
disengage, e-stop, reset, load task, video offer), every answer recorded."""

from __future__ import annotations

import logging
from typing import Any

import zmq

from telesurg.teleop.robot.records import (
    TOPIC_CONTROL,
    ControlRecord,
    vec3,
)
from telesurg.teleop.robot.sessions import Client
from telesurg.teleop.robot.supervisor import State
from telesurg.teleop.wire import protocol as p

log = logging.getLogger("telesurg.robot")

#: Control requests read per period at most, and for at most this long (s) each time (checked every
#: 16): a flood of connections is read in turn; what is read waits in the intake (``telesurg.teleop.robot.intake``).
CONTROL_READS_PER_PERIOD = 64
CONTROL_READ_BUDGET_S = 0.0003
#: The answer to a request shed from a full intake (``control.busy``).
BUSY_REPLY = p.encode(
    p.Ack(request="?", ok=False, reason="busy: the robot is answering other connections first; ask again later")
)


class ControlChannel:
    """Owns ``_intake`` and ``_control_reads_left``; reads and changes the sessions and the supervisor."""

    def _serve_control(self, now: float, limit: int | None = None) -> int:
        """Read waiting requests into the intake (``telesurg.teleop.robot.intake``: e-stops latched as read, at most
        ``CONTROL_READS_PER_PERIOD`` a period within ``CONTROL_READ_BUDGET_S``), then answer up to
        ``limit`` (default: the per-period budget), the owner's first; returns how many."""
        assert self.sockets is not None
        if self._signal is not None:
            self._relay_answers(now)
        self._read_control(now)
        taken = self._intake.take(
            self.config.max_control_per_period if limit is None else limit, now, self._session_owner
        )
        for ident, parts in taken:
            self._serve_request(ident, parts, self.clock())
        return len(taken)

    def _read_control(self, now: float) -> None:
        assert self.sockets is not None
        sock = self.sockets.control
        end = now + CONTROL_READ_BUDGET_S
        while self._control_reads_left > 0:
            if self._control_reads_left % 16 == 0 and self.clock() > end:
                break
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._control_reads_left -= 1
            ident = parts[0].bytes
            if any(len(part) > p.MAX_MESSAGE_BYTES for part in parts[1:]):
                self._intake.rates.add(ident, now)
                self._too_large(ident, parts, self.clock())
                continue
            if len(parts) == 2 and p.estop_request(parts[1].bytes) is not None:  # latched at once
                self._intake.rates.add(ident, now)
                self._serve_request(ident, parts, self.clock())
                continue
            for shed_ident, _ in self._intake.arrived(ident, parts, now, self._session_owner):
                self.counters["control.busy"] += 1
                self._reply_bytes(shed_ident, BUSY_REPLY)

    def _too_large(self, ident: bytes, parts: list[Any], now: float) -> None:
        """A request with a frame above ``MAX_MESSAGE_BYTES`` (up to ``channels.MAX_FRAME_BYTES``,
        beyond which ZeroMQ closes the connection): answered ``too_large`` and counted, never copied
        (an e-stop in it still latches)."""
        self._see(ident, parts[-1], now)
        size = sum(len(part) for part in parts[1:])
        if any(self._odd_estop("control", ident, part.buffer, "too large", now) for part in parts[1:]):
            return
        detail = f"{size} bytes > {p.MAX_MESSAGE_BYTES}"
        self._reject("control", "too_large", detail, size, now)
        self._reply(ident, p.Ack(request="?", ok=False, reason=f"too_large: {detail}"))

    def _serve_request(self, ident: bytes, parts: list[Any], now: float) -> None:
        """Answer one control request (``parts``: routing id, then the request's frames)."""
        body = [part.bytes for part in parts[1:]]
        self._see(ident, parts[-1], now)
        if len(body) != 1:
            self._reject("control", "malformed", f"{len(body)} frames", sum(len(b) for b in body), now)
            if not any(self._odd_estop("control", ident, b, "malformed: one frame per request", now) for b in body):
                self._reply(ident, p.Ack(request="?", ok=False, reason="malformed: one frame per request"))
            return
        if self._revoked(self._clients[ident].key):  # only its e-stop still counts
            if not self._odd_estop("control", ident, body[0], "revoked key", now):
                self._reject("control", "revoked", "a request from a revoked key", len(body[0]), now)
                self._reply(ident, p.Ack(request="?", ok=False, reason="revoked: this key is no longer authorised"))
            return
        try:
            req = p.decode(body[0], p.Request)
        except p.ProtocolError as exc:
            self._reject("control", exc.reason, exc.detail, len(body[0]), now)
            if not self._odd_estop("control", ident, body[0], exc.reason, now):
                self._reply(ident, p.Ack(request="?", ok=False, reason=f"{exc.reason}: {exc.detail}"[:500]))
            return
        self._handle(ident, req, self.clock())

    def _odd_estop(self, channel: str, ident: bytes | None, data: bytes | memoryview, oddity: str, now: float) -> bool:
        """Latch the e-stop that a message rejected for ``oddity`` still asks for (an e-stop request
        latches whatever else is wrong with it; ``protocol.estop_request``); False when it asks for none.
        Counted as ``{channel}.estop_odd``; a control request is answered as a pressed e-stop."""
        reason = p.estop_request(data)
        if reason is None:
            return False
        self.counters[f"{channel}.estop_odd"] += 1
        client = self._client(ident, now) if ident is not None else None
        source = client.name if client is not None else "a command"
        self._latch_estop(f"{reason or 'no reason given'} (from {source}; odd request: {oddity})", now)
        if ident is not None and client is not None:
            self._answer(ident, now, client, "estop", True, f"latched (the request was odd: {oddity})")
        return True

    def _reply(self, ident: bytes, msg: p.Message) -> None:
        self._reply_bytes(ident, p.encode(msg))

    def _reply_bytes(self, ident: bytes, data: bytes) -> None:
        assert self.sockets is not None
        try:
            self.sockets.control.send_multipart([ident, data], zmq.NOBLOCK)
        except zmq.Again:
            self.counters["control.reply_dropped"] += 1

    def _handle(self, ident: bytes, req: Any, now: float) -> None:
        sup = self.supervisor
        assert sup is not None
        client = self._client(ident, now)
        kind = p.type_name(req)
        if isinstance(req, p.Ping):
            t2 = now
            if req.prev_t1_console_s is not None and req.prev_t4_console_s is not None:
                prev = client.pongs.pop(req.prev_t1_console_s, None)
                if prev is not None:
                    try:
                        client.clock.add(req.prev_t1_console_s, prev[0], prev[1], req.prev_t4_console_s)
                    except ValueError as exc:
                        self.counters["control.bad_clock_sample"] += 1
                        log.warning("ignored clock sample from %s: %s", client.name, exc)
            t3 = self.clock()
            if len(client.pongs) > 32:
                client.pongs.pop(next(iter(client.pongs)))
            client.pongs[req.t1_console_s] = (t2, t3)
            self._reply(ident, p.Pong(t1_console_s=req.t1_console_s, t2_robot_s=t2, t3_robot_s=t3))
            return
        if isinstance(req, p.Hello):
            client.name = req.client
            if req.protocol != p.PROTOCOL_VERSION:
                self._answer(ident, now, client, "hello", False, f"protocol {req.protocol} not supported")
                return
            client.hello = True
            self._reply(
                ident,
                p.Welcome(
                    protocol=p.PROTOCOL_VERSION,
                    arms=[self.arm_id],
                    task=self.robot.task_name,
                    recording=str(self.record_path) if self.record_path else "",
                    forbidden_m=[(vec3(b.low_m), vec3(b.high_m)) for b in sup.config.forbidden],
                    guidance=self._guidance(),
                    workspace_m=(vec3(sup.config.workspace_low_m), vec3(sup.config.workspace_high_m)),
                    force_limits_N=(sup.config.limits.warn_N, sup.config.limits.hard_N),
                ),
            )
            self._record(TOPIC_CONTROL, ControlRecord(now, client.name, "hello", True, ""))
            return
        if isinstance(req, p.EStop):  # honoured from anyone, hello or not
            self._latch_estop(f"{p.printable(req.reason)} (from {client.name})", now)
            self._answer(ident, now, client, "estop", True, "")
            return
        if not client.hello:
            self._answer(ident, now, client, kind, False, "say hello first")
            return
        if isinstance(req, p.Engage):
            if req.arm != self.arm_id:
                self._answer(
                    ident, now, client, "engage", False, f"no arm {req.arm!r}; this server has {self.arm_id!r}"
                )
                return
            if not client.clock.ready:
                self._answer(ident, now, client, "engage", False, "no clock sync yet: complete a ping exchange first")
                return
            if sup.session and ident == self._session_owner:
                # A repeated engage (its answer was lost on the way): the same session, not a refusal.
                self._answer(ident, now, client, "engage", True, "already engaged", sup.session)
                return
            verdict = sup.engage(req.client, now)
            if verdict.accepted:
                self._session_owner = ident
                client.name = req.client
            self._answer(ident, now, client, "engage", verdict.accepted, verdict.reason, verdict.session)
        elif isinstance(req, p.Disengage):
            owner = self._session_owner
            if req.session == sup.session and owner is not None and self._identity(ident) != self._identity(owner):
                self._answer(ident, now, client, "disengage", False, "the session belongs to another connection")
                return
            verdict = sup.disengage(req.session, now)
            if verdict.accepted:
                self._session_owner = None
            self._answer(ident, now, client, "disengage", verdict.accepted, verdict.reason)
        elif isinstance(req, p.Reset):
            if sup.state != State.ESTOP:
                self._answer(ident, now, client, "reset", True, "nothing to reset")
            else:
                allowed, why = self._may_reset(ident, client)
                if allowed:
                    sup.reset(now)
                    self._stop_owner = None
                    log.info("e-stop %s (%s)", why, client.name)
                self._answer(ident, now, client, "reset", allowed, why)
        elif isinstance(req, p.LoadTask):
            self._load_task(ident, now, client, req)
        elif isinstance(req, p.Offer):
            self._forward_offer(ident, now, client, req)
        self._flush_events()

    def _load_task(self, ident: bytes, now: float, client: Client, req: p.LoadTask) -> None:
        sup = self.supervisor
        assert sup is not None
        if sup.session:
            self._answer(ident, now, client, "load_task", False, f"arm is engaged by {sup.client}; disengage first")
            return
        if sup.state == State.ESTOP:
            self._answer(ident, now, client, "load_task", False, "e-stop latched; reset first")
            return
        try:
            self.robot.load_task(req.task, req.seed)
        except ValueError as exc:
            self._answer(ident, now, client, "load_task", False, str(exc))
            return
        sup.rebase()
        self._record_config(now)
        self._record_task(now)
        reason = f"loaded {req.task} with seed {req.seed}"
        self._answer(ident, now, client, "load_task", True, reason, guidance=self._guidance())

    def _guidance(self) -> p.Guidance | None:
        """The loaded task's guidance path for consoles' fixtures (simulated arms only)."""
        found = self.robot.guidance_path_m()
        if found is None:
            return None
        path, normal = found
        return p.Guidance(path_m=[vec3(x) for x in path[:1000]], normal=vec3(normal))

    def _answer(
        self,
        ident: bytes,
        now: float,
        client: Client,
        request: str,
        ok: bool,
        reason: str,
        session: str = "",
        guidance: p.Guidance | None = None,
    ) -> None:
        if not ok:
            self.counters[f"control.refused.{request}"] += 1
        self._reply(ident, p.Ack(request=request, ok=ok, reason=reason[:500], session=session, guidance=guidance))
        self._record(TOPIC_CONTROL, ControlRecord(now, client.name, request, ok, reason, session))

"""The WebRTC offer relay, as part of ``RobotServer``: a console's offer forwarded to the media
process over the signalling socket, its answer relayed back (a repeated offer gets the same
answer)."""

from __future__ import annotations

import hashlib
import logging

import zmq

from telesurg.teleop.robot.records import (
    TOPIC_CONTROL,
    ControlRecord,
)
from telesurg.teleop.robot.sessions import Client
from telesurg.teleop.wire import protocol as p
from telesurg.teleop.wire import signalling

log = logging.getLogger("telesurg.robot")


class OfferRelay:
    """Owns ``_signal``, ``_signal_seq``, ``_offers_pending``, ``_offers_answered``."""

    def _forward_offer(self, ident: bytes, now: float, client: Client, req: p.Offer) -> None:
        """Hand a console's WebRTC offer to the media process; the answer is relayed when it comes
        (``_relay_answers``), never waited for here. A repeated offer (the console re-sends requests
        whose answer is late or lost) is not forwarded twice: it gets the same answer."""
        if self._signal is None:
            self._answer(ident, now, client, "offer", False, "no_video: this robot server serves no video")
            return
        digest = hashlib.blake2b(req.sdp.encode(), digest_size=16).digest()
        answered = self._offers_answered.get(ident)
        if answered is not None and answered[0] == digest:
            self._reply(ident, answered[1])
            return
        if any(pending[:2] == (ident, digest) for pending in self._offers_pending.values()):
            return
        self._signal_seq += 1
        name = f"{client.name}/{req.peer}" if req.peer else client.name
        try:
            self._signal.send(signalling.encode(signalling.SignalRequest(self._signal_seq, name, req.sdp)), zmq.NOBLOCK)
        except zmq.Again:
            self._answer(ident, now, client, "offer", False, "no_video: the media process is not answering")
            return
        self._offers_pending[self._signal_seq] = (ident, digest, now)
        self._record(TOPIC_CONTROL, ControlRecord(now, client.name, "offer", True, "forwarded to the media process"))

    def _relay_answers(self, now: float) -> None:
        assert self._signal is not None
        while True:
            try:
                data = self._signal.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                reply = signalling.decode_reply(data)
            except ValueError as exc:
                self.counters["video.bad_reply"] += 1
                log.warning("%s", exc)
                continue
            pending = self._offers_pending.pop(reply.request_id, None)
            if pending is None:
                continue
            ident, digest, _ = pending
            if reply.ok:
                msg: p.Message = p.Answer(sdp=reply.sdp)
            else:
                msg = p.Ack(request="offer", ok=False, reason=f"video: {reply.reason}"[:500])
            if len(self._offers_answered) >= 64 and ident not in self._offers_answered:
                self._offers_answered.pop(next(iter(self._offers_answered)))
            self._offers_answered[ident] = (digest, msg)
            self._reply(ident, msg)
        for rid, (ident, _, at) in list(self._offers_pending.items()):
            if now - at > self.config.video_answer_timeout_s:
                del self._offers_pending[rid]
                self.counters["video.offer_timeout"] += 1
                self._reply(ident, p.Ack(request="offer", ok=False, reason="no_video: media process silent"))

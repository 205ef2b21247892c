"""Who is connected and who owns the arm, as part of ``RobotServer``: control-channel peers by
bound identity (CURVE key or connection), the session owner and its clock sync, revoked keys,
the e-stop's owner and who may reset it."""

from __future__ import annotations

import logging
import math
from typing import Any

import zmq

from telesurg.teleop.robot.records import (
    TOPIC_REJECTED,
    RejectedRecord,
)
from telesurg.teleop.robot.supervisor import State
from telesurg.teleop.wire.auth import fingerprint
from telesurg.teleop.wire.channels import frame_property, is_loopback
from telesurg.teleop.wire.clock import ClockEstimator, ClockSync

log = logging.getLogger("telesurg.robot")


class Client:
    """What the server knows about one control-channel peer (by ZeroMQ routing id)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hello = False
        self.clock = ClockEstimator()
        self.pongs: dict[float, tuple[float, float]] = {}  # t1 → (t2, t3) of recent exchanges
        self.last_seen_s = 0.0
        #: Its CURVE public key (Z85, ZeroMQ's ``User-Id``; "" without CURVE) and TCP address.
        self.key = ""
        self.address = ""


class Sessions:
    """Owns ``_clients``, ``_session_owner``, ``_stop_owner``, ``_reset_keys``, ``_keys_version``, ``_denied_seen``."""

    def _owner_sync(self) -> ClockSync | None:
        owner = self._clients.get(self._session_owner) if self._session_owner else None
        return owner.clock.sync() if owner is not None and owner.clock.ready else None

    def _check_session(self, now: float) -> None:
        sup = self.supervisor
        assert sup is not None
        if not sup.session:
            self._session_owner = None
            return
        owner = self._clients.get(self._session_owner) if self._session_owner else None
        seen = max(sup.last_valid_s, owner.last_seen_s if owner else -math.inf)
        if now - seen > self.config.session_timeout_s:
            log.warning("session %s of %s timed out; the arm is free", sup.session, sup.client)
            sup.disengage(sup.session, now)
            sup.reason = f"session timed out after {self.config.session_timeout_s:.1f} s of silence"
            self._session_owner = None

    def _take_auth_news(self, auth: Any, now: float) -> None:
        """What the authenticator saw since the last period (rare): refused handshakes (counted as
        ``zap.<reason>``, recorded on ``/robot/rejected``) and a reloaded key folder (new roles; a
        revoked owner's session ends and the arm holds)."""
        while auth.pending:
            denial = auth.pending.popleft()
            reason = denial.reason.lower().replace(" ", "_")
            self.counters[f"zap.{reason}"] += 1
            detail = f"from {denial.address or '?'} with key {denial.fingerprint or '(none)'}"
            self._record(TOPIC_REJECTED, RejectedRecord(now, "zap", reason, detail, 0))
        self._denied_seen = auth.denied_total
        if auth.version == self._keys_version:
            return
        self._keys_version = auth.version
        self._reset_keys = {key: name for key, (name, role) in auth.roles.items() if role == "reset"}
        owner = self._clients.get(self._session_owner) if self._session_owner else None
        sup = self.supervisor
        assert sup is not None
        if owner is not None and owner.key and owner.key not in auth.keys and sup.session:
            log.warning("the key of session %s (%s) was revoked: the session ends", sup.session, fingerprint(owner.key))
            sup.disengage(sup.session, now)
            sup.reason = f"session ended: its key {fingerprint(owner.key)} was revoked"
            self._session_owner = None
            self._flush_events()

    def _revoked(self, key: str) -> bool:
        """Whether a connection's CURVE key was authorised when it connected but is not now."""
        auth = self.sockets.auth if self.sockets is not None else None
        return bool(key) and auth is not None and key not in auth.keys

    def _see(self, ident: bytes, frame: zmq.Frame, now: float) -> None:
        """Note who sent a control request: the connection's CURVE key and address (ZeroMQ's frame
        properties), which decide authority (never the request's own ``client`` field)."""
        client = self._client(ident, now)
        client.key = frame_property(frame, "User-Id")
        client.address = frame_property(frame, "Peer-Address")

    def _identity(self, ident: bytes) -> tuple[str, str]:
        """Who a control connection is: its CURVE key, or without CURVE the connection itself."""
        client = self._clients.get(ident)
        if client is not None and client.key:
            return ("key", client.key)
        return ("connection", ident.hex())

    def _latch_estop(self, reason: str, now: float) -> None:
        assert self.supervisor is not None
        was = self.supervisor.state
        self.supervisor.estop(reason, now)
        self._latched(was)
        self._session_owner = None
        self._flush_events()

    def _latched(self, was: State) -> None:
        """After a request that may have latched the e-stop (the supervisor was in ``was``): on the
        latch, remember who owned the session then (only they, or a reset key, may clear it)."""
        assert self.supervisor is not None
        if was != State.ESTOP and self.supervisor.state == State.ESTOP:
            self._stop_owner = self._identity(self._session_owner) if self._session_owner else None

    def _may_reset(self, ident: bytes, client: Client) -> tuple[bool, str]:
        """Whether ``client`` may clear the latched e-stop, and why (README, "E-stop and reset")."""
        owner = self._stop_owner
        if owner is not None and owner == self._identity(ident):
            return True, "reset by the session owner at the stop"
        if client.key and client.key in self._reset_keys:
            return True, f"reset by key {self._reset_keys[client.key]!r} (role reset)"
        if owner is None and not self._reset_keys and is_loopback(client.address):
            return True, "reset from the robot host (no session owner at the stop, no reset key configured)"
        if owner is None:
            return False, "refused: no session owner at the stop; only a key with the reset role may reset"
        return False, "refused: only the session owner at the time of the stop, or a key with the reset role, may reset"

    def _client(self, ident: bytes, now: float) -> Client:
        """The control peer ``ident`` (a new one is remembered; at most 64, the longest silent
        forgotten first), seen now."""
        client = self._clients.get(ident)
        if client is None:
            if len(self._clients) >= 64:  # bounded memory: forget the most demanding peer (never the owner)
                heaviest = max(
                    (k for k in self._clients if k != self._session_owner),
                    key=lambda k: self._intake.rates.rate(k, now),
                    default=None,
                )
                if heaviest is not None:
                    del self._clients[heaviest]
            client = self._clients[ident] = Client(ident.hex()[:16])
        client.last_seen_s = now
        return client

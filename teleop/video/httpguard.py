"""Connection limits for the web viewer's HTTP server: no slow-loris can hold it.

aiohttp holds a connection that never completes a request for as long as the peer likes (no header
timeout; its keep-alive timer only runs between requests), so 800 half-sent requests once held 800
open files for 40 s (issue 15). Every connection now passes through a ``ConnectionGuard``:

- **a request deadline**: a connection must complete a request within ``request_timeout_s`` of
  opening, and the next one within the same time after each response, or it is closed (an idle
  keep-alive connection too);
- **a cap on untrusted connections**: a connection is *trusted* once it has made a request carrying
  the viewer's valid token; the others, per remote address, are capped at ``max_untrusted_per_address``
  (a browser opens about six) and at ``max_untrusted`` over all addresses. A connection over the cap
  is closed at once. On loopback, where a viewer needs no token, every connection is untrusted, and
  the per-address cap keeps an attacker on another address (127.0.0.2) from locking out pages on
  127.0.0.1.

Counted in ``ConnectionGuard.counters`` (``refused_address``, ``refused_total``, ``timed_out``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GuardConfig:
    """``request_timeout_s``: time to complete a request after opening or after the last response (s);
    ``max_untrusted_per_address`` / ``max_untrusted``: open connections without the valid token, per
    remote address and in all."""

    request_timeout_s: float = 10.0
    max_untrusted_per_address: int = 32
    max_untrusted: int = 256

    def __post_init__(self) -> None:
        if not self.request_timeout_s > 0:
            raise ValueError(f"request_timeout_s must be positive, got {self.request_timeout_s}")
        if self.max_untrusted_per_address < 1 or self.max_untrusted < self.max_untrusted_per_address:
            raise ValueError("need 1 ≤ max_untrusted_per_address ≤ max_untrusted")


class _Guarded(asyncio.Protocol):
    """One connection: aiohttp's protocol inside, the deadline and the cap around it."""

    def __init__(self, guard: ConnectionGuard, inner: Any) -> None:
        self.guard, self.inner = guard, inner
        self.transport: asyncio.Transport | None = None
        self.address = ""
        self.trusted = False
        self.admitted = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if peer else ""
        if not self.guard._admit(self):
            transport.abort()
            return
        self.admitted = True
        self.arm()
        self.inner.connection_made(transport)

    def arm(self) -> None:
        self.disarm()
        self._timer = asyncio.get_running_loop().call_later(self.guard.config.request_timeout_s, self._expire)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self.guard.counters["timed_out"] += 1
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.admitted:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.admitted else None

    def pause_writing(self) -> None:
        if self.admitted:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.admitted:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        if self.admitted:
            self.guard._release(self)
            self.inner.connection_lost(exc)


class ConnectionGuard:
    """Wraps an aiohttp server's protocol factory (``wrap``) and tells requests apart (``middleware``,
    ``trust``); see the module docstring."""

    def __init__(self, config: GuardConfig | None = None) -> None:
        self.config = config or GuardConfig()
        self.counters: Counter[str] = Counter()
        self._untrusted: Counter[str] = Counter()
        self._by_transport: dict[Any, _Guarded] = {}

    @property
    def open_connections(self) -> int:
        return len(self._by_transport)

    def wrap(self, factory: Callable[[], Any]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Guarded(self, factory())

    def _admit(self, conn: _Guarded) -> bool:
        if self._untrusted[conn.address] >= self.config.max_untrusted_per_address:
            self.counters["refused_address"] += 1
            return False
        if sum(self._untrusted.values()) >= self.config.max_untrusted:
            self.counters["refused_total"] += 1
            return False
        self._untrusted[conn.address] += 1
        self._by_transport[conn.transport] = conn
        return True

    def _release(self, conn: _Guarded) -> None:
        self._by_transport.pop(conn.transport, None)
        if not conn.trusted:
            self._untrusted[conn.address] -= 1
            if self._untrusted[conn.address] <= 0:
                del self._untrusted[conn.address]

    def trust(self, request: Any) -> None:
        """The request carried the valid token: its connection no longer counts against the cap."""
        conn = self._by_transport.get(request.transport)
        if conn is not None and not conn.trusted:
            conn.trusted = True
            self._untrusted[conn.address] -= 1
            if self._untrusted[conn.address] <= 0:
                del self._untrusted[conn.address]

    def middleware(self) -> Any:
        """An aiohttp middleware: a complete request stops its connection's deadline; the response
        sent starts the next one."""
        from aiohttp import web

        @web.middleware
        async def guard(request: Any, handler: Any) -> Any:
            conn = self._by_transport.get(request.transport)
            if conn is not None:
                conn.disarm()
            try:
                return await handler(request)
            finally:
                if conn is not None and conn.transport is not None and not conn.transport.is_closing():
                    conn.arm()

        return guard


def token_ok(needed: bool, expected: str, given: Any) -> bool:
    """Whether a request may proceed: no token needed, or ``given`` is ``expected`` (constant time)."""
    import secrets

    return not needed or (isinstance(given, str) and secrets.compare_digest(given, expected))


async def read_offer(request: Any, guard: ConnectionGuard, needed: bool, token: str) -> tuple[dict | None, Any]:
    """The JSON body of a signalling request (``{sdp, token, …}``) as (body, None), or (None, the
    error response): 400 for malformed JSON or a missing/oversized SDP, 403 for a wrong token. A
    request with the valid token is trusted by ``guard`` (no untrusted-connection cap)."""
    from aiohttp import web

    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return None, web.json_response({"error": "expected JSON {sdp, type, token}"}, status=400)
    if not isinstance(body, dict) or not token_ok(needed, token, body.get("token")):
        return None, web.json_response({"error": "forbidden: wrong or missing token"}, status=403)
    if needed:
        guard.trust(request)
    sdp = body.get("sdp")
    if not isinstance(sdp, str) or len(sdp) > 32_768:
        return None, web.json_response({"error": "expected an SDP offer"}, status=400)
    return body, None

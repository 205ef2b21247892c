"""WebRTC plumbing shared by the media process and the console (aiortc): which addresses ICE may
use, which servers it may contact, and the user-space link emulator on a peer connection's path.

- **No servers unless configured.** aiortc's default configuration contacts a public STUN server;
  ``rtc_configuration`` gives ``iceServers=[]`` unless the user lists servers.
- **Only the configured addresses.** aioice gathers a host candidate on every interface *except*
  loopback, so two peers on one host would talk over the machine's LAN address. ``use_ice_addresses``
  replaces aioice's address discovery (process-wide) with the configured list (default loopback),
  and ``keep_candidates`` drops remote candidates outside it from an SDP (a browser also offers its
  LAN and mDNS names), so nothing but the configured network is ever contacted.
- **Link emulation.** ``emulate_link`` puts a ``teleop.netem.model.LinkModel`` (always message level:
  WebRTC runs over UDP, where loss is loss and an outage drops) in each direction of a peer connection's ICE transport:
  every datagram of DTLS, SRTP (video, RTCP feedback) and SCTP (data channels) is delayed, jittered,
  dropped or held per the spec; ICE's own STUN consent checks are not (they are answered inside
  aioice), so an emulated outage never tears the connection down, as a real short one would not.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import time
from collections.abc import Sequence
from typing import Any

from teleop.netem.model import LinkModel, stream_id
from teleop.netem.spec import LinkSpec

LOOPBACK_ADDRESSES = ("127.0.0.1",)


def rtc_configuration(ice_servers: Sequence[str] = ()) -> Any:
    """An ``RTCConfiguration`` with exactly ``ice_servers`` (URLs such as ``stun:host:3478``)."""
    from aiortc import RTCConfiguration, RTCIceServer

    return RTCConfiguration(iceServers=[RTCIceServer(urls=url) for url in ice_servers])


def use_ice_addresses(addresses: Sequence[str] = LOOPBACK_ADDRESSES) -> None:
    """Make aioice gather host candidates on exactly ``addresses`` (IPv4/IPv6 literals) in this process."""
    import aioice.ice

    checked = [str(ipaddress.ip_address(a)) for a in addresses]
    if not checked:
        raise ValueError("at least one ICE address is needed")

    def _addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in checked if (use_ipv4 if ipaddress.ip_address(a).version == 4 else use_ipv6)]

    aioice.ice.get_host_addresses = _addresses


def keep_candidates(sdp: str, addresses: Sequence[str]) -> str:
    """``sdp`` without ``a=candidate`` lines whose address is not in ``addresses`` (mDNS names
    included). Candidates that arrive as peer-reflexive from an allowed address still work."""
    allowed = {str(ipaddress.ip_address(a)) for a in addresses}
    lines = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) < 5:
                continue
            try:
                address = str(ipaddress.ip_address(parts[4]))
            except ValueError:
                continue  # an mDNS name (xxx.local) or garbage
            if address not in allowed:
                continue
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def emulate_link(pc: Any, down: LinkSpec | None, up: LinkSpec | None, clock: Any = time.monotonic) -> None:
    """Emulate ``down`` (datagrams arriving at ``pc``) and ``up`` (datagrams it sends) on every ICE
    transport of the peer connection ``pc``; call after ``setLocalDescription`` (the transports exist).
    Outages count from this call."""
    # WebRTC media and data run over UDP: loss is loss and an outage drops what was sent during it,
    # whatever ``mode`` the spec gives (its default, tcp, models ZeroMQ's TCP channels).
    down = dataclasses.replace(down, mode="message") if down is not None else None
    up = dataclasses.replace(up, mode="message") if up is not None else None
    for transport in _ice_transports(pc):
        if getattr(transport, "_telesurg_emulated", False):
            continue
        transport._telesurg_emulated = True
        now = clock()
        if down is not None:
            transport._recv = _DelayedRecv(transport._recv, LinkModel(down, now, stream_id("video", "down")), clock)
        if up is not None:
            transport._send = _DelayedSend(transport._send, LinkModel(up, now, stream_id("video", "up")), clock)


def _ice_transports(pc: Any) -> list[Any]:
    out = []
    for tr in pc.getTransceivers():
        dtls = tr.receiver.transport or tr.sender.transport
        if dtls is not None and dtls.transport not in out:
            out.append(dtls.transport)
    sctp = pc.sctp
    if sctp is not None and sctp.transport.transport not in out:
        out.append(sctp.transport.transport)
    return out


class _DelayedRecv:
    """Replaces ``RTCIceTransport._recv``: a pump reads the real datagrams and releases each at its
    emulated arrival time (or drops it) into a queue the DTLS transport reads."""

    def __init__(self, recv: Any, model: LinkModel, clock: Any) -> None:
        self._recv, self._model, self._clock = recv, model, clock
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None

    async def __call__(self) -> bytes:
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._run())
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await self._recv()
            except BaseException as exc:  # the connection closed: hand the error on, in order
                self._queue.put_nowait(exc)
                return
            now = self._clock()
            for at in self._model.deliveries(now, len(data)):
                loop.call_later(max(0.0, at - now), self._queue.put_nowait, data)


class _DelayedSend:
    """Replaces ``RTCIceTransport._send``: each datagram leaves at its emulated time (or never)."""

    def __init__(self, send: Any, model: LinkModel, clock: Any) -> None:
        self._send, self._model, self._clock = send, model, clock
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, data: bytes) -> None:
        now = self._clock()
        for at in self._model.deliveries(now, len(data)):
            if at <= now:
                await self._send(data)
            else:
                task = asyncio.get_running_loop().create_task(self._later(at - now, data))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _later(self, delay_s: float, data: bytes) -> None:
        await asyncio.sleep(delay_s)
        with contextlib.suppress(ConnectionError):
            await self._send(data)

"""Every use of aiortc's and aioice's internals, in one place (the versions are pinned in
constraints.txt; ``check_internals`` fails loudly, naming what is gone, if an upgrade moves them).

- ``use_ice_addresses``: aioice gathers host candidates on every interface *except* loopback, so two
  peers on one host would talk over the machine's LAN address; this replaces its address discovery
  (``aioice.ice.get_host_addresses``, process-wide) with the configured list.
- ``emulate_link``: the user-space link emulator (``telesurg.teleop.netem.datagram``) in each direction of a
  peer connection's ICE transports (``RTCIceTransport._recv``/``_send``): every datagram of DTLS,
  SRTP and SCTP goes through it; ICE's own consent checks do not (aioice answers them), so an
  emulated outage never tears the connection down, as a real short one would not.
- ``tap_rtp``: the RTP timestamp of each frame as it leaves (``RTCDtlsTransport._send_rtp``, the
  sender's ``_ssrc``), which aiortc offsets by a random origin it keeps to itself.
- ``on_keyframe_request``: a peer's keyframe request (RTCP PLI; the sender's ``_send_keyframe``)
  reaches the media process's shared encoder, which aiortc's own flag does not.
- ``keep_rtp_timestamps``: decoded frames keep their RTP timestamp (the receiver's timestamp mapper).
- ``bound_nacks``: after a gap longer than an outage's worth of packets, or a lost packet missing
  too long, a keyframe request instead of retransmissions of seconds-old packets or a jitter
  buffer holding every later frame (the receiver's NACK generator and jitter buffer).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from telesurg.teleop.netem.datagram import DelayedRecv, DelayedSend
from telesurg.teleop.netem.model import LinkModel, stream_id
from telesurg.teleop.netem.spec import LinkSpec
from telesurg.teleop.video.webrtc import LOOPBACK_ADDRESSES

#: (module, attribute path) of every internal used here.
INTERNALS = (
    ("aioice.ice", "get_host_addresses"),
    # RTCIceTransport.start sets its ``_recv``/``_send`` to its aioice connection's:
    ("aioice.ice", "Connection.recv"),
    ("aioice.ice", "Connection.send"),
    ("aiortc.rtcdtlstransport", "RTCDtlsTransport._send_rtp"),
    ("aiortc.rtcrtpreceiver", "NackGenerator"),
    ("aiortc.rtcrtpreceiver", "RTCRtpReceiver._send_rtcp_pli"),
    ("aiortc.utils", "uint16_add"),
    ("aiortc.utils", "uint16_gt"),
)
#: Private attributes set per instance in ``__init__`` (checked on a fresh receiver / sender).
RECEIVER_ATTRIBUTES = (
    "_RTCRtpReceiver__timestamp_mapper",
    "_RTCRtpReceiver__nack_generator",
    "_RTCRtpReceiver__jitter_buffer",
)
SENDER_ATTRIBUTES = ("_ssrc", "_send_keyframe")


class IceTransport(Protocol):
    """The part of ``aiortc.RTCIceTransport`` ``emulate_link`` replaces."""

    _recv: Callable[[], Awaitable[bytes]]
    _send: Callable[[bytes], Awaitable[None]]


class DtlsTransport(Protocol):
    """The part of ``aiortc.RTCDtlsTransport`` ``tap_rtp`` wraps."""

    _send_rtp: Callable[[bytes], Awaitable[None]]


def check_internals() -> list[str]:
    """The internals this module uses that the installed aiortc/aioice lack (empty when all there)."""
    import importlib

    missing = []
    for module, path in INTERNALS:
        obj: Any = importlib.import_module(module)
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                missing.append(f"{module}.{path}")
                break
    import inspect

    from aiortc.rtcicetransport import RTCIceTransport

    source = inspect.getsource(RTCIceTransport)  # its _recv/_send are set per instance, when it starts
    missing += [f"RTCIceTransport.{a}" for a in ("_recv", "_send") if f"self.{a} =" not in source]
    from aiortc import RTCRtpReceiver, RTCRtpSender
    from aiortc.mediastreams import VideoStreamTrack

    class _Transport:  # enough of a DTLS transport for the constructors
        state = "new"

        def _register_rtp_receiver(self, *_: Any) -> None: ...

        def _register_rtp_sender(self, *_: Any) -> None: ...

    async def _build() -> tuple[RTCRtpReceiver, RTCRtpSender]:  # their constructors take the running loop
        receiver = RTCRtpReceiver("video", _Transport())  # type: ignore[arg-type]
        return receiver, RTCRtpSender(VideoStreamTrack(), _Transport())  # type: ignore[arg-type]

    loop = asyncio.new_event_loop()  # a private loop: the caller's current loop (or none) is left as it is
    try:
        receiver, sender = loop.run_until_complete(_build())
    finally:
        loop.close()
    missing += [f"RTCRtpReceiver.{a}" for a in RECEIVER_ATTRIBUTES if not hasattr(receiver, a)]
    missing += [f"RTCRtpSender.{a}" for a in SENDER_ATTRIBUTES if not hasattr(sender, a)]
    return missing


def use_ice_addresses(addresses: Sequence[str] = LOOPBACK_ADDRESSES) -> None:
    """Make aioice gather host candidates on exactly ``addresses`` (IPv4/IPv6 literals) in this process."""
    import aioice.ice

    checked = [str(ipaddress.ip_address(a)) for a in addresses]
    if not checked:
        raise ValueError("at least one ICE address is needed")

    def _addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in checked if (use_ipv4 if ipaddress.ip_address(a).version == 4 else use_ipv6)]

    aioice.ice.get_host_addresses = _addresses


def emulate_link(
    pc: Any, down: LinkSpec | None, up: LinkSpec | None, clock: Callable[[], float] = time.monotonic
) -> None:
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
        transport._telesurg_emulated = True  # type: ignore[attr-defined]
        now = clock()
        if down is not None:
            transport._recv = DelayedRecv(transport._recv, LinkModel(down, now, stream_id("video", "down")), clock)
        if up is not None:
            transport._send = DelayedSend(transport._send, LinkModel(up, now, stream_id("video", "up")), clock)


def _ice_transports(pc: Any) -> list[IceTransport]:
    out: list[IceTransport] = []
    for tr in pc.getTransceivers():
        dtls = tr.receiver.transport or tr.sender.transport
        if dtls is not None and dtls.transport not in out:
            out.append(dtls.transport)
    sctp = pc.sctp
    if sctp is not None and sctp.transport.transport not in out:
        out.append(sctp.transport.transport)
    return out


def tap_rtp(pc: Any, track: Any, on_frame: Callable[[int, int], None]) -> None:
    """Call ``on_frame(rtp_ts, pts)`` when the first RTP packet of each new video frame leaves.

    aiortc adds a random origin to every ``pts`` to make the RTP timestamp and keeps it to itself;
    the first packet of the first frame (whose pts the track knows, ``track.first_pts``) reveals it.
    Metadata sent then carries the frame's exact RTP timestamp, which the receiver sees on the
    decoded frame."""
    sender = next(t.sender for t in pc.getTransceivers() if t.sender.track is track)
    dtls: DtlsTransport = sender.transport
    send = dtls._send_rtp
    state: dict[str, int | None] = {"origin": None, "last": None}

    async def _send_rtp(data: bytes) -> None:
        if len(data) >= 12 and not 192 <= data[1] <= 223:  # RTP, not RTCP
            ssrc = int.from_bytes(data[8:12], "big")
            ts = int.from_bytes(data[4:8], "big")
            last = state["last"]
            if ssrc == sender._ssrc and (last is None or 0 < (ts - last) % 2**32 < 2**31):
                state["last"] = ts
                if state["origin"] is None and track.first_pts is not None:
                    state["origin"] = (ts - track.first_pts) % 2**32
                origin = state["origin"]
                if origin is not None:
                    on_frame(ts, (ts - origin) % 2**32)
        await send(data)

    dtls._send_rtp = _send_rtp


def on_keyframe_request(pc: Any, track: Any, callback: Callable[[], None]) -> None:
    """Call ``callback`` when the peer asks ``track``'s sender for a keyframe (RTCP PLI): the shared
    encoder makes it (aiortc's own flag only reaches an encoder the sender runs itself)."""
    sender = next(t.sender for t in pc.getTransceivers() if t.sender.track is track)
    own = sender._send_keyframe

    def _send_keyframe() -> None:
        callback()
        own()

    sender._send_keyframe = _send_keyframe


class _RawTimestamps:
    """Stands in for aiortc's receiver timestamp mapper: decoded frames keep their RTP timestamp."""

    def map(self, timestamp: int) -> int:
        return timestamp


def keep_rtp_timestamps(receiver: Any) -> None:
    """Decoded frames of ``receiver`` (an ``RTCRtpReceiver``) carry their RTP timestamp as ``pts``."""
    receiver._RTCRtpReceiver__timestamp_mapper = _RawTimestamps()


def bound_nacks(
    receiver: Any, max_gap_packets: int, max_wait_s: float = 0.6, clock: Callable[[], float] = time.monotonic
) -> None:
    """After a gap of more than ``max_gap_packets`` (an outage), or when a lost packet is still
    missing ``max_wait_s`` after its gap was seen, ask for a keyframe instead of waiting.

    aiortc's receiver NACKs every missing packet, however old: after a 3 s outage the sender
    retransmits the last 128 packets of seconds-old frames, the jitter buffer takes them for a
    restarted stream and the stale frames are decoded (the backlog replayed) or the stream stalls.
    And a packet whose retransmission is lost too is NACKed again only while it is among the last
    128 (~1 s of video); after that nothing asks for it and the jitter buffer holds every later
    frame until 512 packets have queued behind the hole (3–6 s of video, then released at once:
    seen as 1–4.5 s of video latency on a 1%-loss link). A browser bounds its NACKs by age and asks
    for a keyframe; so does this: the lost packets are forgotten, partial frames dropped, and a PLI
    requests a fresh keyframe."""
    from aiortc.rtcrtpreceiver import NackGenerator
    from aiortc.utils import uint16_add, uint16_gt

    _pending: set[asyncio.Future[None]] = set()

    class _BoundedNackGenerator(NackGenerator):
        def __init__(self) -> None:
            super().__init__()
            self.missing_since: dict[int, float] = {}  # sequence number → when its gap was seen
            self.given_up = 0

        def _give_up(self, packet: Any) -> bool:
            self.missing.clear()
            self.missing_since.clear()
            self.max_seq = packet.sequence_number
            self.given_up += 1
            jitter = receiver._RTCRtpReceiver__jitter_buffer
            jitter.remove(jitter.capacity)
            jitter._origin = None
            task = asyncio.ensure_future(receiver._send_rtcp_pli(packet.ssrc))
            _pending.add(task)
            task.add_done_callback(_pending.discard)
            return False

        def add(self, packet: Any) -> bool:
            seq = packet.sequence_number
            if (
                self.max_seq is not None
                and uint16_gt(seq, self.max_seq)
                and uint16_add(seq, -self.max_seq) > max_gap_packets
            ):
                return self._give_up(packet)
            self.missing_since.pop(seq, None)  # a retransmission arrived (or nothing was missing)
            missed = super().add(packet)
            now = clock()
            if any(k not in self.missing for k in self.missing_since):
                return self._give_up(packet)  # aiortc stopped asking for it (too old): a permanent hole
            for lost in self.missing:
                self.missing_since.setdefault(lost, now)
            if self.missing_since and now - min(self.missing_since.values()) > max_wait_s:
                return self._give_up(packet)
            return missed

    receiver._RTCRtpReceiver__nack_generator = _BoundedNackGenerator()

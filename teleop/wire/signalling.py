"""WebRTC signalling between the robot server and the media process, on the robot host.

A console sends ``telesurg.teleop.wire.protocol.Offer`` on the control channel (so video needs no port of its own
through a firewall, and the same CURVE keys protect it); the robot server forwards it to the media
process (``telesurg.teleop.video.media``) as a ``SignalRequest`` over a loopback DEALER → ROUTER pair and relays
the ``SignalReply`` as ``Answer`` (or a refusal ``Ack``). Messages are msgpack, one frame each.
"""

from __future__ import annotations

import msgspec

from telesurg.teleop.wire.protocol import MAX_SDP_CHARS


class SignalRequest(msgspec.Struct, forbid_unknown_fields=True):
    """An offer from ``client`` (its name; a new offer from the same client replaces its old peer
    connection). ``request_id`` pairs the reply with the waiting console."""

    request_id: int
    client: str
    sdp: str


class SignalReply(msgspec.Struct, forbid_unknown_fields=True):
    """The answer SDP, or ``ok`` false and the reason."""

    request_id: int
    ok: bool
    sdp: str = ""
    reason: str = ""


_request_decoder = msgspec.msgpack.Decoder(SignalRequest)
_reply_decoder = msgspec.msgpack.Decoder(SignalReply)


def encode(message: SignalRequest | SignalReply) -> bytes:
    return msgspec.msgpack.encode(message)


def decode_request(data: bytes) -> SignalRequest:
    """Raises ``ValueError`` on anything but a well-formed request of bounded size."""
    if len(data) > MAX_SDP_CHARS + 1024:
        raise ValueError(f"signalling request of {len(data)} bytes is too large")
    try:
        return _request_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"bad signalling request: {exc}") from exc


def decode_reply(data: bytes) -> SignalReply:
    try:
        return _reply_decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"bad signalling reply: {exc}") from exc

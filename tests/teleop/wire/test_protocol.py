"""Wire protocol: every message round-trips; anything else is a ProtocolError with a reason."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telesurg.teleop.wire.protocol import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    REASONS,
    Ack,
    Answer,
    Camera,
    Command,
    Disengage,
    Engage,
    EStop,
    Hello,
    Offer,
    Ping,
    Pong,
    Pose,
    ProtocolError,
    Request,
    Reset,
    Response,
    Telemetry,
    Welcome,
    decode,
    encode,
)

POSE = Pose((0.01, -0.02, 0.05), (0.0, 0.0, math.sin(0.3), math.cos(0.3)))
COMMAND = Command(arm="psm1", session="s-1", seq=7, sent_console_s=12.5, target=POSE, jaw=0.4, clutch=True)
TELEMETRY = Telemetry(
    arm="psm1",
    seq=100,
    robot_s=3.25,
    joint_pos=[0.1, -0.2, 0.12, 0.0, 0.3, -0.1, 0.2, 0.2],
    tool=POSE,
    jaw=0.3,
    force_N=(0.1, 0.0, 1.9),
    force_mag_N=1.9026,
    state="ENGAGED",
    reason="engaged by console-a",
    last_cmd_seq=7,
    last_cmd_sent_console_s=12.5,
    clock_offset_s=-0.002,
    clock_rtt_s=0.0003,
    objects={"needle": POSE},
    camera=Camera(POSE, 640, 480, 500.0, 500.0, 320.0, 240.0, 0.005, 1.0),
    counters={"malformed": 2},
)
REQUESTS = [
    Hello(client="console-a"),
    Ping(t1_console_s=1.0),
    Engage(arm="psm1", client="console-a"),
    Disengage(session="s-1"),
    EStop(),
    Reset(client="console-a"),
    Offer(sdp="v=0"),
]
RESPONSES = [
    Welcome(protocol=PROTOCOL_VERSION, arms=["psm1"]),
    Pong(t1_console_s=1.0, t2_robot_s=5.0, t3_robot_s=5.0001),
    Ack(request="engage", ok=True, session="s-1"),
    Answer(sdp="v=0"),
]


@pytest.mark.parametrize(
    ("message", "kind"),
    [(COMMAND, Command), (TELEMETRY, Telemetry)]
    + [(m, Request) for m in REQUESTS]
    + [(m, Response) for m in RESPONSES],
)
def test_round_trip(message: msgspec.Struct, kind: object) -> None:
    assert decode(encode(message), kind) == message


def _raw(**changes: object) -> bytes:
    data = msgspec.to_builtins(COMMAND)
    data["type"] = "cmd"
    data.update(changes)
    return msgspec.msgpack.encode(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xc1", "malformed"),
        (b"\x00", "malformed"),
        (_raw(v=2), "version"),
        (_raw(sent_console_s=float("nan")), "non_finite"),
        (_raw(sent_console_s=float("inf")), "non_finite"),
        (_raw(target={"pos_m": [0.0, 0.0, 3.0]}), "out_of_range"),
        (_raw(target={"pos_m": [0.0, 0.0, 0.0], "quat_xyzw": [0.0, 0.0, 0.0, 2.0]}), "out_of_range"),
        (_raw(jaw=1.5), "out_of_range"),
        (_raw(seq=-1), "out_of_range"),
        (_raw(session="x" * 65), "out_of_range"),
        (_raw(session="a\nb"), "out_of_range"),
        (_raw(seq="7"), "malformed"),
        (_raw(extra=1), "malformed"),
        (_raw(type="telemetry"), "unexpected_type"),
        (encode(Hello(client="c")), "unexpected_type"),
        (b"\x91" * (MAX_MESSAGE_BYTES + 1), "too_large"),
    ],
)
def test_bad_commands_are_rejected_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(data, Command)
    assert info.value.reason == reason


def test_encode_refuses_non_finite_values() -> None:
    with pytest.raises(ProtocolError, match="non_finite"):
        encode(Ping(t1_console_s=float("nan")))


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=512) | st.binary(max_size=64).map(lambda b: b"\x8a\xa4type\xa3cmd" + b))
def test_random_bytes_never_escape_as_anything_but_protocol_errors(data: bytes) -> None:
    for kind in (Command, Telemetry, Request, Response):
        try:
            decode(data, kind)
        except ProtocolError as exc:
            assert exc.reason in REASONS


_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),  # msgpack's integer range
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=70),
)
_value = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)
_field = st.sampled_from(
    [
        "type",
        "v",
        "arm",
        "session",
        "seq",
        "sent_console_s",
        "target",
        "jaw",
        "clutch",
        "estop",
        "pos_m",
        "quat_xyzw",
        "x",
    ]
)


@settings(max_examples=1500, deadline=None)
@given(st.dictionaries(_field, _value, max_size=10), st.sampled_from(["cmd", "telemetry", "hello", "nope", None]))
def test_random_maps_are_valid_commands_or_rejected(fields: dict, tag: object) -> None:
    """Structured garbage close to a Command: a decoded result is always a fully valid Command."""
    if tag is not None:
        fields["type"] = tag
    data = msgspec.msgpack.encode(fields)
    try:
        message = decode(data, Command)
    except ProtocolError as exc:
        assert exc.reason in REASONS
        return
    assert isinstance(message, Command) and message.v == PROTOCOL_VERSION
    assert math.isfinite(message.sent_console_s) and 0.0 <= message.jaw <= 1.0
    assert all(abs(c) <= 2.0 for c in message.target.pos_m)

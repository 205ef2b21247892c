"""The teleoperation wire protocol: typed, versioned messages encoded as msgpack (msgspec).

Every message is a msgpack map with a ``type`` tag and ``v`` (the protocol version, currently
``PROTOCOL_VERSION``). All quantities are SI: metres, seconds, newtons; positions and orientations
are in the robot base frame; quaternions are (x, y, z, w), unit length. Times named ``*_console_s``
are on the console's clock, ``*_robot_s`` on the robot's (both monotonic seconds since an arbitrary
epoch; the clock sync relates them).

Channels (ZeroMQ):

- **cmd** (console PUB → robot SUB, CONFLATE, single frame): ``Command``.
- **telemetry** (robot PUB → console SUB): ``Telemetry``.
- **control** (console DEALER ↔ robot ROUTER, one frame each way): a request (``Hello``, ``Ping``,
  ``Engage``, ``Disengage``, ``EStop``, ``Reset``, ``LoadTask``, ``Offer``) answered by exactly one
  response (``Welcome``, ``Pong``, ``Ack``, ``Answer``).

Decoding is strict: unknown types, missing or extra-typed fields, a different protocol version,
non-finite numbers, values out of range and messages above ``MAX_MESSAGE_BYTES`` raise
``ProtocolError`` with a short ``reason`` code (counted by the receiver); nothing else escapes.

One module of ~460 lines on purpose: it is the wire contract, every message and its codec in one
place, from which docs/protocol.schema.json is generated (`telesurg protocol --schema`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

PROTOCOL_VERSION = 1
#: Largest encoded message accepted on any channel (bytes).
MAX_MESSAGE_BYTES = 65_536
#: Largest absolute coordinate accepted for a position (m); the arm's reach is far smaller.
MAX_POSITION_M = 2.0
MAX_ID_CHARS = 64
MAX_SDP_CHARS = 32_768

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS, pattern=r"^[A-Za-z0-9_.:-]+$")]
Vec3 = tuple[float, float, float]
Quat = tuple[float, float, float, float]
Unit = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]

REASONS = ("too_large", "malformed", "version", "non_finite", "out_of_range", "unexpected_type")
#: Longest e-stop reason kept (characters); a longer one is cut, never a reason to refuse the stop.
MAX_REASON_CHARS = 256


class ProtocolError(ValueError):
    """A message that must be rejected; ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Message(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    v: int = PROTOCOL_VERSION


class Pose(msgspec.Struct, forbid_unknown_fields=True):
    """A pose in the robot base frame: position (m) and unit quaternion (x, y, z, w)."""

    pos_m: Vec3
    quat_xyzw: Quat = (0.0, 0.0, 0.0, 1.0)


# ---------------------------------------------------------------------- cmd channel
class Command(Message, tag="cmd"):
    """The console's newest intent. Absolute target (not a delta), so any command may be dropped.

    ``seq`` rises strictly within a session; ``sent_console_s`` is the console's clock when sent.
    ``jaw`` is the commanded opening, 0 closed to 1 fully open. ``clutch`` true means the surgeon's
    hand is engaged (false: the robot holds). ``estop`` true latches the robot's e-stop.
    """

    arm: Id
    session: Id
    seq: Seq
    sent_console_s: float
    target: Pose
    jaw: Unit = 0.0
    clutch: bool = True
    estop: bool = False


# ---------------------------------------------------------------------- telemetry channel
class Camera(msgspec.Struct, forbid_unknown_fields=True):
    """The endoscope camera: pose (base frame; looks along its +z, image x right, y down) and
    pinhole intrinsics in pixels for a ``width`` × ``height`` image; clipping planes in metres."""

    pose: Pose
    width: Annotated[int, msgspec.Meta(ge=1, le=16384)]
    height: Annotated[int, msgspec.Meta(ge=1, le=16384)]
    fx: float
    fy: float
    cx: float
    cy: float
    near_m: float
    far_m: float


class TaskState(msgspec.Struct, forbid_unknown_fields=True):
    """The simulated task's public state (simulation only; a real arm leaves ``Telemetry.task`` empty).

    ``observation``, ``achieved_goal`` and ``desired_goal`` are the flat vectors of the Gymnasium
    environment of the same task (layouts: ``telesurg envs --layout telesurg/<task>-v0``), so a
    scripted surgeon or a policy can act on telemetry exactly as on the environment. ``success`` is
    the task's own success test; ``episode_s`` the time since the task was loaded (s)."""

    name: str
    seed: int
    observation: list[float]
    achieved_goal: list[float]
    desired_goal: list[float]
    success: bool
    episode_s: float


class Telemetry(Message, tag="telemetry"):
    """Robot state of one control period.

    ``joint_pos`` in rad (revolute) and m (prismatic) in URDF order; ``tool`` is the tool-tip pose;
    ``jaw`` the measured opening 0–1; ``force_N`` the contact force on the tool (base frame) and
    ``force_mag_N`` its magnitude; ``state``/``reason`` the supervisor's state and why it entered it;
    ``last_cmd_seq`` and ``last_cmd_sent_console_s`` echo the newest command the supervisor applied
    (accepted and reached by its de-jitter playout, ``telesurg.teleop.robot.playout``) and
    ``last_cmd_accepted_robot_s`` is when it was applied (command latency = applied − (sent + clock
    offset), the playout's delay included); ``clock_offset_s`` = robot clock −
    console clock and ``clock_rtt_s`` from the clock sync; ``objects`` are scene object poses for
    the mirror; ``counters`` count rejected messages by reason.
    """

    arm: Id
    seq: Seq
    robot_s: float
    joint_pos: list[float]
    tool: Pose
    jaw: Unit
    force_N: Vec3
    force_mag_N: float
    state: Literal["IDLE", "ENGAGED", "HOLD", "ESTOP"]
    reason: str
    last_cmd_seq: Seq = 0
    last_cmd_sent_console_s: float = 0.0
    last_cmd_accepted_robot_s: float = 0.0
    clock_offset_s: float = 0.0
    clock_rtt_s: float = 0.0
    objects: dict[str, Pose] = {}
    camera: Camera | None = None
    counters: dict[str, int] = {}
    task: TaskState | None = None


# ---------------------------------------------------------------------- control channel
class Hello(Message, tag="hello"):
    """First request of a console: who it is and which protocol version it speaks."""

    client: Id
    protocol: int = PROTOCOL_VERSION


class Ping(Message, tag="ping"):
    """Clock-sync request: the console's send time t1. ``prev_t1_console_s`` and
    ``prev_t4_console_s`` report the console's send and receive times of its previous exchange, so
    the robot completes that exchange (its own t2, t3) and keeps its own offset estimate: the robot
    never takes the console's word for the offset."""

    t1_console_s: float
    prev_t1_console_s: float | None = None
    prev_t4_console_s: float | None = None


class Engage(Message, tag="engage"):
    """Ask to drive ``arm``; answered by an ``Ack`` carrying the new session id, or a refusal."""

    arm: Id
    client: Id


class Disengage(Message, tag="disengage"):
    session: Id


class EStop(Message, tag="estop"):
    """Latch the e-stop (any client may press it). The request latches whatever else is wrong with
    it (see ``estop_request``): an odd one is answered and counted as odd, never refused."""

    reason: Annotated[str, msgspec.Meta(max_length=MAX_REASON_CHARS)] = "console e-stop"


class Reset(Message, tag="reset"):
    """Clear a latched e-stop (the arm returns to IDLE; driving needs a new engage)."""

    client: Id


class LoadTask(Message, tag="load_task"):
    """Simulation only: reload the scene with ``task`` (e.g. "Reach") and goal seed ``seed``; the arm
    returns to its home pose. Refused while a console is engaged."""

    task: Id
    seed: Seq = 0


class Offer(Message, tag="offer"):
    """WebRTC signalling: an SDP offer (receive-only video and a ``meta`` data channel); the robot
    forwards it to its media process and answers with ``Answer`` (or a refusal ``Ack``). ``peer``
    names one of several video peers of the same client (e.g. each page of a browser console); a
    new offer replaces the client's older peer of the same name only."""

    sdp: Annotated[str, msgspec.Meta(max_length=MAX_SDP_CHARS)]
    peer: Annotated[str, msgspec.Meta(max_length=MAX_ID_CHARS, pattern=r"^[A-Za-z0-9_.:-]*$")] = ""


class Guidance(msgspec.Struct, forbid_unknown_fields=True):
    """The loaded task's guidance path: points (base frame, m; at most 1000) and the unit normal of
    the surface it is drawn on (guidance pulls the tool toward the path across the surface only)."""

    path_m: Annotated[list[Vec3], msgspec.Meta(max_length=1000)]
    normal: Vec3


class Welcome(Message, tag="welcome"):
    """Answer to ``Hello``: the server's protocol version, the arms it serves, the loaded task
    (simulation), the path of its recording ("" when not recording), the forbidden regions its
    supervisor enforces, as (low, high) corners in the base frame (m): consoles may guide the
    surgeon away from them (``telesurg.teleop.correction.fixtures``); the supervisor stays authoritative; and
    the workspace box it clamps every setpoint to (low, high corners, base frame, m), so a client
    can predict the clamping."""

    protocol: int
    arms: list[Id]
    task: str = ""
    recording: str = ""
    forbidden_m: list[tuple[Vec3, Vec3]] = []
    guidance: Guidance | None = None
    workspace_m: tuple[Vec3, Vec3] | None = None
    #: The contact-force limits the supervisor enforces, (warn, hard) in N (None from older robots).
    force_limits_N: tuple[float, float] | None = None


class Pong(Message, tag="pong"):
    """Answer to ``Ping``: t1 echoed, t2 robot receive time, t3 robot send time. Offset estimate
    ((t2 − t1) + (t3 − t4)) / 2 and round trip (t4 − t1) − (t3 − t2), with t4 the console's
    receive time."""

    t1_console_s: float
    t2_robot_s: float
    t3_robot_s: float


class Ack(Message, tag="ack"):
    """Answer to ``Engage``, ``Disengage``, ``EStop``, ``Reset`` and ``LoadTask`` (and to any rejected request):
    ``ok``, the ``request`` type it answers, a ``reason`` when refused, ``session`` on engage, and on
    a loaded task its ``guidance`` path when it has one (as in ``Welcome``)."""

    request: str
    ok: bool
    reason: str = ""
    session: str = ""
    guidance: Guidance | None = None


class Answer(Message, tag="answer"):
    """WebRTC signalling: the media process's SDP answer to an ``Offer``."""

    sdp: Annotated[str, msgspec.Meta(max_length=MAX_SDP_CHARS)]


Request = Hello | Ping | Engage | Disengage | EStop | Reset | LoadTask | Offer
Response = Welcome | Pong | Ack | Answer

_ENCODER = msgspec.msgpack.Encoder()
_DECODERS: dict[Any, msgspec.msgpack.Decoder] = {
    Command: msgspec.msgpack.Decoder(Command),
    Telemetry: msgspec.msgpack.Decoder(Telemetry),
    Request: msgspec.msgpack.Decoder(Request),
    Response: msgspec.msgpack.Decoder(Response),
}


def type_name(message: Message) -> str:
    """A message's wire name (its ``type`` tag, e.g. "load_task"), as counters and refusals use it."""
    return str(type(message).__struct_config__.tag)


def json_schema() -> dict[str, Any]:
    """A JSON Schema of every message, by channel: what a client in another language validates
    against (``docs/protocol.schema.json`` is this, written by ``telesurg protocol --schema``).
    Values are msgpack on the wire; the schema describes them as JSON (a msgpack str is a JSON
    string, a msgpack map an object). Rules beyond the schema (finite numbers, unit quaternions,
    positions within ``MAX_POSITION_M``, the size limit) are in README's wire-protocol section."""
    channels = {"cmd": Command, "telemetry": Telemetry, "control_request": Request, "control_response": Response}
    schemas, components = msgspec.json.schema_components(list(channels.values()), ref_template="#/$defs/{name}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"telesurg wire protocol, version {PROTOCOL_VERSION}",
        "description": "One msgpack map per ZeroMQ frame; `type` names the message, `v` the protocol version.",
        "max_message_bytes": MAX_MESSAGE_BYTES,
        "channels": dict(zip(channels, schemas, strict=True)),
        "$defs": components,
    }


def encode(message: Message) -> bytes:
    """msgpack bytes of a message (checked: a message we could not decode ourselves is a bug)."""
    _check_values(message)
    return _ENCODER.encode(message)


def decode(data: bytes, kind: Any) -> Any:
    """Decode ``data`` as ``kind`` (``Command``, ``Telemetry``, ``Request`` or ``Response``).

    Raises ``ProtocolError`` for anything that is not a valid message of that kind."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError("malformed", f"expected bytes, got {type(data).__name__}")
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError("too_large", f"{len(data)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        decoder = _DECODERS[kind]
    except KeyError:
        raise TypeError(f"cannot decode as {kind!r}") from None
    try:
        message = decoder.decode(data)
    except msgspec.ValidationError as exc:
        version = _peek_version(data)
        if version is not None and version != PROTOCOL_VERSION:
            raise ProtocolError("version", f"protocol version {version}, this side speaks {PROTOCOL_VERSION}") from None
        raise ProtocolError(_classify(str(exc)), str(exc)) from None
    except (msgspec.DecodeError, RecursionError, ValueError) as exc:  # ValueError: e.g. invalid UTF-8
        raise ProtocolError("malformed", str(exc) or "undecodable bytes") from None
    if message.v != PROTOCOL_VERSION:
        raise ProtocolError("version", f"protocol version {message.v}, this side speaks {PROTOCOL_VERSION}")
    _check_values(message)
    return message


class _EStopPeek(msgspec.Struct):
    """The fields an e-stop request is recognised by; any others, and any types, are let through."""

    type: Any = None
    estop: Any = None
    reason: Any = None


_PEEK = msgspec.msgpack.Decoder(_EStopPeek)


class _CommandPeek(msgspec.Struct):
    """What the robot sorts a flood of commands by before decoding any in full (any types let through)."""

    type: Any = None
    estop: Any = None
    reason: Any = None
    session: Any = None
    seq: Any = None


_PEEK_COMMAND = msgspec.msgpack.Decoder(_CommandPeek)


@dataclass(frozen=True)
class CommandPeek:
    """A command's ``session`` and ``seq`` as far as they can be read (None where not a string or a
    non-negative integer), and the reason of the e-stop it asks for (None: asks for none; see
    ``estop_request``). A fraction of a full decode (0.3 µs against 8 µs here): the robot reads every
    pending command each period and decodes in full only the ones it judges."""

    session: str | None
    seq: int | None
    estop: str | None


def peek_command(data: bytes) -> CommandPeek:
    """``data``'s session, seq and e-stop request, as far as they can be read. Never raises."""
    try:
        peek = _PEEK_COMMAND.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, ValueError, TypeError):
        return CommandPeek(None, None, None)
    estop = None
    if peek.type == "estop" or peek.estop is True:
        estop = printable(peek.reason if isinstance(peek.reason, str) else "")
    session = peek.session if isinstance(peek.session, str) else None
    seq = peek.seq if isinstance(peek.seq, int) and not isinstance(peek.seq, bool) and peek.seq >= 0 else None
    return CommandPeek(session, seq, estop)


def estop_request(data: bytes | memoryview) -> str | None:
    """The reason of the e-stop that ``data`` asks for, whatever else is wrong with it (version, extra
    or missing fields, values out of range, too large): a map whose ``type`` is "estop", or whose
    ``estop`` is true (the flag of a command). None when it asks for no e-stop or is no map at all.
    The reason is printable text of at most ``MAX_REASON_CHARS`` characters ("" when it had none
    that could be read). Never raises."""
    try:
        peek = _PEEK.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, ValueError, TypeError):
        return None
    if peek.type != "estop" and peek.estop is not True:
        return None
    return printable(peek.reason if isinstance(peek.reason, str) else "")


def printable(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """``text`` cut to ``limit`` characters, each unprintable one (line breaks, NUL, escapes) a space:
    safe to log and to show, whoever wrote it."""
    return "".join(ch if ch.isprintable() else " " for ch in text[:limit])


def _classify(text: str) -> str:
    """Reason code for a msgspec validation message."""
    if text.startswith("Invalid value") and text.endswith("`$.type`"):
        return "unexpected_type"  # a well-formed message of another kind (or an unknown tag)
    if any(mark in text for mark in (">=", "<=", "length", "matching regex")):
        return "out_of_range"
    return "malformed"


def _peek_version(data: bytes) -> int | None:
    try:
        raw = msgspec.msgpack.decode(data)
    except (msgspec.DecodeError, RecursionError, ValueError):
        return None
    version = raw.get("v") if isinstance(raw, dict) else None
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def _check_values(message: msgspec.Struct) -> None:
    """Finite numbers everywhere, positions within ``MAX_POSITION_M``, unit quaternions."""
    for name in message.__struct_fields__:
        value = getattr(message, name)
        _check_value(f"{type(message).__name__}.{name}", value)
        if isinstance(value, Pose):
            _check_pose(f"{type(message).__name__}.{name}", value)
    if isinstance(message, Telemetry):
        for key, pose in message.objects.items():
            _check_pose(f"Telemetry.objects[{key!r}]", pose)
        if message.camera is not None:
            _check_pose("Telemetry.camera.pose", message.camera.pose)


def _check_value(where: str, value: Any) -> None:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ProtocolError("non_finite", f"{where} is {value}")
    elif isinstance(value, tuple | list):
        for i, item in enumerate(value):
            _check_value(f"{where}[{i}]", item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_value(f"{where}[{key!r}]", item)
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            _check_value(f"{where}.{name}", getattr(value, name))


def _check_pose(where: str, pose: Pose) -> None:
    _check_value(where, pose)
    if any(abs(c) > MAX_POSITION_M for c in pose.pos_m):
        raise ProtocolError("out_of_range", f"{where}.pos_m {pose.pos_m} beyond ±{MAX_POSITION_M} m")
    norm = math.sqrt(sum(q * q for q in pose.quat_xyzw))
    if abs(norm - 1.0) > 1e-3:
        raise ProtocolError("out_of_range", f"{where}.quat_xyzw has norm {norm:.4f}, not 1")

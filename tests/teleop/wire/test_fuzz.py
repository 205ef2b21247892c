"""Malformed input thrown at a running robot server: it never crashes, answers every control request,
counts what it rejects, and never moves the arm because of it — while a real console holds the arm."""

from __future__ import annotations

import threading
import time

import msgspec
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telesurg.teleop.robot.reader import read_topic
from telesurg.teleop.wire import protocol as p

pytestmark = pytest.mark.slow

VALID = [
    p.encode(p.Command(arm="psm1", session="1-abcdef01", seq=7, sent_console_s=1.0, target=p.Pose((0.0, -0.3, -0.06)))),
    p.encode(p.Hello(client="fuzz")),
    p.encode(p.Ping(t1_console_s=1.0, prev_t1_console_s=0.5, prev_t4_console_s=0.6)),
    p.encode(p.Engage(arm="psm1", client="fuzz")),
    p.encode(p.Disengage(session="1-abcdef01")),
    p.encode(p.LoadTask(task="Palpate", seed=3)),
]
FIELDS = ["type", "v", "arm", "session", "seq", "sent_console_s", "target", "jaw", "clutch", "estop", "client", "task"]
VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.text(max_size=80),
    st.booleans(),
    st.none(),
    st.lists(st.floats(), max_size=5),
    st.dictionaries(st.text(max_size=5), st.floats(), max_size=3),
    st.sampled_from(["cmd", "hello", "ping", "engage", "load_task", "telemetry", "estop", "reset"]),
)


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    b = bytearray(data)
    for index, value in edits:
        b[index % len(b)] = value
    return bytes(b[: max(1, len(b) - cut)])


def _is_valid(data: bytes) -> bool:
    for kind in (p.Command, p.Request):
        try:
            p.decode(data, kind)
            return True
        except p.ProtocolError:
            pass
    return False


MALFORMED = st.one_of(
    st.binary(max_size=400),
    st.builds(
        _mutate,
        st.sampled_from(VALID),
        st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
        st.integers(0, 8),
    ),
    st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=8).map(msgspec.msgpack.encode),
    st.just(b"\x80" * (p.MAX_MESSAGE_BYTES + 10)),
)


def test_malformed_messages_never_crash_the_server_or_move_the_arm(robot, client):
    r = robot()
    owner = client(r.endpoints, "owner")
    owner.connect()
    start = np.asarray(owner.telemetry().tool.pos_m)
    assert owner.engage().ok
    owner.drive(tuple(start), 0.2)

    # The real console keeps commanding "stay here" from its own thread while the fuzz runs.
    stop = threading.Event()

    def hold_still() -> None:
        while not stop.is_set():
            owner.link.ping()
            owner.link.poll_control()
            owner.link.poll_telemetry()
            owner.command(tuple(start))
            time.sleep(0.005)

    holder = threading.Thread(target=hold_still, daemon=True)
    holder.start()

    ctx = zmq.Context.instance()
    cmd = ctx.socket(zmq.PUB)
    cmd.setsockopt(zmq.LINGER, 0)
    cmd.connect(r.endpoints.url("cmd"))
    control = ctx.socket(zmq.DEALER)
    control.setsockopt(zmq.LINGER, 0)
    control.connect(r.endpoints.url("control"))
    time.sleep(0.2)
    sent = {"cmd": 0, "control": 0}
    replies = 0

    @settings(max_examples=1200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=MALFORMED, channel=st.sampled_from(["cmd", "control"]))
    def throw(data: bytes, channel: str) -> None:
        nonlocal replies
        if _is_valid(data) or p.estop_request(data) is not None:
            return  # well-formed input, or an e-stop however odd (it latches: tests/teleop/robot/test_estop.py)
        if channel == "cmd":
            cmd.send(data)
            time.sleep(0.003)  # the robot judges the newest command once per period
        else:
            control.send(data)
        sent[channel] += 1
        while control.poll(0):
            control.recv()
            replies += 1

    throw()
    deadline = time.monotonic() + 3.0
    while replies < sent["control"] and time.monotonic() < deadline:
        if control.poll(100):
            control.recv()
            replies += 1
    stop.set()
    holder.join(5)

    def control_rejections(t: p.Telemetry) -> int:
        return sum(v for k, v in t.counters.items() if k.startswith("control."))

    # Telemetry already in flight when the last reply arrived predates the last rejection: take the
    # first telemetry that has counted every control message (or the last one, and fail below).
    try:
        tel = owner.wait_for(lambda t: control_rejections(t) >= sent["control"], timeout_s=2.0)
    except TimeoutError:
        tel = owner.telemetry()
    cmd.close()
    control.close()
    assert sum(sent.values()) >= 1000, sent
    # Alive, answering and still the owner's.
    assert r.alive
    assert replies == sent["control"], (replies, sent)
    assert tel.state == "ENGAGED", (tel.state, tel.reason)
    rejected = {k: v for k, v in tel.counters.items() if k.split(".")[0] in ("cmd", "control") and k != "cmd.received"}
    assert sum(v for k, v in rejected.items() if k.startswith("control.")) >= sent["control"]
    assert sum(v for k, v in rejected.items() if k.startswith("cmd.")) > 0.5 * sent["cmd"]
    assert {"malformed", "too_large"} <= {k.split(".")[1] for k in rejected}, rejected
    r.stop()
    # The recording: only the owner's commands were applied, and the tool never left its place.
    applied = read_topic(r.record, "/robot/applied")
    assert {a["session"] for a in applied} == {owner.session}
    tips = np.array([s["tip_m"] for s in read_topic(r.record, "/robot/state")])
    assert np.max(np.linalg.norm(tips - start, axis=1)) < 0.0005

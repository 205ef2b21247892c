"""An e-stop request latches whatever else is wrong with it, on the control channel and as a
command's flag; an odd one is answered, counted and recorded as odd, never refused."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
import zmq

from teleop import protocol as p
from teleop.recorder import read_topic

pytestmark = pytest.mark.slow

V = p.PROTOCOL_VERSION
ODD_ESTOP_REQUESTS = {
    "reason over 256 characters": {"type": "estop", "v": V, "reason": "r" * 1000},
    "another protocol version": {"type": "estop", "v": 99, "reason": "v99"},
    "an unknown field": {"type": "estop", "v": V, "reason": "extra", "pedal": 3},
    "a reason that is not text": {"type": "estop", "v": V, "reason": 12},
    "a reason in bin, not str": {"type": "estop", "v": V, "reason": b"bytes"},
    "too large": {"type": "estop", "v": V, "reason": "x" * (p.MAX_MESSAGE_BYTES + 10)},
}
#: Valid requests, but their reason must not reach the log or the telemetry as it is.
HOSTILE_ESTOP_REQUESTS = {
    "control characters in the reason": {"type": "estop", "v": V, "reason": "line\nbreak\x00"},
    "no version": {"type": "estop", "reason": "no v\r\n"},
}


def _command(**fields) -> bytes:
    base = {
        "type": "cmd",
        "v": V,
        "arm": "psm1",
        "session": "1-abcdef01",
        "seq": 1,
        "sent_console_s": 1.0,
        "target": {"pos_m": [0.0, -0.3, -0.06], "quat_xyzw": [0.0, 0.0, 0.0, 1.0]},
        "estop": True,
    }
    base.update(fields)
    return msgspec.msgpack.encode(base)


ODD_ESTOP_COMMANDS = {
    "target out of reach": _command(target={"pos_m": [5.0, 0.0, 0.0], "quat_xyzw": [0, 0, 0, 1]}),
    "seq above 2^63-1": _command(seq=2**64 - 1),
    "another arm": _command(arm="psm9"),
    "jaw out of range": _command(jaw=3.0),
    "non-finite time": _command(sent_console_s=float("nan")),
    "another protocol version": _command(v=7),
}


def _tip(tel) -> np.ndarray:
    return np.asarray(tel.tool.pos_m)


def _reset(client) -> None:
    ack = client.link.request(p.Reset(client="test"))
    assert ack.ok, ack
    client.wait_for(lambda t: t.state == "IDLE")


def test_every_odd_estop_request_latches_and_is_counted(robot, client):
    r = robot()
    c = client(r.endpoints)
    c.connect()
    start = _tip(c.telemetry())
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.connect(r.endpoints.url("control"))
    for oddity, request in {**ODD_ESTOP_REQUESTS, **HOSTILE_ESTOP_REQUESTS}.items():
        assert c.engage().ok, oddity
        c.drive(tuple(start), 0.1)
        dealer.send(msgspec.msgpack.encode(request))
        assert dealer.poll(3000), oddity
        ack = p.decode(dealer.recv(), p.Response)
        assert isinstance(ack, p.Ack) and ack.ok and ack.request == "estop", (oddity, ack)
        tel = c.wait_for(lambda t: t.state == "ESTOP", timeout_s=3.0)
        assert len(tel.reason) < 400, oddity  # the text is cut, never taken whole
        assert "\n" not in tel.reason and "\x00" not in tel.reason, oddity
        _reset(c)
    # Split over two frames: still a stop.
    dealer.send_multipart([b"", msgspec.msgpack.encode({"type": "estop", "v": V})])
    assert dealer.poll(3000)
    assert p.decode(dealer.recv(), p.Response).ok
    tel = c.wait_for(lambda t: t.state == "ESTOP", timeout_s=3.0)
    assert tel.counters.get("control.estop_odd") == len(ODD_ESTOP_REQUESTS) + 1, tel.counters
    dealer.close(0)
    r.stop()
    estops = [e for e in read_topic(r.record, "/robot/events") if e["state"] == "ESTOP"]
    assert len(estops) == len(ODD_ESTOP_REQUESTS) + len(HOSTILE_ESTOP_REQUESTS) + 1
    assert sum("odd request" in e["reason"] for e in estops) == len(ODD_ESTOP_REQUESTS) + 1
    assert "line break" in r.output() and "line\nbreak" not in r.output()


def test_an_estop_flag_latches_in_any_odd_command(robot, client):
    r = robot()
    c = client(r.endpoints)
    c.connect()
    start = _tip(c.telemetry())
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.connect(r.endpoints.url("cmd"))
    for oddity, data in ODD_ESTOP_COMMANDS.items():
        assert c.engage().ok, oddity
        c.drive(tuple(start), 0.2)  # also gives the PUB socket time to join
        pub.send(data)
        tel = c.wait_for(lambda t: t.state == "ESTOP", timeout_s=3.0)
        assert "odd request" in tel.reason, (oddity, tel.reason)
        _reset(c)
    assert c.telemetry().counters.get("cmd.estop_odd") == len(ODD_ESTOP_COMMANDS)
    # The same odd commands without the flag stop nothing.
    assert c.engage().ok
    for data in ODD_ESTOP_COMMANDS.values():
        pub.send(msgspec.msgpack.encode({**msgspec.msgpack.decode(data), "estop": False}))
        c.drive(tuple(start), 0.05)
    assert c.telemetry().state == "ENGAGED"
    pub.close(0)
    r.stop()

"""An e-stop request latches whatever else is wrong with it, on the control channel and as a
command's flag; an odd one is answered, counted and recorded as odd, never refused."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
import zmq

from telesurg.teleop.robot.reader import read_topic
from telesurg.teleop.wire import protocol as p
from telesurg.teleop.wire.channels import ClientKeys, generate_keys

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


def _press(client, reason: str = "stranger's button") -> None:
    assert client.link.request(p.EStop(reason=reason)).ok


def test_only_the_owner_at_the_stop_may_reset_not_whoever_names_it(robot, client):
    r = robot()
    owner, stranger = client(r.endpoints, "owner"), client(r.endpoints, "stranger")
    owner.connect()
    stranger.connect()
    assert owner.engage().ok
    _press(stranger)
    owner.wait_for(lambda t: t.state == "ESTOP")
    # The stranger may not clear it, not even by calling itself the owner.
    for name in ("stranger", "owner"):
        ack = stranger.link.request(p.Reset(client=name))
        assert not ack.ok and "session owner" in ack.reason, ack
    assert stranger.telemetry().state == "ESTOP"
    assert owner.link.request(p.Reset(client="owner")).ok
    tel = owner.wait_for(lambda t: t.state == "IDLE")
    assert tel.counters.get("control.refused.reset") == 2
    r.stop()
    resets = [c for c in read_topic(r.record, "/robot/control") if c["request"] == "reset"]
    assert [c["ok"] for c in resets] == [False, False, True]
    assert "session owner at the stop" in resets[-1]["reason"]


def test_with_no_owner_at_the_stop_a_loopback_reset_is_allowed_and_recorded(robot, client):
    r = robot()
    a, b = client(r.endpoints, "a"), client(r.endpoints, "b")
    a.connect()
    b.connect()
    _press(a)
    b.wait_for(lambda t: t.state == "ESTOP")
    ack = b.link.request(p.Reset(client="b"))
    assert ack.ok and "robot host" in ack.reason, ack
    b.wait_for(lambda t: t.state == "IDLE")
    r.stop()
    resets = [c for c in read_topic(r.record, "/robot/control") if c["request"] == "reset"]
    assert len(resets) == 1 and resets[0]["ok"] and "no session owner at the stop" in resets[0]["reason"]


def test_under_curve_the_owners_key_or_a_reset_key_may_reset(robot, client, tmp_path):
    keys = tmp_path / "keys"
    generate_keys(keys, "robot")
    for name, role in (("surgeon", None), ("observer", None), ("charge-nurse", "reset")):
        generate_keys(keys / "authorized", name, role)
    r = robot(keys__secret_file=str(keys / "robot.key_secret"), keys__authorized_dir=str(keys / "authorized"))

    def keyed(name: str):
        c = client(r.endpoints, name, ClientKeys(keys / "authorized" / f"{name}.key_secret", keys / "robot.key"))
        c.connect()
        return c

    surgeon, observer, nurse = keyed("surgeon"), keyed("observer"), keyed("charge-nurse")
    assert surgeon.engage().ok
    _press(observer)
    surgeon.wait_for(lambda t: t.state == "ESTOP")
    refused = observer.link.request(p.Reset(client="surgeon"))
    assert not refused.ok and "reset role" in refused.reason, refused
    ack = nurse.link.request(p.Reset(client="charge-nurse"))
    assert ack.ok and "charge-nurse" in ack.reason, ack
    surgeon.wait_for(lambda t: t.state == "IDLE")
    # The owner is its key, not its connection: a new connection with the surgeon's key may reset.
    assert surgeon.engage().ok
    _press(observer)
    surgeon.wait_for(lambda t: t.state == "ESTOP")
    surgeon.close()
    again = keyed("surgeon")
    ack = again.link.request(p.Reset(client="surgeon"))
    assert ack.ok and "session owner" in ack.reason, ack
    r.stop()

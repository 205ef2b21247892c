"""A session belongs to the identity that engaged it (its CURVE key, or without CURVE its control
connection); refused handshakes leave a trace; removing a key revokes it without a restart."""

from __future__ import annotations

import time

import numpy as np
import pytest

from telesurg.teleop.robot.reader import read_topic
from telesurg.teleop.wire import protocol as p
from telesurg.teleop.wire.auth import fingerprint
from telesurg.teleop.wire.channels import ClientKeys, generate_keys

pytestmark = pytest.mark.slow


def _tip(tel) -> np.ndarray:
    return np.asarray(tel.tool.pos_m)


@pytest.fixture
def curve(tmp_path):
    """A robot with CURVE and the keys of a surgeon and an observer (both authorised) and a
    stranger (not); ``keyed(name)`` connects a client with that key."""
    keys = tmp_path / "keys"
    generate_keys(keys, "robot")
    for name in ("surgeon", "observer"):
        generate_keys(keys / "authorized", name)
    generate_keys(keys / "strangers", "stranger")

    def start(robot, client):
        r = robot(keys__secret_file=str(keys / "robot.key_secret"), keys__authorized_dir=str(keys / "authorized"))

        def keyed(name: str, folder: str = "authorized", connect: bool = True):
            c = client(r.endpoints, name, ClientKeys(keys / folder / f"{name}.key_secret", keys / "robot.key"))
            if connect:
                c.connect()
            return c

        return r, keyed, keys

    return start


def test_another_connection_cannot_end_the_session_with_its_id(robot, client):
    r = robot()
    owner, stranger = client(r.endpoints, "owner"), client(r.endpoints, "stranger")
    owner.connect()
    stranger.connect()
    assert owner.engage().ok
    ack = stranger.link.request(p.Disengage(session=owner.session))
    assert not ack.ok and "another connection" in ack.reason, ack
    tel = owner.wait_for(lambda t: t.counters.get("control.refused.disengage") == 1)
    assert tel.counters.get("control.refused.disengage") == 1
    # The session was still the owner's: its own disengage ends it.
    ack = owner.link.request(p.Disengage(session=owner.session))
    assert ack.ok, ack


def test_under_curve_the_owners_session_id_from_another_key_moves_nothing(robot, client, curve):
    _robot, keyed, _ = curve(robot, client)
    surgeon, observer = keyed("surgeon"), keyed("observer")
    assert surgeon.engage().ok
    start = _tip(surgeon.telemetry())
    surgeon.drive(tuple(start), 0.2)
    # The observer knows the session id: a far target with the largest sequence number.
    observer.session = surgeon.session
    observer.command(tuple(start + np.array([0.0, 0.0, 0.02])), seq=2**63 - 1)
    observer.drive(tuple(start + np.array([0.0, 0.0, 0.02])), 0.3)
    tel = surgeon.telemetry()
    assert tel.counters.get("cmd.foreign_identity", 0) > 0, tel.counters
    assert np.linalg.norm(_tip(tel) - start) < 0.0005
    # The surgeon was not locked out: its own commands still move the arm.
    surgeon.drive(tuple(start + np.array([0.005, 0.0, 0.0])), 0.8)
    tel = surgeon.telemetry()
    assert tel.state == "ENGAGED" and np.linalg.norm(_tip(tel) - (start + np.array([0.005, 0.0, 0.0]))) < 0.001


def test_a_refused_handshake_is_counted_logged_and_recorded(robot, client, curve):
    r, keyed, keys = curve(robot, client)
    surgeon = keyed("surgeon")
    stranger = keyed("stranger", folder="strangers", connect=False)
    with pytest.raises(Exception, match="no answer"):
        stranger.link.request(p.Hello(client="intruder"), timeout_s=1.0)
    tel = surgeon.wait_for(lambda t: t.counters.get("zap.unknown_key", 0) >= 1)
    assert tel.counters["zap.unknown_key"] >= 1
    stranger_key = (keys / "strangers" / "stranger.key").read_text().split('public-key = "')[1].split('"')[0]
    r.stop()
    assert f"with key {fingerprint(stranger_key)}: Unknown key" in r.output()
    assert "refused a connection from 127.0.0.1" in r.output()
    zap = [m for m in read_topic(r.record, "/robot/rejected") if m["channel"] == "zap"]
    assert zap and fingerprint(stranger_key) in zap[0]["detail"]


def test_removing_a_key_revokes_it_without_a_restart(robot, client, curve):
    _robot, keyed, keys = curve(robot, client)
    surgeon, observer = keyed("surgeon"), keyed("observer")
    assert surgeon.engage().ok
    start = _tip(surgeon.telemetry())
    surgeon.drive(tuple(start), 0.2)
    (keys / "authorized" / "surgeon.key").unlink()
    t0 = time.monotonic()
    tel = observer.wait_for(lambda t: t.state == "IDLE", timeout_s=5.0)
    assert time.monotonic() - t0 < 4.0 and "revoked" in tel.reason, tel.reason
    # Its requests and commands are refused now; its e-stop still latches.
    assert "revoked" in surgeon.link.request(p.Ping(t1_console_s=1.0)).reason
    surgeon.drive(tuple(start + np.array([0.0, 0.0, 0.02])), 0.2)
    tel = observer.telemetry()
    assert np.linalg.norm(_tip(tel) - start) < 0.0005 and tel.counters.get("cmd.revoked", 0) > 0
    assert surgeon.link.request(p.EStop(reason="still a stop")).ok
    observer.wait_for(lambda t: t.state == "ESTOP")
    # A new connection with the revoked key is refused at the handshake.
    again = keyed("surgeon", connect=False)
    with pytest.raises(Exception, match="no answer"):
        again.link.request(p.Hello(client="surgeon"), timeout_s=1.0)

"""ZeroMQ channels: loopback policy, refusing open ports without CURVE, key files, real loopback sockets.

Nothing here binds or connects to anything but loopback: the refusals are checked with a context
that fails the test if a socket is ever made."""

from __future__ import annotations

import re
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from telesurg.teleop.wire.channels import (
    ClientKeys,
    ClientSockets,
    Endpoints,
    KeyFileError,
    ServerKeys,
    ServerSockets,
    free_loopback_ports,
    generate_keys,
    is_loopback,
    load_public,
    load_secret,
)


class Tripwire:
    """A stand-in ZeroMQ context for the refusal tests: making any socket (or anything else) fails."""

    def __getattr__(self, name: str):
        raise AssertionError(f"the context was used ({name}) before the refusal")


@pytest.fixture
def context() -> Iterator[zmq.Context]:
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def endpoints() -> Endpoints:
    return Endpoints("127.0.0.1", *free_loopback_ports(3))


def recv(sock: zmq.Socket, timeout_s: float = 2.0) -> list[bytes] | None:
    return sock.recv_multipart() if sock.poll(int(timeout_s * 1000)) else None


def bind_again(endpoints: Endpoints, context: zmq.Context, timeout_s: float = 2.0) -> ServerSockets:
    """``ServerSockets`` on ports just released: ZeroMQ closes listeners in its I/O thread, so the
    ports come free shortly after ``close`` returns, not at once."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return ServerSockets(endpoints, None, context)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


# ---------------------------------------------------------------------- loopback policy
@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("*", False),
        ("::", False),
        ("192.168.1.2", False),
        ("10.0.0.1", False),
        ("robot.example.org", False),
        ("localhost.example.org", False),
        ("eth0", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    assert Endpoints(host=host).loopback is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "*", "192.168.1.2", "::", "robot.example.org"])
def test_server_refuses_a_non_loopback_host_without_keys_before_binding(host: str) -> None:
    with pytest.raises(
        ValueError, match=rf"refusing to listen on {re.escape(host)}, which is not loopback, without CURVE"
    ):
        ServerSockets(Endpoints(host=host), None, context=Tripwire())  # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.2", "robot.example.org"])
def test_client_refuses_a_non_loopback_host_without_keys_before_connecting(host: str) -> None:
    with pytest.raises(ValueError, match=rf"refusing to connect to {re.escape(host)}, .*without CURVE keys"):
        ClientSockets(Endpoints(host=host), None, context=Tripwire())  # type: ignore[arg-type]


def test_server_keys_are_checked_before_binding(tmp_path: Path) -> None:
    missing = ServerKeys(tmp_path / "robot.key_secret", tmp_path / "authorized")
    with pytest.raises(KeyFileError, match=r"robot\.key_secret not found"):
        ServerSockets(Endpoints(host="0.0.0.0"), missing, context=Tripwire())  # type: ignore[arg-type]
    _, secret = generate_keys(tmp_path, "robot")
    with pytest.raises(KeyFileError, match=r"authorised-keys folder .*authorized not found"):
        ServerSockets(Endpoints(host="0.0.0.0"), ServerKeys(secret, tmp_path / "authorized"), context=Tripwire())  # type: ignore[arg-type]
    public = tmp_path / "robot.key"
    with pytest.raises(KeyFileError, match="holds no secret key"):
        ServerSockets(Endpoints(host="0.0.0.0"), ServerKeys(public, tmp_path), context=Tripwire())  # type: ignore[arg-type]


def test_client_keys_are_checked_before_connecting(tmp_path: Path) -> None:
    _, secret = generate_keys(tmp_path, "console")
    with pytest.raises(KeyFileError, match=r"public key file .*robot\.key not found"):
        ClientSockets(Endpoints(host="192.168.1.2"), ClientKeys(secret, tmp_path / "robot.key"), context=Tripwire())  # type: ignore[arg-type]


# ---------------------------------------------------------------------- key files
def test_generate_keys_writes_a_public_and_a_private_secret_file(tmp_path: Path) -> None:
    folder = tmp_path / "keys" / "nested"  # made if missing
    public, secret = generate_keys(folder, "robot")
    assert (public, secret) == (folder / "robot.key", folder / "robot.key_secret")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    pub_from_secret, sec = load_secret(secret)
    assert load_public(public) == pub_from_secret
    assert len(pub_from_secret) == 40 and len(sec) == 40  # Z85 of 32-byte CURVE keys
    other_public, _ = generate_keys(folder, "console")
    assert load_public(other_public) != pub_from_secret


@pytest.mark.parametrize("existing", ["robot.key", "robot.key_secret"])
def test_generate_keys_refuses_to_overwrite(tmp_path: Path, existing: str) -> None:
    generate_keys(tmp_path, "robot")
    (tmp_path / ("robot.key_secret" if existing == "robot.key" else "robot.key")).unlink()
    before = (tmp_path / existing).read_bytes()
    with pytest.raises(FileExistsError, match=rf"{existing} exists; refusing to overwrite"):
        generate_keys(tmp_path, "robot")
    assert (tmp_path / existing).read_bytes() == before


def test_loading_keys_names_the_problem(tmp_path: Path) -> None:
    public, _ = generate_keys(tmp_path, "robot")
    with pytest.raises(KeyFileError, match=r"nope\.key_secret not found .*telesurg keys"):
        load_secret(tmp_path / "nope.key_secret")
    with pytest.raises(KeyFileError, match=r"nope\.key not found"):
        load_public(tmp_path / "nope.key")
    with pytest.raises(KeyFileError, match="holds no secret key"):
        load_secret(public)


# ---------------------------------------------------------------------- endpoints
def test_endpoints_urls() -> None:
    e = Endpoints("127.0.0.1", 6000, 6001, 6002)
    assert [e.url(c) for c in ("cmd", "telemetry", "control")] == [
        "tcp://127.0.0.1:6000",
        "tcp://127.0.0.1:6001",
        "tcp://127.0.0.1:6002",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cmd_port": 0}, "cmd_port must be a TCP port"),
        ({"telemetry_port": 65536}, "telemetry_port must be a TCP port"),
        ({"control_port": -1}, "control_port must be a TCP port"),
        ({"cmd_port": "5570"}, "cmd_port must be a TCP port"),
        ({"cmd_port": 5570.0}, "cmd_port must be a TCP port"),
        ({"cmd_port": 6000, "telemetry_port": 6000, "control_port": 6001}, "must differ"),
        ({"control_port": 5570}, "must differ"),
        ({"host": ""}, "host must not be empty"),
    ],
)
def test_endpoints_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Endpoints(**kwargs)


# ---------------------------------------------------------------------- real loopback sockets
def test_loopback_channels_carry_messages_both_ways(context: zmq.Context, endpoints: Endpoints) -> None:
    server = ServerSockets(endpoints, None, context)
    client = ClientSockets(endpoints, None, context)
    try:
        client.control.send(b"hello")
        ident, body = recv(server.control)
        assert body == b"hello"
        server.control.send_multipart([ident, b"welcome"])
        assert recv(client.control) == [b"welcome"]

        # PUB/SUB needs the subscription to arrive first: publish until one gets through.
        got = None
        for _ in range(200):
            server.telemetry.send(b"tel")
            got = recv(client.telemetry, 0.01)
            if got:
                break
        assert got == [b"tel"]
    finally:
        client.close()
        server.close()


def test_command_channel_keeps_only_the_newest_command(context: zmq.Context, endpoints: Endpoints) -> None:
    server = ServerSockets(endpoints, None, context)
    client = ClientSockets(endpoints, None, context)
    try:
        for _ in range(200):  # until the connection is up
            client.cmd.send(b"probe")
            if recv(server.cmd, 0.01):
                break
        else:
            pytest.fail("the command channel never connected")
        while recv(server.cmd, 0.05):
            pass
        # Spaced like a console's commands, so every one reaches the robot before it reads any.
        for i in range(10):
            client.cmd.send(b"cmd %d" % i)
            time.sleep(0.002)
        time.sleep(0.2)
        assert recv(server.cmd, 0.5) == [b"cmd 9"]
        assert recv(server.cmd, 0.1) is None  # the nine older ones were dropped, not queued
    finally:
        client.close()
        server.close()


def test_a_failed_bind_releases_the_ports_already_bound(context: zmq.Context, endpoints: Endpoints) -> None:
    blocker = context.socket(zmq.PAIR)
    blocker.bind(endpoints.url("control"))  # the last channel ServerSockets binds
    in_use = rf"^port {endpoints.control_port} \(control_port, --control-port\) is already in use by another program$"
    with pytest.raises(OSError, match=in_use) as failure:
        ServerSockets(endpoints, None, context)
    blocker.close(linger=0)
    # cmd and telemetry were bound before the failure; they must be free again. (The traceback keeps
    # the half-built object alive, so garbage collection cannot be what closes its sockets.)
    bind_again(endpoints, context).close()
    del failure


def test_closing_the_server_frees_its_ports(context: zmq.Context, endpoints: Endpoints) -> None:
    ServerSockets(endpoints, None, context).close()
    bind_again(endpoints, context).close()


def test_curve_lets_an_authorised_console_in_and_keeps_others_out(
    tmp_path: Path, context: zmq.Context, endpoints: Endpoints
) -> None:
    keys, authorized = tmp_path / "keys", tmp_path / "authorized"
    authorized.mkdir()
    robot_public, robot_secret = generate_keys(keys, "robot")
    console_public, console_secret = generate_keys(keys, "console")
    _, intruder_secret = generate_keys(keys, "intruder")
    shutil.copy(console_public, authorized / "console.key")

    server = ServerSockets(endpoints, ServerKeys(robot_secret, authorized), context)
    good = ClientSockets(endpoints, ClientKeys(console_secret, robot_public), context)
    bad = ClientSockets(endpoints, ClientKeys(intruder_secret, robot_public), context)
    plain = ClientSockets(endpoints, None, context)  # no CURVE at all (loopback allows trying)
    try:
        bad.control.send(b"from intruder")
        plain.control.send(b"from plain")
        good.control.send(b"from console")
        received = []
        while (msg := recv(server.control, 1.0)) is not None:
            received.append(msg[-1])
        assert received == [b"from console"]
    finally:
        for s in (good, bad, plain, server):
            s.close()

"""ZeroMQ channels of a teleoperation session: addresses, socket options and CURVE security.

Three channels, all bound by the robot and connected to by the console (see ``telesurg.teleop.wire.protocol``):

- cmd: console PUB → robot SUB, ``CONFLATE`` on both ends (only the newest command is ever queued);
- telemetry: robot PUB → console SUB;
- control: console DEALER ↔ robot ROUTER.

Addresses default to loopback. Binding anything else requires CURVE: the robot's secret key and a
folder of the public keys of consoles allowed in (ZeroMQ's ZAP handler checks every connection on
every channel, so a console without an authorised key never gets a message through). Keys are
ZeroMQ certificate files written by ``telesurg keys`` (``NAME.key`` public, ``NAME.key_secret``
secret). A public key in the authorised folder may carry a role in its ``metadata`` section
(``role = "reset"``, written by ``telesurg keys --role reset`` or added by the robot's operator).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from telesurg.teleop.wire.auth import ROLES, AuditedAuthenticator
from telesurg.teleop.wire.ports import bind_zmq

#: Socket high-water marks: bounded queues everywhere, so a flood costs memory never beyond this.
CONTROL_HWM = 100
TELEMETRY_HWM = 10
#: The largest frame the control socket takes: anything above ``protocol.MAX_MESSAGE_BYTES`` up to
#: this is answered ``too_large``; a larger frame makes ZeroMQ close that connection at its header
#: (what it had sent before and the robot had not answered yet is answered into a closed connection).
MAX_FRAME_BYTES = 32 << 20
#: The cmd socket (no replies to lose) drops a connection at a frame above this.
MAX_COMMAND_FRAME_BYTES = 1 << 20


@dataclass(frozen=True)
class Endpoints:
    """Where the robot listens: host (a loopback address by default) and one TCP port per channel."""

    host: str = "127.0.0.1"
    cmd_port: int = 5570
    telemetry_port: int = 5571
    control_port: int = 5572

    def __post_init__(self) -> None:
        for name in ("cmd_port", "telemetry_port", "control_port"):
            port = getattr(self, name)
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise ValueError(f"{name} must be a TCP port 1–65535, got {port!r}")
        if len({self.cmd_port, self.telemetry_port, self.control_port}) != 3:
            raise ValueError("cmd_port, telemetry_port and control_port must differ")
        if not self.host:
            raise ValueError("host must not be empty")

    def url(self, channel: str) -> str:
        return f"tcp://{self.host}:{getattr(self, f'{channel}_port')}"

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def free_loopback_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 right now (for tests and harness cells)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1); False for anything else,
    including the wildcard ``*``/``0.0.0.0``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServerKeys:
    """CURVE for the robot: its secret certificate and the folder of authorised console public keys."""

    secret_file: Path
    authorized_dir: Path


@dataclass(frozen=True)
class ClientKeys:
    """CURVE for a console: its own secret certificate and the robot's public certificate."""

    secret_file: Path
    server_public_file: Path


class KeyFileError(ValueError):
    """A missing or unreadable key file (named in the message)."""


def load_secret(path: Path) -> tuple[bytes, bytes]:
    path = Path(path)
    if not path.is_file():
        raise KeyFileError(f"CURVE secret key file {path} not found (make one with `telesurg keys`)")
    public, secret = zmq.auth.load_certificate(str(path))
    if secret is None:
        raise KeyFileError(f"{path} holds no secret key (use the .key_secret file)")
    return public, secret


def load_public(path: Path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise KeyFileError(f"CURVE public key file {path} not found (make one with `telesurg keys`)")
    public, _ = zmq.auth.load_certificate(str(path))
    return public


def generate_keys(folder: Path, name: str, role: str | None = None) -> tuple[Path, Path]:
    """Write ``NAME.key`` (public) and ``NAME.key_secret`` (secret, mode 0600) into ``folder``, the
    public one carrying ``role`` (one of ``ROLES``) when given. Refuses to overwrite existing files."""
    if role is not None and role not in ROLES:
        raise ValueError(f"unknown key role {role!r}; known: {', '.join(ROLES)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    for p in (public, secret):
        if p.exists():
            raise FileExistsError(f"{p} exists; refusing to overwrite a key")
    pub, sec = zmq.auth.create_certificates(str(folder), name)
    os.chmod(sec, 0o600)
    if role is not None:  # on the public certificate: the robot reads roles in its authorised-keys folder
        text = Path(pub).read_text()
        Path(pub).write_text(text.replace("\nmetadata\n", f'\nmetadata\n    role = "{role}"\n', 1))
    return Path(pub), Path(sec)


class ServerSockets:
    """The robot's three bound sockets (and the CURVE authenticator when keys are given)."""

    def __init__(self, endpoints: Endpoints, keys: ServerKeys | None, context: zmq.Context | None = None) -> None:
        if not endpoints.loopback and keys is None:
            raise ValueError(
                f"refusing to listen on {endpoints.host}, which is not loopback, without CURVE: "
                "give the robot a secret key and a folder of authorised console keys (`telesurg keys`)"
            )
        self.context = context or zmq.Context.instance()
        self.auth: AuditedAuthenticator | None = None
        secret: bytes | None = None
        if keys is not None:
            _, secret = load_secret(keys.secret_file)
            if not Path(keys.authorized_dir).is_dir():
                raise KeyFileError(f"authorised-keys folder {keys.authorized_dir} not found")
            self.auth = AuditedAuthenticator(self.context, Path(keys.authorized_dir))
            self.auth.start()
        try:
            self.cmd = self._bind(zmq.SUB, endpoints, "cmd", secret, conflate=True)
            self.cmd.setsockopt(zmq.SUBSCRIBE, b"")
            self.telemetry = self._bind(zmq.PUB, endpoints, "telemetry", secret)
            self.telemetry.setsockopt(zmq.SNDHWM, TELEMETRY_HWM)
            self.control = self._bind(zmq.ROUTER, endpoints, "control", secret)
            self.control.setsockopt(zmq.RCVHWM, CONTROL_HWM)
            self.control.setsockopt(zmq.SNDHWM, CONTROL_HWM)
            self.control.setsockopt(zmq.ROUTER_MANDATORY, 0)
        except Exception:
            self.close()
            raise

    def _bind(
        self, kind: int, endpoints: Endpoints, channel: str, secret: bytes | None, conflate: bool = False
    ) -> zmq.Socket:
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        if conflate:
            sock.setsockopt(zmq.CONFLATE, 1)
        if kind == zmq.ROUTER:
            sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        elif kind != zmq.PUB:
            sock.setsockopt(zmq.MAXMSGSIZE, MAX_COMMAND_FRAME_BYTES)
        if secret is not None:
            sock.curve_server = True
            sock.curve_secretkey = secret
        if not hasattr(self, "_sockets"):
            self._sockets: list[zmq.Socket] = []
        self._sockets.append(sock)
        key = f"{channel}_port"
        bind_zmq(sock, endpoints.host, getattr(endpoints, key), key)
        return sock

    def close(self) -> None:
        for sock in getattr(self, "_sockets", []):
            sock.close(linger=0)
        self._sockets = []
        if self.auth is not None:
            self.auth.stop()
            self.auth = None


class ClientSockets:
    """The console's three connected sockets."""

    def __init__(self, endpoints: Endpoints, keys: ClientKeys | None, context: zmq.Context | None = None) -> None:
        self.context = context or zmq.Context.instance()
        self._curve: tuple[bytes, bytes, bytes] | None = None
        if keys is not None:
            public, secret = load_secret(keys.secret_file)
            self._curve = (public, secret, load_public(keys.server_public_file))
        elif not endpoints.loopback:
            raise ValueError(
                f"refusing to connect to {endpoints.host}, which is not loopback, without CURVE keys "
                "(the robot requires them off loopback)"
            )
        self._sockets: list[zmq.Socket] = []
        # Only the newest command matters on this side too: a congested link must drop old ones, not new.
        self.cmd = self._connect(zmq.PUB, endpoints.url("cmd"), conflate=True)
        self.telemetry = self._connect(zmq.SUB, endpoints.url("telemetry"))
        self.telemetry.setsockopt(zmq.SUBSCRIBE, b"")
        self.telemetry.setsockopt(zmq.RCVHWM, 100)
        self.control = self._connect(zmq.DEALER, endpoints.url("control"))

    def _connect(self, kind: int, url: str, conflate: bool = False) -> zmq.Socket:
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        if conflate:
            sock.setsockopt(zmq.CONFLATE, 1)
        if self._curve is not None:
            public, secret, server = self._curve
            sock.curve_publickey = public
            sock.curve_secretkey = secret
            sock.curve_serverkey = server
        sock.connect(url)
        self._sockets.append(sock)
        return sock

    def close(self) -> None:
        for sock in self._sockets:
            sock.close(linger=0)
        self._sockets = []


def frame_property(frame: zmq.Frame, name: str) -> str:
    """A received frame's ZeroMQ property (``User-Id``: the CURVE key, Z85; ``Peer-Address``), ""
    when the connection has none (no CURVE, not TCP)."""
    try:
        return str(frame.get(name))
    except zmq.ZMQError:
        return ""

"""Listening on TCP ports, with one-line errors that say which setting chose the port.

Every port a telesurg process listens on comes from a config key that a command-line flag of the
same name also sets (``http_port`` and ``--http-port``, ``cmd_port`` and ``--cmd-port``), and
``launch/local.toml`` has a launch argument of the same name for each (``video_signal_port`` for
the media process's ``signal_port``). A port that cannot be bound raises ``PortError``::

    port 8080 (http_port, --http-port) is already in use by another program

Processes bind their ports before starting anything that would need cleaning up after a failure
(the media process binds before it starts its renderer child and shared-memory frame buffer).
"""

from __future__ import annotations

import errno
import socket

import zmq


class PortError(OSError):
    """A port that cannot be listened on; the message names the port and the key/flag that set it."""


def option_names(key: str) -> str:
    """``"http_port"`` → ``"http_port, --http-port"``: the config key and the flag that set a port."""
    return f"{key}, --{key.replace('_', '-')}"


def port_error(host: str, port: int, key: str, code: int | None, reason: str) -> PortError:
    """The ``PortError`` for a failed bind of ``host:port`` (``code``: its errno, ``reason``: its text)."""
    if code == errno.EADDRINUSE:
        return PortError(f"port {port} ({option_names(key)}) is already in use by another program")
    return PortError(f"cannot listen on {host}:{port} ({option_names(key)}): {reason}")


def bind_zmq(sock: zmq.Socket, host: str, port: int, key: str) -> None:
    """Bind a ZeroMQ socket to ``tcp://host:port``; ``PortError`` if it cannot."""
    try:
        sock.bind(f"tcp://{host}:{port}")
    except zmq.ZMQError as exc:
        raise port_error(host, port, key, exc.errno, exc.strerror) from None


def listen_tcp(host: str, port: int, key: str) -> list[socket.socket]:
    """Bound (not yet listening) TCP sockets for ``host:port``, one per address ``host`` resolves to,
    as ``loop.create_server(host, port)`` would make them; ``PortError`` if one cannot be bound."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise port_error(host, port, key, None, f"unknown host ({exc.strerror})") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does: TIME_WAIT is no conflict
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise port_error(host, port, key, exc.errno, exc.strerror or str(exc)) from None
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets

"""A TCP proxy that puts an emulated network between two hosts (the engine of ``telesurg netem``), for
a console and a robot on different machines where kernel ``tc netem`` is not available.

For each ``Route`` (listen host:port → target host:port) the proxy accepts connections, opens one
connection to the target per accepted one, and forwards bytes both ways through its own
``telesurg.teleop.netem.model.LinkModel`` per direction: **up** = client → target, **down** = target → client. For
the telesurg channels the console is the client and the robot the target, so *up* is console →
robot on every channel (commands, control requests) and *down* robot → console (telemetry, control
replies); ZeroMQ's own handshakes and subscriptions ride along both ways.

Semantics (see ``telesurg.teleop.netem.model`` for the model):

- Byte level, TCP-faithful only: each chunk read from a socket (up to ``CHUNK_BYTES``) is one
  "message" of its size: it is delayed (jitter, loss as retransmission delay, bandwidth cap,
  outages), never dropped, duplicated or reordered. Specs with ``mode=message`` are refused:
  dropping bytes out of a TCP stream would corrupt it, not emulate UDP.
- Outages are timed from the proxy's start, the same schedule for every connection (a connection
  opened later is not re-anchored). Bytes sent during an outage are held and delivered after it
  ends, in order; a connection accepted during an up-link outage is connected to the target only
  when that outage ends. Connections are never broken by the proxy.
- Opening the connection to the target adds no emulated delay; all bytes over it do (ZeroMQ's
  greeting and CURVE handshake included). The proxy never parses bytes, so it is transparent to
  ZeroMQ with or without CURVE (and adds no security of its own).
- The end of a stream (FIN) travels through the link like a zero-byte chunk; when it is delivered,
  or either socket fails, both connections are closed.
- Each direction holds at most ``MAX_QUEUED_BYTES`` not yet delivered; beyond that the proxy stops
  reading from the sender until the queue drains (TCP flow control), so memory stays bounded.
- Listening on anything but loopback needs ``allow_remote=True`` (the proxy has no access control).

Use::

    routes = channel_routes(Endpoints("10.0.0.5"))          # 127.0.0.1:6570–6572 → 10.0.0.5:5570–5572
    serve_proxy(routes, LinkSpec.parse("delay=100ms jitter=10ms loss=1%"), LinkSpec.parse("delay=100ms"))
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from telesurg.teleop.netem.model import LinkModel
from telesurg.teleop.netem.spec import LinkSpec, LinkSpecError
from telesurg.teleop.wire.channels import Endpoints, is_loopback

#: Largest chunk read from a socket at once (bytes); each chunk is one message to the link model.
CHUNK_BYTES = 65_536
#: Bytes one direction of one connection may hold undelivered before the proxy stops reading.
MAX_QUEUED_BYTES = 8 << 20
#: Default listen side of ``channel_routes``: the telesurg channels' ports plus 1000, on loopback.
DEFAULT_LISTEN = Endpoints("127.0.0.1", 6570, 6571, 6572)
CHANNELS = ("cmd", "telemetry", "control")

_ROUTE = re.compile(
    r"^(?:(?P<lhost>\[[^\]]+\]|[^:\[\]]+):)?(?P<lport>\d+):(?P<thost>\[[^\]]+\]|[^:\[\]]+):(?P<tport>\d+)$"
)


@dataclass(frozen=True)
class Route:
    """Accept on ``listen_host:listen_port`` (port 0: any free port) and forward to ``target_host:target_port``."""

    listen_host: str
    listen_port: int
    target_host: str
    target_port: int

    def __post_init__(self) -> None:
        for name, low in (("listen_port", 0), ("target_port", 1)):
            port = getattr(self, name)
            if isinstance(port, bool) or not isinstance(port, int) or not low <= port <= 65535:
                raise ValueError(f"{name} must be a TCP port {low}–65535, got {port!r}")
        if not self.listen_host or not self.target_host:
            raise ValueError("listen_host and target_host must not be empty")

    @classmethod
    def parse(cls, text: str) -> Route:
        """``[LISTEN_HOST:]LISTEN_PORT:TARGET_HOST:TARGET_PORT`` (as ``ssh -L``; IPv6 hosts in
        brackets); the listen host defaults to 127.0.0.1."""
        match = _ROUTE.match(text.strip())
        if match is None:
            raise ValueError(
                f"route {text!r}: write [LISTEN_HOST:]LISTEN_PORT:TARGET_HOST:TARGET_PORT, e.g. 6570:robot:5570"
            )
        return cls(
            (match["lhost"] or "127.0.0.1").strip("[]"),
            int(match["lport"]),
            match["thost"].strip("[]"),
            int(match["tport"]),
        )

    def __str__(self) -> str:
        return f"{_hostport(self.listen_host, self.listen_port)} → {_hostport(self.target_host, self.target_port)}"


def channel_routes(target: Endpoints, listen: Endpoints = DEFAULT_LISTEN) -> list[Route]:
    """Routes for the three telesurg channels: ``listen``'s cmd/telemetry/control ports → ``target``'s.
    Point the console at ``listen`` and the robot binds ``target`` as usual."""
    return [
        Route(listen.host, getattr(listen, f"{c}_port"), target.host, getattr(target, f"{c}_port")) for c in CHANNELS
    ]


@dataclass
class DirectionStats:
    """Totals for one direction over all connections: bytes and chunks delivered, and what is held
    now (read, not yet delivered)."""

    bytes_forwarded: int = 0
    chunks_forwarded: int = 0
    queued_bytes: int = 0
    queued_chunks: int = 0

    def line(self) -> str:
        return (
            f"{self.bytes_forwarded} B in {self.chunks_forwarded} chunks, "
            f"queue {self.queued_bytes} B/{self.queued_chunks} chunks"
        )


@dataclass(frozen=True)
class ProxyStats:
    """A snapshot of the proxy's counters."""

    up: DirectionStats
    down: DirectionStats
    connections_open: int
    connections_total: int
    connect_failures: int

    def line(self) -> str:
        return (
            f"up {self.up.line()}; down {self.down.line()}; connections {self.connections_open} open, "
            f"{self.connections_total} total, {self.connect_failures} failed to reach the target"
        )


@dataclass
class _Pump:
    """One direction of one connection: read chunks, hold each until the model delivers it, write."""

    model: LinkModel
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    stats: DirectionStats
    queue: deque[tuple[float, bytes]] = field(default_factory=deque)
    queued_bytes: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    drained: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        """Until the sender's end of stream has been delivered; raises if a socket fails."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._read())
                group.create_task(self._write())
        finally:
            self.stats.queued_bytes -= self.queued_bytes
            self.stats.queued_chunks -= len(self.queue)

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await self.reader.read(CHUNK_BYTES)
            (due_s,) = self.model.deliveries(loop.time(), len(data))  # tcp mode: exactly one, in order
            self.queue.append((due_s, data))
            self.queued_bytes += len(data)
            self.stats.queued_bytes += len(data)
            self.stats.queued_chunks += 1
            self.arrived.set()
            if not data:
                return
            while self.queued_bytes > MAX_QUEUED_BYTES:
                self.drained.clear()
                await self.drained.wait()

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                self.arrived.clear()
                await self.arrived.wait()
            due_s, data = self.queue[0]
            wait_s = due_s - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            self.queue.popleft()
            self.queued_bytes -= len(data)
            self.stats.queued_bytes -= len(data)
            self.stats.queued_chunks -= 1
            self.drained.set()
            if not data:
                return
            self.writer.write(data)
            await self.writer.drain()
            self.stats.bytes_forwarded += len(data)
            self.stats.chunks_forwarded += 1


class LinkProxy:
    """The proxy for ``routes``, with link ``up`` (client → target) and ``down`` (target → client).

    ``async with LinkProxy(...) as proxy:`` starts listening; ``proxy.addresses`` are the bound
    (host, port) pairs (useful with port 0); ``proxy.start_s`` is the event loop's time at the start,
    the zero of the outage schedule; ``proxy.stats()`` a snapshot of the counters.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        up: LinkSpec,
        down: LinkSpec,
        *,
        allow_remote: bool = False,
        log: Callable[[str], None] = print,
    ) -> None:
        if not routes:
            raise ValueError("netem proxy: no routes to forward")
        for name, spec in (("up", up), ("down", down)):
            if spec.mode != "tcp":
                raise LinkSpecError(
                    f"{name} link: mode={spec.mode} cannot be emulated on a TCP byte stream (dropping bytes "
                    "would corrupt it); use mode=tcp, where loss becomes retransmission delay"
                )
        remote = [r for r in routes if not is_loopback(r.listen_host)]
        if remote and not allow_remote:
            raise ValueError(
                f"refusing to listen on {remote[0].listen_host}, which is not loopback: the proxy has no access "
                "control; allow it explicitly (allow_remote / --allow-remote) on a trusted network"
            )
        self.routes = list(routes)
        self.up = up
        self.down = down
        self.log = log
        self.start_s = 0.0
        self.addresses: list[tuple[str, int]] = []
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._up_stats = DirectionStats()
        self._down_stats = DirectionStats()
        self._open = 0
        self._failures = 0
        self._total = 0

    async def start(self) -> None:
        """Listen on every route (raises ``OSError`` naming the address if one cannot be bound)."""
        self.start_s = asyncio.get_running_loop().time()
        try:
            for index, route in enumerate(self.routes):
                try:
                    server = await asyncio.start_server(
                        lambda r, w, i=index: self._accept(r, w, i), route.listen_host, route.listen_port
                    )
                except OSError as exc:
                    raise OSError(
                        f"cannot listen on {_hostport(route.listen_host, route.listen_port)}: {exc}"
                    ) from None
                self._servers.append(server)
                host, port = server.sockets[0].getsockname()[:2]
                self.addresses.append((host, port))
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop listening and close every connection (undelivered bytes are dropped)."""
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers = []

    async def __aenter__(self) -> LinkProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def stats(self) -> ProxyStats:
        return ProxyStats(
            up=DirectionStats(**vars(self._up_stats)),
            down=DirectionStats(**vars(self._down_stats)),
            connections_open=self._open,
            connections_total=self._total,
            connect_failures=self._failures,
        )

    def ready_line(self) -> str:
        routes = ", ".join(
            f"{_hostport(host, port)} → {_hostport(r.target_host, r.target_port)}"
            for (host, port), r in zip(self.addresses, self.routes, strict=True)
        )
        return f"netem listening on {routes}; up (client → target): {self.up}; down (target → client): {self.down}"

    # ------------------------------------------------------------------ connections
    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, route_index: int) -> None:
        task = asyncio.get_running_loop().create_task(self._connection(reader, writer, route_index))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connection(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter, route_index: int
    ) -> None:
        loop = asyncio.get_running_loop()
        route = self.routes[route_index]
        serial = self._total
        self._total += 1
        up_model = LinkModel(self.up, self.start_s, stream=2 * serial)
        down_model = LinkModel(self.down, self.start_s, stream=2 * serial + 1)
        writers = [client_writer]
        self._open += 1
        try:
            now = loop.time()
            await asyncio.sleep(up_model.next_up(now) - now)  # a SYN cannot cross a dead link
            try:
                target_reader, target_writer = await asyncio.open_connection(route.target_host, route.target_port)
            except OSError as exc:
                self._failures += 1
                self.log(f"netem: cannot reach {_hostport(route.target_host, route.target_port)}: {exc}")
                return
            writers.append(target_writer)
            pumps = [
                asyncio.create_task(_Pump(up_model, client_reader, target_writer, self._up_stats).run()),
                asyncio.create_task(_Pump(down_model, target_reader, client_writer, self._down_stats).run()),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in pumps:
                    task.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            self._open -= 1
            for w in writers:
                w.close()
            for w in writers:
                with contextlib.suppress(Exception):
                    await w.wait_closed()


async def run_proxy(
    routes: Sequence[Route],
    up: LinkSpec,
    down: LinkSpec,
    *,
    stop: asyncio.Event | None = None,
    allow_remote: bool = False,
    stats_every_s: float = 5.0,
    log: Callable[[str], None] = print,
) -> ProxyStats:
    """Run the proxy until ``stop`` is set (forever without one): log the ready line
    ("netem listening on …") once listening, then one stats line every ``stats_every_s``; return the
    final counters."""
    if not stats_every_s > 0:
        raise ValueError(f"stats_every_s must be positive, got {stats_every_s}")
    stop = stop or asyncio.Event()
    proxy = LinkProxy(routes, up, down, allow_remote=allow_remote, log=log)
    async with proxy:
        log(proxy.ready_line())
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), stats_every_s)
            log(f"netem {loop.time() - proxy.start_s:.0f} s: {proxy.stats().line()}")
        return proxy.stats()


def serve_proxy(
    routes: Sequence[Route],
    up: LinkSpec,
    down: LinkSpec,
    *,
    allow_remote: bool = False,
    stats_every_s: float = 5.0,
    log: Callable[[str], None] | None = None,
) -> int:
    """``run_proxy`` until SIGINT or SIGTERM; returns 0 (the exit status). Invalid arguments raise
    ``ValueError`` (``LinkSpecError`` included) and an unusable listen address ``OSError``, each with
    a one-line message."""

    def _print(line: str) -> None:
        print(line, flush=True)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await run_proxy(
                routes, up, down, stop=stop, allow_remote=allow_remote, stats_every_s=stats_every_s, log=log or _print
            )
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    asyncio.run(main())
    return 0


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

"""The netem TCP proxy over real loopback connections: added delay both ways, outages holding data
back without losing or reordering it, ZeroMQ with CURVE passing through untouched, closes
propagating, bounded queues, and the refusals. Only loopback addresses are ever used."""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import zmq
import zmq.asyncio

from telesurg.teleop.netem import proxy as netem_proxy
from telesurg.teleop.netem.proxy import LinkProxy, Route, channel_routes, run_proxy
from telesurg.teleop.netem.spec import LinkSpec, LinkSpecError
from telesurg.teleop.wire.channels import Endpoints

REPO = Path(__file__).resolve().parents[3]
SLACK_S = 0.08  # scheduling noise allowed on top of the emulated delay on a loaded CI machine

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _target(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_delay_is_added_in_each_direction() -> None:
    async def round_trips(spec: LinkSpec) -> tuple[list[float], netem_proxy.ProxyStats]:
        loop = asyncio.get_running_loop()
        server, port = await _target(_echo)
        async with server, LinkProxy([Route("127.0.0.1", 0, "127.0.0.1", port)], spec, spec) as proxy:
            reader, writer = await asyncio.open_connection(*proxy.addresses[0])
            rtts = []
            for _ in range(5):
                t0 = loop.time()
                writer.write(b"x" * 100)
                await reader.readexactly(100)
                rtts.append(loop.time() - t0)
            writer.close()
            return rtts, proxy.stats()

    plain, _ = asyncio.run(round_trips(LinkSpec()))
    delayed, stats = asyncio.run(round_trips(LinkSpec.parse("delay=50ms")))
    assert max(plain) < 0.02  # the proxy itself adds next to nothing
    assert min(delayed) >= 0.100  # 50 ms up + 50 ms down
    assert max(delayed) < 0.100 + SLACK_S
    assert stats.up.bytes_forwarded == stats.down.bytes_forwarded == 500
    assert stats.up.chunks_forwarded == stats.down.chunks_forwarded == 5
    assert stats.connections_total == stats.connections_open == 1


def test_an_outage_holds_data_back_until_it_ends_without_loss_or_reordering() -> None:
    record = struct.Struct("!Id")  # sequence number, send time on the loop clock
    arrivals: list[tuple[int, float, float]] = []

    async def collect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                seq, sent = record.unpack(await reader.readexactly(record.size))
                arrivals.append((seq, sent, loop.time()))
        except asyncio.IncompleteReadError:
            writer.close()

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        server, port = await _target(collect)
        up = LinkSpec.parse("delay=10ms outage=400ms@300ms")
        async with server, LinkProxy([Route("127.0.0.1", 0, "127.0.0.1", port)], up, LinkSpec()) as proxy:
            _, writer = await asyncio.open_connection(*proxy.addresses[0])
            for seq in range(50):  # one record every 20 ms for 1 s
                writer.write(record.pack(seq, loop.time()))
                await writer.drain()
                await asyncio.sleep(proxy.start_s + 0.020 * (seq + 1) - loop.time())
            await asyncio.sleep(0.2)
            writer.close()
            return proxy.start_s

    start = asyncio.run(scenario())
    assert [seq for seq, _, _ in arrivals] == list(range(50))  # none lost, order kept
    t1, t2, margin = start + 0.300, start + 0.700, 0.010
    inside = [(sent, got) for _, sent, got in arrivals if t1 + margin <= sent < t2 - margin]
    outside = [(sent, got) for _, sent, got in arrivals if sent < t1 - margin or sent >= t2 + margin]
    assert len(inside) >= 15 and len(outside) >= 25
    assert all(got >= t2 + 0.010 for _, got in inside)  # held until the outage ends, then the delay
    assert max(got for _, got in inside) < t2 + 0.010 + SLACK_S  # then released together
    assert all(sent + 0.010 <= got < sent + 0.010 + SLACK_S for sent, got in outside)


def test_zeromq_with_curve_passes_through() -> None:
    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()

    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        ctx = zmq.asyncio.Context()
        router = ctx.socket(zmq.ROUTER)
        dealer = ctx.socket(zmq.DEALER)
        try:
            router.curve_server = True
            router.curve_secretkey = server_secret
            port = router.bind_to_random_port("tcp://127.0.0.1")
            spec = LinkSpec.parse("delay=20ms jitter=2ms")
            async with LinkProxy([Route("127.0.0.1", 0, "127.0.0.1", port)], spec, spec) as proxy:
                dealer.curve_publickey, dealer.curve_secretkey = client_public, client_secret
                dealer.curve_serverkey = server_public
                dealer.connect("tcp://{}:{}".format(*proxy.addresses[0]))
                rtts = []
                for i in range(5):
                    t0 = loop.time()
                    await dealer.send(b"ping %d" % i)
                    ident, body = await asyncio.wait_for(router.recv_multipart(), 5.0)
                    assert body == b"ping %d" % i
                    await router.send_multipart([ident, b"pong %d" % i])
                    assert await asyncio.wait_for(dealer.recv(), 5.0) == b"pong %d" % i
                    rtts.append(loop.time() - t0)
                return rtts
        finally:
            dealer.close(linger=0)
            router.close(linger=0)
            ctx.term()

    rtts = asyncio.run(scenario())
    assert min(rtts[1:]) >= 0.040 - 4 * 0.002 * 2  # 20 ms each way, ± jitter
    assert max(rtts[1:]) < 0.040 + SLACK_S


@pytest.mark.parametrize("closer", ["client", "target"])
def test_closing_either_side_closes_the_other_after_the_delay(closer: str) -> None:
    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        target_side: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = loop.create_future()

        async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            target_side.set_result((reader, writer))

        server, port = await _target(keep)
        spec = LinkSpec.parse("delay=50ms")
        async with server, LinkProxy([Route("127.0.0.1", 0, "127.0.0.1", port)], spec, spec) as proxy:
            client = await asyncio.open_connection(*proxy.addresses[0])
            target = await asyncio.wait_for(target_side, 5.0)
            closing, other = (client, target) if closer == "client" else (target, client)
            t0 = loop.time()
            closing[1].close()
            assert await asyncio.wait_for(other[0].read(), 5.0) == b""
            other[1].close()
            return loop.time() - t0

    assert 0.050 <= asyncio.run(scenario()) < 0.050 + SLACK_S


def test_queues_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    limit = 64 << 10
    monkeypatch.setattr(netem_proxy, "MAX_QUEUED_BYTES", limit)

    async def scenario() -> tuple[int, int]:
        received = 0

        async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal received
            while data := await reader.read(65536):
                received += len(data)

        server, port = await _target(count)
        up = LinkSpec.parse("delay=300ms")
        async with server, LinkProxy([Route("127.0.0.1", 0, "127.0.0.1", port)], up, LinkSpec()) as proxy:
            _, writer = await asyncio.open_connection(*proxy.addresses[0])
            writer.write(b"\0" * (1 << 20))
            await asyncio.sleep(0.15)
            queued = proxy.stats().up.queued_bytes
            await asyncio.sleep(0.5)
            writer.close()
            return queued, received

    queued, received = asyncio.run(scenario())
    assert 0 < queued <= limit + netem_proxy.CHUNK_BYTES  # without flow control it would hold 1 MiB
    assert received > 0


def test_run_proxy_logs_a_ready_line_and_stats_and_stops() -> None:
    lines: list[str] = []

    async def scenario() -> netem_proxy.ProxyStats:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.35, stop.set)
        route = Route("127.0.0.1", 0, "127.0.0.1", 5570)
        return await run_proxy(
            [route], LinkSpec.parse("delay=5ms"), LinkSpec(), stop=stop, stats_every_s=0.1, log=lines.append
        )

    stats = asyncio.run(scenario())
    assert lines[0].startswith("netem listening on 127.0.0.1:")
    assert "→ 127.0.0.1:5570; up (client → target): delay=5ms; down (target → client): none" in lines[0]
    assert len(lines) >= 4
    assert all(line.startswith("netem ") and "up 0 B in 0 chunks, queue 0 B/0 chunks" in line for line in lines[1:])
    assert stats.connections_total == 0


def test_serve_proxy_stops_on_sigint() -> None:
    code = (
        "from telesurg.teleop.netem.proxy import Route, serve_proxy; from telesurg.teleop.netem.spec import LinkSpec; "
        "raise SystemExit(serve_proxy([Route('127.0.0.1', 0, '127.0.0.1', 5570)], LinkSpec(), LinkSpec()))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("netem listening on 127.0.0.1:")
        time.sleep(0.1)
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------- refusals and routes
def test_message_mode_is_refused() -> None:
    route = Route("127.0.0.1", 0, "127.0.0.1", 5570)
    with pytest.raises(LinkSpecError, match="down link: mode=message cannot be emulated on a TCP byte stream"):
        LinkProxy([route], LinkSpec(), LinkSpec(mode="message"))


def test_listening_off_loopback_needs_explicit_permission() -> None:
    route = Route("0.0.0.0", 0, "127.0.0.1", 5570)
    with pytest.raises(ValueError, match=r"refusing to listen on 0\.0\.0\.0, which is not loopback"):
        LinkProxy([route], LinkSpec(), LinkSpec())
    LinkProxy([route], LinkSpec(), LinkSpec(), allow_remote=True)  # constructing binds nothing


def test_an_unreachable_target_closes_the_client_and_is_counted() -> None:
    async def scenario() -> tuple[bytes, int]:
        closed, free_port = await _target(_echo)
        closed.close()
        await closed.wait_closed()
        logs: list[str] = []
        async with LinkProxy(
            [Route("127.0.0.1", 0, "127.0.0.1", free_port)], LinkSpec(), LinkSpec(), log=logs.append
        ) as proxy:
            reader, writer = await asyncio.open_connection(*proxy.addresses[0])
            data = await asyncio.wait_for(reader.read(), 5.0)
            writer.close()
            assert logs and logs[0].startswith(f"netem: cannot reach 127.0.0.1:{free_port}")
            return data, proxy.stats().connect_failures

    assert asyncio.run(scenario()) == (b"", 1)


@pytest.mark.parametrize(
    ("text", "route"),
    [
        ("6570:robot:5570", Route("127.0.0.1", 6570, "robot", 5570)),
        ("0.0.0.0:6570:10.0.0.5:5570", Route("0.0.0.0", 6570, "10.0.0.5", 5570)),
        ("[::1]:6570:[fd00::5]:5570", Route("::1", 6570, "fd00::5", 5570)),
    ],
)
def test_route_parse(text: str, route: Route) -> None:
    assert Route.parse(text) == route


@pytest.mark.parametrize("text", ["6570", "robot:5570", "6570:robot:99999", "a:b:c:d:e"])
def test_bad_routes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"route|port"):
        Route.parse(text)


def test_channel_routes_map_the_three_channels() -> None:
    routes = channel_routes(Endpoints("10.0.0.5"))
    assert routes == [
        Route("127.0.0.1", 6570, "10.0.0.5", 5570),
        Route("127.0.0.1", 6571, "10.0.0.5", 5571),
        Route("127.0.0.1", 6572, "10.0.0.5", 5572),
    ]
    assert str(routes[0]) == "127.0.0.1:6570 → 10.0.0.5:5570"

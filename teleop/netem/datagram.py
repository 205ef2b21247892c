"""The link model on datagrams: adapters that put a ``telesurg.teleop.netem.model.LinkModel`` between an
asyncio datagram receiver or sender and its user, each datagram delayed, jittered, dropped or held
per the model (always message level: over UDP loss is loss and an outage drops). The video path
fits them onto aiortc's ICE transports (``telesurg.teleop.video.aiortc_patches.emulate_link``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from telesurg.teleop.netem.model import LinkModel

Clock = Callable[[], float]


class DelayedRecv:
    """Wraps a datagram receiver (``await recv()``): a pump reads the real datagrams and releases each
    at its emulated arrival time (or drops it) into a queue the caller reads."""

    def __init__(self, recv: Callable[[], Awaitable[bytes]], model: LinkModel, clock: Clock) -> None:
        self._recv, self._model, self._clock = recv, model, clock
        self._queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None

    async def __call__(self) -> bytes:
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._run())
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await self._recv()
            except BaseException as exc:  # the connection closed: hand the error on, in order
                self._queue.put_nowait(exc)
                return
            now = self._clock()
            for at in self._model.deliveries(now, len(data)):
                loop.call_later(max(0.0, at - now), self._queue.put_nowait, data)


class DelayedSend:
    """Wraps a datagram sender (``await send(data)``): each datagram leaves at its emulated time (or never)."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]], model: LinkModel, clock: Clock) -> None:
        self._send, self._model, self._clock = send, model, clock
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, data: bytes) -> None:
        now = self._clock()
        for at in self._model.deliveries(now, len(data)):
            if at <= now:
                await self._send(data)
            else:
                task = asyncio.get_running_loop().create_task(self._later(at - now, data))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _later(self, delay_s: float, data: bytes) -> None:
        await asyncio.sleep(delay_s)
        with contextlib.suppress(ConnectionError):
            await self._send(data)

"""The renderer's frames in the media process: ``FrameSource`` starts the renderer child
(``telesurg.teleop.video.renderer``), receives each frame's metadata over a pipe and its pixels through
shared memory (``telesurg.teleop.video.frames``), and hands the newest frame to whoever awaits it; nothing
queues (a slow consumer skips frames)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import time
from dataclasses import dataclass

import numpy as np

from telesurg.teleop.video.frames import FrameBuffer, FrameMeta
from telesurg.teleop.video.renderer import RendererConfig, run_renderer

log = logging.getLogger("telesurg.video")


@dataclass
class Frame:
    """The newest frame: image (height, width, 3 RGB uint8), its metadata and when it was ready."""

    image: np.ndarray
    meta: FrameMeta
    ready_s: float


class FrameSource:
    """Owns the renderer process and the newest frame it produced (see the module docstring)."""

    def __init__(self, config: RendererConfig) -> None:
        self.config = config
        self.newest: Frame | None = None
        self.frames = 0
        self.torn = 0
        self._event = asyncio.Event()
        self._fb = FrameBuffer(config.width, config.height, create=True)
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe(duplex=False)
        self._stop = ctx.Event()
        self._proc = ctx.Process(
            target=run_renderer, args=(config, self._fb.name, child_conn, self._stop), name="telesurg-renderer"
        )
        try:
            self._proc.start()
        except BaseException:  # nothing may outlive us: the frame buffer is in shared memory
            self._conn.close()
            self._fb.close()
            raise
        finally:
            child_conn.close()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._conn.fileno(), self._on_frames)
        self.t0_s = time.monotonic()

    def _on_frames(self) -> None:
        meta = None
        try:
            while self._conn.poll():
                meta = self._conn.recv()
        except (EOFError, OSError):
            self._loop.remove_reader(self._conn.fileno())
            log.error("the renderer process ended (exit code %s)", self._proc.exitcode)
            return
        if meta is None:
            return
        image = self._fb.read(meta.slot)
        if image is None:  # overwritten while copying: the next, newer frame follows within a frame time
            self.torn += 1
            return
        self.frames += 1
        self.newest = Frame(image, meta, time.monotonic())
        self._event.set()
        self._event = asyncio.Event()

    async def wait_newer(self, frame_id: int) -> Frame:
        """The newest frame with an id above ``frame_id`` (waits for one)."""
        while self.newest is None or self.newest.meta.frame_id <= frame_id:
            await self._event.wait()
        return self.newest

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._conn.fileno())
        self._stop.set()
        self._proc.join(timeout=3.0)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout=1.0)
        self._conn.close()
        self._fb.close()

"""Newest-frame hand-off between the renderer process and the media process, in shared memory.

The renderer writes each image into one of ``SLOTS`` slots in turn, with a per-slot sequence lock
(odd while writing), and tells the reader the slot and the frame's metadata over a pipe. The reader
only ever wants the newest frame: it copies that slot out and checks the sequence is unchanged (a
writer that lapped it makes the copy fail, and the reader simply takes the next, newer frame). No
queue of frames exists anywhere, so a slow reader drops frames instead of accumulating latency.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import numpy as np

#: Slots in the ring: the reader copies a slot out within one frame time, long before the writer
#: comes back to it (SLOTS − 1 frames later).
SLOTS = 3
_HEADER = struct.Struct("<Q")  # the slot's sequence lock


@dataclass(frozen=True)
class FrameMeta:
    """What one frame shows and when it was made. Times are the robot host's monotonic clock
    (``time.monotonic``, the clock of ``Telemetry.robot_s``), in seconds.

    ``frame_id``: counts rendered frames from 1. ``telemetry_seq``/``state_robot_s``: the telemetry
    message the mirror showed (its sequence number and the robot time it was sampled).
    ``render_start_s``/``render_end_s``: the render call. ``state``/``reason``/``force_mag_N``/``tip_m``:
    the supervisor state and its reason, contact force (N) and tool tip (m, base frame) at that
    sample; ``task``: the task's name, seed, success, episode time and goals as telemetry has them;
    ``force_limits_N`` (warn, stop) and ``force_band_N`` (the task's target, or None): for the HUD
    every page draws over the video (``telesurg.teleop.video.web/hud.js``)."""

    frame_id: int
    slot: int
    width: int
    height: int
    telemetry_seq: int
    state_robot_s: float
    render_start_s: float
    render_end_s: float
    state: str = ""
    force_mag_N: float = 0.0
    tip_m: tuple[float, float, float] = (0.0, 0.0, 0.0)
    reason: str = ""
    task: dict[str, Any] | None = None
    force_limits_N: tuple[float, float] | None = None
    force_band_N: tuple[float, float] | None = None


class FrameBuffer:
    """``SLOTS`` RGB images of ``width``×``height`` in one shared-memory block. Create it in the
    reader (``create=True``), pass ``name`` to the writer process."""

    def __init__(self, width: int, height: int, name: str | None = None, create: bool = False) -> None:
        if width < 16 or height < 16 or width % 2 or height % 2:
            raise ValueError(f"frame size must be even and at least 16×16, got {width}×{height}")
        self.width, self.height = width, height
        self.frame_bytes = width * height * 3
        self.slot_bytes = _HEADER.size + self.frame_bytes
        self._shm = shared_memory.SharedMemory(name=name, create=create, size=SLOTS * self.slot_bytes)
        self._owner = create
        self.name = self._shm.name

    def _header(self, slot: int) -> int:
        return _HEADER.unpack_from(self._shm.buf, slot * self.slot_bytes)[0]

    def _set_header(self, slot: int, value: int) -> None:
        _HEADER.pack_into(self._shm.buf, slot * self.slot_bytes, value)

    def view(self, slot: int) -> np.ndarray:
        """The slot's image as a (height, width, 3) uint8 array over the shared memory (no copy)."""
        start = slot * self.slot_bytes + _HEADER.size
        return np.ndarray((self.height, self.width, 3), np.uint8, self._shm.buf, start)

    def write(self, slot: int, image: np.ndarray) -> None:
        """Writer side: copy ``image`` (height, width, 3 uint8) into ``slot`` under its sequence lock."""
        if image.shape != (self.height, self.width, 3):
            raise ValueError(f"image shape {image.shape} does not match {(self.height, self.width, 3)}")
        seq = self._header(slot)
        self._set_header(slot, seq + 1)  # odd: being written
        self.view(slot)[...] = image
        self._set_header(slot, seq + 2)

    def read(self, slot: int) -> np.ndarray | None:
        """Reader side: a copy of ``slot``'s image, or None if the writer touched it meanwhile."""
        before = self._header(slot)
        if before % 2:
            return None
        out = self.view(slot).copy()
        return out if self._header(slot) == before else None

    def close(self) -> None:
        try:
            self._shm.close()
        except BufferError:  # a view still exported: released when the process exits
            return
        if self._owner:
            self._shm.unlink()
            self._owner = False

"""The video track the media process sends: ``RenderedTrack`` (built by ``rendered_track_class``)
sends the newest rendered frame it has not sent yet, stamped on the 90 kHz RTP clock."""

from __future__ import annotations

import time
from dataclasses import asdict
from fractions import Fraction
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from telesurg.teleop.video.source import FrameSource

#: RTP clock of video (Hz).
VIDEO_CLOCK_HZ = 90_000


def rendered_track_class() -> type:
    """The aiortc track class that sends a ``FrameSource``'s frames (imported late: aiortc and av are
    heavy, and only the media process needs them)."""
    from aiortc.mediastreams import VideoStreamTrack
    from av import VideoFrame

    class RenderedTrack(VideoStreamTrack):
        """Sends the newest rendered frame it has not sent yet (never a backlog). ``pts`` is the time
        the frame was ready, on a 90 kHz clock from the source's start; ``on_frame(meta_dict)`` runs
        for each frame just before it goes to the encoder."""

        kind = "video"

        def __init__(self, source: FrameSource) -> None:
            super().__init__()
            self.source = source
            self.on_frame: Any = None
            self._last_id = 0
            self._last_pts = -1
            self.first_pts: int | None = None
            self.sent = 0

        async def recv(self) -> VideoFrame:
            frame = await self.source.wait_newer(self._last_id)
            self._last_id = frame.meta.frame_id
            pts = max(round((frame.ready_s - self.source.t0_s) * VIDEO_CLOCK_HZ), self._last_pts + 1)
            self._last_pts = pts
            if self.first_pts is None:
                self.first_pts = pts
            out = VideoFrame.from_ndarray(frame.image, format="rgb24")
            out.pts = pts
            out.time_base = Fraction(1, VIDEO_CLOCK_HZ)
            self.sent += 1
            if self.on_frame is not None:
                meta = asdict(frame.meta)
                meta.pop("slot")
                meta.update(pts=pts, ready_s=frame.ready_s, sent_s=time.monotonic())
                self.on_frame(meta)
            return out

    return RenderedTrack

"""The video every peer of the media process receives, encoded once.

``SharedEncoder`` converts and encodes each new rendered frame once (VP8, in a worker thread) and
keeps the newest packet; each peer's ``RenderedTrack`` (built by ``rendered_track_class``) sends the
newest packet it has not sent yet, which aiortc only packetises. So a viewer joining or leaving
costs the surgeon's video nothing but its packets: before, every peer ran its own encoder, and
three observers pushed the surgeon's video past the stale-video hold on two CPUs.

A peer starts on a keyframe (its track asks for one and skips what comes before it); a peer that
lost a picture asks for one (RTCP PLI, forwarded by ``telesurg.teleop.video.aiortc_patches``); and
every ``keyframe_every_s`` one is sent anyway. The bitrate is fixed (``bitrate_bps``): one stream
for every peer cannot follow each peer's own bandwidth estimate, so size it for the slowest link.
Frames are stamped on the 90 kHz RTP clock by the time they were captured (the renderer's wake-up).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from telesurg.teleop.video.source import Frame, FrameSource

#: RTP clock of video (Hz).
VIDEO_CLOCK_HZ = 90_000
#: The one video codec every peer gets (``SharedEncoder`` makes its packets).
VIDEO_MIME = "video/VP8"


@dataclass(frozen=True)
class Encoded:
    """One encoded frame: the source frame, its pts (90 kHz), the VP8 bytes, a keyframe or not."""

    frame: Frame
    pts: int
    data: bytes
    keyframe: bool


class SharedEncoder:
    """See the module docstring. Use from the media process's event loop."""

    def __init__(self, source: FrameSource, bitrate_bps: int = 900_000, keyframe_every_s: float = 2.0) -> None:
        self.source = source
        self.bitrate_bps = bitrate_bps
        self.keyframe_every_s = keyframe_every_s
        self.current: Encoded | None = None
        #: Frames encoded, and of those keyframes; encode time of the newest (s).
        self.encoded = 0
        self.keyframes = 0
        self.encode_s = 0.0
        self._codec: Any = None
        self._lock = asyncio.Lock()
        self._key_wanted = True
        self._last_key_s = -math.inf
        self._last_pts = -1

    def request_keyframe(self) -> None:
        self._key_wanted = True

    async def newer_than(self, frame_id: int) -> Encoded:
        """The newest encoded frame with an id above ``frame_id`` (waits for a frame, encodes it once)."""
        await self.source.wait_newer(frame_id)
        async with self._lock:
            if self.current is not None and self.current.frame.meta.frame_id > frame_id:
                return self.current  # another peer's track had it encoded meanwhile
            frame = self.source.newest
            assert frame is not None
            # Stamped by when it was captured (the renderer's fixed-rate wake-up), not by when it
            # reached us: the browser paces presentation by these stamps, and the render and hand-over
            # times jitter by milliseconds.
            captured_s = frame.meta.render_start_s
            pts = max(round((captured_s - self.source.t0_s) * VIDEO_CLOCK_HZ), self._last_pts + 1)
            self._last_pts = pts
            now = time.monotonic()
            key = self._key_wanted or now - self._last_key_s >= self.keyframe_every_s
            if key:
                self._key_wanted, self._last_key_s = False, now
            loop = asyncio.get_running_loop()
            data = await loop.run_in_executor(None, self._encode, frame.image, pts, key)
            self.encode_s = time.monotonic() - now
            self.current = Encoded(frame, pts, data, key)
            self.encoded += 1
            self.keyframes += key
            return self.current

    def _encode(self, image: Any, pts: int, keyframe: bool) -> bytes:
        import av
        from av import VideoFrame

        if self._codec is None:
            height, width = image.shape[:2]
            codec = av.CodecContext.create("libvpx", "w")
            codec.width, codec.height = width, height
            codec.bit_rate = self.bitrate_bps
            codec.pix_fmt = "yuv420p"
            codec.gop_size = 3000  # keyframes only when asked for (or every keyframe_every_s)
            codec.qmin, codec.qmax = 2, 56
            # aiortc's own real-time VP8 settings (aiortc.codecs.vpx.Vp8Encoder), CBR at bit_rate.
            codec.options = {
                "bufsize": str(self.bitrate_bps),
                "cpu-used": "-6",
                "deadline": "realtime",
                "lag-in-frames": "0",
                "minrate": str(self.bitrate_bps),
                "maxrate": str(self.bitrate_bps),
                "noise-sensitivity": "4",
                "overshoot-pct": "15",
                "partitions": "0",
                "static-thresh": "1",
                "undershoot-pct": "100",
            }
            codec.thread_count = 1  # the control loop's CPU is not ours to take
            self._codec = codec
        frame = VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = pts
        frame.time_base = Fraction(1, VIDEO_CLOCK_HZ)
        if keyframe:
            frame.pict_type = av.video.frame.PictureType.I
        return b"".join(bytes(packet) for packet in self._codec.encode(frame))


def rendered_track_class() -> type:
    """The aiortc track class that sends a ``SharedEncoder``'s packets (imported late: aiortc and av
    are heavy, and only the media process needs them)."""
    from aiortc.mediastreams import MediaStreamTrack
    from av import Packet

    class RenderedTrack(MediaStreamTrack):
        """Sends the newest encoded frame it has not sent yet (never a backlog), starting on a
        keyframe. ``on_frame(meta_dict)`` runs for each frame just before it goes to the packetiser."""

        kind = "video"

        def __init__(self, encoder: SharedEncoder) -> None:
            super().__init__()
            self.encoder = encoder
            self.on_frame: Any = None
            self._last_id = 0
            self.first_pts: int | None = None
            self.sent = 0

        async def recv(self) -> Packet:
            while True:
                enc = await self.encoder.newer_than(self._last_id)
                self._last_id = enc.frame.meta.frame_id
                if enc.data and (self.first_pts is not None or enc.keyframe):
                    break
                self.encoder.request_keyframe()  # a new peer cannot decode from a delta frame
            if self.first_pts is None:
                self.first_pts = enc.pts
            packet = Packet(enc.data)
            packet.pts = enc.pts
            packet.time_base = Fraction(1, VIDEO_CLOCK_HZ)
            self.sent += 1
            if self.on_frame is not None:
                meta = asdict(enc.frame.meta)
                meta.pop("slot")
                meta.update(pts=enc.pts, ready_s=enc.frame.ready_s, sent_s=time.monotonic())
                self.on_frame(meta)
            return packet

    return RenderedTrack

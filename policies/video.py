"""MP4 recording of camera frames (H.264 through PyAV when available, MPEG-4 part 2 otherwise): the
one video writer, for evaluation videos (a fixed frame rate) and the console's saved video (each
frame at its display time, ``timed``)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import numpy as np


class Mp4Writer:
    """``with Mp4Writer(path, fps) as w: w.write(rgb_frame)``; frames are HxWx3 uint8 RGB (BGR with
    ``bgr=True``). ``timed``: each frame is stamped with its ``at_s`` (s, any clock; millisecond
    resolution), a variable frame rate, ``fps`` only the nominal rate; ``low_latency``: H.264 tuned
    for live encoding."""

    def __init__(self, path: str | Path, fps: float, *, timed: bool = False, low_latency: bool = False) -> None:
        import av

        self.path = Path(path)
        if self.path.suffix.lower() != ".mp4":
            raise ValueError(f"video file must end in .mp4, got {str(path)!r}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), mode="w")
        self._fps = Fraction(fps).limit_denominator(1000)
        self._stream = None
        self._timed, self._low_latency = timed, low_latency
        self._t0_s: float | None = None
        self._last_ms = -1
        self.frames = 0

    def _open_stream(self, width: int, height: int) -> None:
        import av

        for codec in ("libx264", "h264", "mpeg4"):
            try:
                stream = self._container.add_stream(codec, rate=self._fps)
                break
            except (av.error.FFmpegError, ValueError, av.codec.codec.UnknownCodecError):
                continue
        else:  # pragma: no cover - every PyAV build has mpeg4
            raise RuntimeError("no MP4 video encoder available in PyAV")
        stream.width = width - width % 2
        stream.height = height - height % 2
        stream.pix_fmt = "yuv420p"
        if self._timed:
            stream.codec_context.time_base = Fraction(1, 1000)
            stream.time_base = Fraction(1, 1000)
        if self._low_latency and stream.codec_context.name in ("libx264", "h264"):
            stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        self._stream = stream

    def write(self, frame: np.ndarray, at_s: float | None = None, bgr: bool = False) -> None:
        import av

        pixels = np.ascontiguousarray(np.asarray(frame)[..., :3], dtype=np.uint8)
        if self._stream is None:
            self._open_stream(pixels.shape[1], pixels.shape[0])
        pixels = pixels[: self._stream.height, : self._stream.width]
        out = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="bgr24" if bgr else "rgb24")
        if self._timed:
            if at_s is None:
                raise ValueError("a timed Mp4Writer needs each frame's time (at_s)")
            if self._t0_s is None:
                self._t0_s = at_s
            self._last_ms = max(int((at_s - self._t0_s) * 1000), self._last_ms + 1)
            out.pts = self._last_ms
            out.time_base = Fraction(1, 1000)
        for packet in self._stream.encode(out):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._stream is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

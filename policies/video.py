"""MP4 recording of camera frames (H.264 through PyAV when available, MPEG-4 part 2 otherwise)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import numpy as np


class Mp4Writer:
    """``with Mp4Writer(path, fps) as w: w.write(rgb_frame)``; frames are HxWx3 uint8 RGB."""

    def __init__(self, path: str | Path, fps: float) -> None:
        import av

        self.path = Path(path)
        if self.path.suffix.lower() != ".mp4":
            raise ValueError(f"video file must end in .mp4, got {str(path)!r}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), mode="w")
        self._fps = Fraction(fps).limit_denominator(1000)
        self._stream = None
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
        self._stream = stream

    def write(self, frame: np.ndarray) -> None:
        import av

        rgb = np.ascontiguousarray(np.asarray(frame)[..., :3], dtype=np.uint8)
        if self._stream is None:
            self._open_stream(rgb.shape[1], rgb.shape[0])
        rgb = rgb[: self._stream.height, : self._stream.width]
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
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

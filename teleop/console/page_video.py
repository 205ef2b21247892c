"""The endoscope video as the surgeon's page displays it: the page reports each displayed frame (its
id and the robot time of the state it shows, from the media process's per-frame metadata, and the
page's display time); the console core's advisory hold and its video latency judge these frames,
not a stream the surgeon is not looking at. Same reading interface as
``telesurg.teleop.video.client.VideoClient`` (``age_s``, ``offset_s``, ``failed``, ``stats``)."""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any

import msgspec
import numpy as np


class FrameReport(msgspec.Struct, forbid_unknown_fields=True):
    """A frame the page displayed: ``frame`` (the media process's frame id), ``state_robot_s`` (robot
    time of the state it shows), ``ready_robot_s`` (when the media process had it ready), and the
    page's display time (``t_page_ms``, ``performance.now()``)."""

    frame: int
    state_robot_s: float
    ready_robot_s: float
    t_page_ms: float


_decode = msgspec.json.Decoder(FrameReport)


class PageVideo:
    """See the module docstring. ``report`` from the web thread, the rest from the console thread."""

    def __init__(self) -> None:
        #: Robot clock − the console's true clock (s); set by the console's video hold each tick.
        self.offset_s = 0.0
        #: The page reconnects its own video; the console never re-offers for it.
        self.failed = False
        #: What the core would draw on its own window: unused here (the page draws its HUD).
        self.hud: dict = {}
        self.ghost = None
        self._lock = threading.Lock()
        self._newest_state_robot_s = -math.inf
        self._newest_frame = -1
        self.frames = 0
        #: (state sampled → displayed) per reported frame (s), the newest 600.
        self.samples: deque[float] = deque(maxlen=600)
        #: Per reported frame: its display time (console clock) and ready → displayed (s).
        self._shown: deque[tuple[float, float]] = deque(maxlen=600)
        self._page_to_console_s = math.inf

    def report(self, data: str | bytes, arrival_s: float) -> bool:
        """One displayed-frame report (JSON) that arrived at ``arrival_s`` (console true clock)."""
        try:
            rep = _decode.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False
        with self._lock:
            # The page's clock on the console's: the least-delayed report bounds the offset.
            self._page_to_console_s = min(self._page_to_console_s, arrival_s - rep.t_page_ms / 1e3)
            if rep.frame <= self._newest_frame:
                return False
            self._newest_frame = rep.frame
            self._newest_state_robot_s = rep.state_robot_s
            self.frames += 1
            displayed_s = rep.t_page_ms / 1e3 + self._page_to_console_s
            self.samples.append(displayed_s + self.offset_s - rep.state_robot_s)
            self._shown.append((displayed_s, displayed_s + self.offset_s - rep.ready_robot_s))
        return True

    def page_left(self) -> None:
        """The page went away: nothing is displayed any more (the hold judges video as missing)."""
        with self._lock:
            self._newest_state_robot_s, self._newest_frame = -math.inf, -1
            self._page_to_console_s = math.inf

    def age_s(self, now_s: float) -> float:
        """How old the state shown by the newest displayed frame is at ``now_s`` (console true clock)."""
        with self._lock:
            newest = self._newest_state_robot_s
        return now_s + self.offset_s - newest

    def latency_s(self) -> float | None:
        """State sampled → displayed of the newest reported frame (s)."""
        with self._lock:
            return self.samples[-1] if self.samples else None

    def stats(self) -> dict[str, Any]:
        """The session's figures, as the video client's (``telesurg.teleop.video.client``): frames the
        page displayed; over the last 100 of them, fps and state sampled → displayed and ready →
        displayed (ms)."""
        with self._lock:
            recent = np.asarray(list(self.samples)[-100:]) * 1e3
            shown = np.asarray(list(self._shown)[-100:]).reshape(-1, 2)
            frames = self.frames
        out: dict[str, Any] = {"frames": frames, "matched": len(recent)}
        if len(recent):
            for name, values in (("sampled_to_displayed_ms", recent), ("ready_to_displayed_ms", shown[:, 1] * 1e3)):
                out[name] = {q: float(np.percentile(values, int(q[1:]))) for q in ("p50", "p95", "p99")}
        if len(shown) >= 2 and shown[-1, 0] > shown[0, 0]:
            out["fps"] = (len(shown) - 1) / float(shown[-1, 0] - shown[0, 0])
        return out

    def close(self) -> None:
        pass

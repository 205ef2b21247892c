"""The console's end of the video (aiortc): a receive-only peer connection in its own thread, so
video never blocks the command loop.

The console thread signals (``offer()`` gives the SDP to send on the control channel,
``accept(answer)`` completes it) and reads plain attributes: ``newest_state_robot_s`` (robot time
the newest displayed frame shows), ``frames``, ``samples``. Everything else — receiving, decoding,
matching frames to their metadata, overlays, ``--save-video`` — runs in the video
thread. Frames are matched to the metadata the media process sends on the ``meta`` data channel by
their RTP timestamp (see ``telesurg.teleop.video.media``; aiortc's receiver is told to keep raw RTP timestamps).

A frame is *displayed* when it has been decoded (the surgeon watches the page of ``telesurg
console --web``, which reports the frames it draws itself: ``telesurg.teleop.console.page_video``).
Per frame the client keeps: display time (console clock), and the metadata (robot clock); with the console's clock-sync
offset (``offset_s``, set by the console) that gives sampled → displayed and ready → displayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from telesurg.teleop.netem.spec import LinkSpec
from telesurg.teleop.video.aiortc_patches import bound_nacks, emulate_link, keep_rtp_timestamps, use_ice_addresses
from telesurg.teleop.video.webrtc import LOOPBACK_ADDRESSES, rtc_configuration

#: Frames and metadata waiting for their partner (by RTP timestamp): at most this many each.
MATCH_WINDOW = 120
#: Why ``show`` is refused: the OpenCV window is retired (the GUI and headless OpenCV wheels both
#: install ``cv2`` and cannot coexist, and the pinned headless build has no window).
WINDOW_RETIRED = (
    "[console.video] show: the OpenCV video window is retired; the surgeon watches the browser console "
    "(telesurg launch launch/surgeon.toml, or telesurg console --web) — remove show"
)


@dataclass(frozen=True)
class VideoClientConfig:
    """The console's video. ``max_age_s``: when the newest frame shows a state older than this, the
    console stops commanding motion until the surgeon re-engages with fresh video; ``reengage_after_s``:
    the scripted surgeon (and trace replay) re-engages once video has been fresh this long (a
    surgeon's reaction); ``link``/``link_down``/``link_up``: emulated network on the video path (both
    directions / robot → console / console → robot, ``telesurg.teleop.netem.spec`` format); ``show``:
    retired (the OpenCV window; any value but unset or false is refused with ``WINDOW_RETIRED``);
    ``save_video``: an MP4 of what the surgeon saw (frames with overlays, at display times);
    ``ice_addresses``/``ice_servers`` as in ``telesurg.teleop.video.media.VideoConfig``."""

    enabled: bool = False
    max_age_s: float = 0.5
    reengage_after_s: float = 0.3
    link: str = ""
    link_down: str = ""
    link_up: str = ""
    show: bool | None = None
    save_video: str | None = None
    ice_addresses: tuple[str, ...] = LOOPBACK_ADDRESSES
    ice_servers: tuple[str, ...] = ()
    offer_timeout_s: float = 5.0
    keep_samples: int = 100_000
    #: Keep the newest frame as an image (``newest_image``, BGR) even without a window or a file.
    keep_image: bool = False
    #: A gap of more packets than this (~0.1–0.3 s of video) asks for a keyframe, not retransmissions.
    nack_max_gap_packets: int = 40
    #: A lost packet still missing this long (s) after its gap was seen is given up for a keyframe:
    #: long enough for a retransmission or two over a 200 ms link (a NACK round trip ~0.45 s).
    nack_max_wait_s: float = 0.6

    def __post_init__(self) -> None:
        if self.max_age_s <= 0:
            raise ValueError(f"max_age_s must be positive, got {self.max_age_s}")
        if self.show:
            raise ValueError(WINDOW_RETIRED)
        self.link_specs()

    def link_specs(self) -> tuple[LinkSpec | None, LinkSpec | None]:
        """(down, up) emulated links, None for a real network."""
        base = LinkSpec.parse(self.link) if self.link.strip() else None
        down = LinkSpec.parse(self.link_down) if self.link_down.strip() else base
        up = LinkSpec.parse(self.link_up) if self.link_up.strip() else base
        return down, up


@dataclass(frozen=True)
class FrameSample:
    """One displayed frame: ``displayed_s`` (console monotonic clock, s), ``offset_s`` (robot − console
    clock at that time) and the frame's metadata (robot clock)."""

    displayed_s: float
    offset_s: float
    frame_id: int
    telemetry_seq: int
    state_robot_s: float
    render_start_s: float
    render_end_s: float
    ready_s: float

    @property
    def sampled_to_displayed_s(self) -> float:
        return self.displayed_s + self.offset_s - self.state_robot_s

    @property
    def ready_to_displayed_s(self) -> float:
        return self.displayed_s + self.offset_s - self.ready_s


class VideoClient:
    """See the module docstring."""

    def __init__(self, config: VideoClientConfig) -> None:
        self.config = config
        self.offset_s = 0.0
        self.hud: dict[str, Any] = {}
        self.newest_state_robot_s = -float("inf")
        self.newest_displayed_s = -float("inf")
        self.frames = 0
        self.unmatched = 0
        self.samples: list[FrameSample] = []
        self.newest_image: np.ndarray | None = None
        #: The local twin's skeleton (base frame, m) and the camera to project it with, set by the
        #: console each command; drawn over the video as a ghost when present.
        self.ghost: tuple[np.ndarray, Any] | None = None
        self.error: str | None = None
        self.saved_video = ""
        self.connection_state = "new"
        #: When the emulated video link's clock started (console monotonic s): outages count from it.
        self.link_start_s: float | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="telesurg-video", daemon=True)
        self._pc: Any = None
        self._metas: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._frames_waiting: OrderedDict[int, float] = OrderedDict()
        self._consumer: asyncio.Task[None] | None = None
        self._writer: Any = None
        self._hud_meta: dict[str, Any] | None = None
        self._thread.start()

    # ------------------------------------------------------------------ console thread
    def _call(self, coro: Any, timeout_s: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def offer(self) -> str:
        """A new peer connection (closing the old one); returns its SDP offer."""
        return self._call(self._offer(), self.config.offer_timeout_s)

    def accept(self, answer_sdp: str) -> None:
        self._call(self._accept(answer_sdp), self.config.offer_timeout_s)

    def age_s(self, now_console_s: float) -> float:
        """How old the state shown by the newest displayed frame is now (s); inf before any frame."""
        return now_console_s + self.offset_s - self.newest_state_robot_s

    @property
    def failed(self) -> bool:
        return self.connection_state in ("failed", "closed")

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self._close(final=True), 5.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)

    def stats(self) -> dict[str, Any]:
        """fps and latency figures over the samples (ms)."""
        s = self.samples
        out: dict[str, Any] = {"frames": self.frames, "matched": len(s), "unmatched": self.unmatched}
        out["saved_video"] = self.saved_video
        if len(s) >= 2:
            span = s[-1].displayed_s - s[0].displayed_s
            out["fps"] = (len(s) - 1) / span if span > 0 else 0.0
            a = np.array([x.sampled_to_displayed_s for x in s]) * 1e3
            b = np.array([x.ready_to_displayed_s for x in s]) * 1e3
            for name, arr in (("sampled_to_displayed_ms", a), ("ready_to_displayed_ms", b)):
                out[name] = {q: float(np.percentile(arr, int(q[1:]))) for q in ("p50", "p95", "p99")}
        return out

    # ------------------------------------------------------------------ video thread
    async def _offer(self) -> str:
        from aiortc import RTCPeerConnection

        await self._close()
        use_ice_addresses(self.config.ice_addresses)
        pc = RTCPeerConnection(rtc_configuration(self.config.ice_servers))
        self._pc = pc
        pc.addTransceiver("video", direction="recvonly")
        channel = pc.createDataChannel("meta", ordered=False, maxRetransmits=0)
        channel.on("message", self._on_meta)

        @pc.on("track")
        def _on_track(track: Any) -> None:
            if track.kind == "video":
                self._consumer = asyncio.get_running_loop().create_task(self._consume(track))

        @pc.on("connectionstatechange")
        def _on_state() -> None:
            if pc is self._pc:
                self.connection_state = pc.connectionState

        for transceiver in pc.getTransceivers():
            keep_rtp_timestamps(transceiver.receiver)
            bound_nacks(transceiver.receiver, self.config.nack_max_gap_packets, self.config.nack_max_wait_s)
        await pc.setLocalDescription(await pc.createOffer())
        down, up = self.config.link_specs()
        if down is not None or up is not None:
            self.link_start_s = time.monotonic()
            emulate_link(pc, down, up)
        return pc.localDescription.sdp

    async def _accept(self, answer_sdp: str) -> None:
        from aiortc import RTCSessionDescription

        await self._pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))

    async def _close(self, final: bool = False) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
            self._consumer = None
        if self._pc is not None:
            pc, self._pc = self._pc, None
            await pc.close()
        if self._writer is not None and final:  # a reconnect goes on writing the same file
            self._writer.close()
            self._writer = None

    def _on_meta(self, message: Any) -> None:
        try:
            meta = json.loads(message)
            rtp_ts = int(meta["rtp_ts"])
        except (ValueError, KeyError, TypeError):
            return
        displayed = self._frames_waiting.pop(rtp_ts, None)
        if displayed is not None:
            self._record(displayed, meta)
            return
        self._metas[rtp_ts] = meta
        while len(self._metas) > MATCH_WINDOW:
            self._metas.popitem(last=False)

    async def _consume(self, track: Any) -> None:
        try:
            await self._consume_frames(track)
        except Exception as exc:  # say why the video stopped; the console holds on stale video
            self.error = f"{type(exc).__name__}: {exc}"
            print(f"console: video stopped: {self.error}", file=sys.stderr, flush=True)
            raise

    async def _consume_frames(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        need_image = self.config.save_video is not None or self.config.keep_image
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            image = frame.to_ndarray(format="bgr24") if need_image else None
            if image is not None and self.config.save_video:
                image = self._overlay(image)
                self._save(image)
            if image is not None:
                self.newest_image = image
            displayed = time.monotonic()
            self.frames += 1
            rtp_ts = int(frame.pts) if frame.pts is not None else -1
            meta = self._metas.pop(rtp_ts, None)
            if meta is not None:
                self._record(displayed, meta)
            else:
                self._frames_waiting[rtp_ts] = displayed
                while len(self._frames_waiting) > MATCH_WINDOW:
                    self._frames_waiting.popitem(last=False)
                    self.unmatched += 1

    def _record(self, displayed_s: float, meta: dict[str, Any]) -> None:
        try:
            sample = FrameSample(
                displayed_s=displayed_s,
                offset_s=self.offset_s,
                frame_id=int(meta["frame_id"]),
                telemetry_seq=int(meta["telemetry_seq"]),
                state_robot_s=float(meta["state_robot_s"]),
                render_start_s=float(meta["render_start_s"]),
                render_end_s=float(meta["render_end_s"]),
                ready_s=float(meta["ready_s"]),
            )
        except (KeyError, TypeError, ValueError):
            return
        if sample.state_robot_s > self.newest_state_robot_s:
            self.newest_state_robot_s = sample.state_robot_s
            self.newest_displayed_s = displayed_s
        if len(self.samples) < self.config.keep_samples:
            self.samples.append(sample)
        self._hud_meta = meta

    def _overlay(self, image: np.ndarray) -> np.ndarray:
        from telesurg.teleop.video.overlay import draw_ghost, draw_hud

        ghost = self.ghost
        if ghost is not None:
            draw_ghost(image, ghost[0], ghost[1])
        age = time.monotonic() + self.offset_s - self.newest_state_robot_s
        hud = dict(self.hud)
        meta = self._hud_meta
        if meta is not None and meta.get("force_limits_N"):
            hud["force_limits_N"] = tuple(meta["force_limits_N"])
        return draw_hud(image, hud, video_latency_s=age)

    def _save(self, image: np.ndarray) -> None:
        if self._writer is None:
            from telesurg.policies.video import Mp4Writer
            from telesurg.teleop.settings import output_path

            assert self.config.save_video is not None
            out = output_path(self.config.save_video)
            if out.exists():
                raise FileExistsError(f"{out} exists; not overwriting it")
            self._writer = Mp4Writer(out, 30, timed=True, low_latency=True)
            self.saved_video = str(out.resolve())
        self._writer.write(image, time.monotonic(), bgr=True)

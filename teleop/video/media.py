"""The media process (`telesurg video`): the endoscope video of the robot host over WebRTC (aiortc).

::

    telesurg robot --state-port 5573 --video-signal-port 5574 &
    telesurg video --state-port 5573 --signal-port 5574          # prints the viewer's address

It starts the renderer (``telesurg.teleop.video.renderer``, a child process mirroring the scene from the robot's
state feed) and serves its frames:

- to consoles, whose WebRTC offers arrive on the robot's control channel and are forwarded here by
  the robot server (``telesurg.teleop.wire.signalling``, a loopback ROUTER on ``signal_port``);
- to browsers, through a small web viewer (aiohttp on ``http_host:http_port``): ``GET /`` is the
  page, ``POST /offer`` the signalling. It shows patient video, so it requires the access token
  printed at start-up (``?token=…``) unless bound to loopback (``token_required`` forces it).

Every peer connection gets its own ``RenderedTrack`` on the same ``FrameSource`` and a data channel
``meta`` (opened by the offerer, unordered, no retransmissions) on which each frame's metadata is
sent as JSON just before the frame is encoded: frame id, the RTP timestamp of the frame (its ``pts``
at 90 kHz; the receiver matches decoded frames by it), the telemetry sequence and robot time the
frame shows, render start and end and the time the frame was ready (robot host monotonic clock, s),
plus supervisor state, force and tool tip for overlays. Nothing queues frames: the source keeps only
the newest, each track sends the newest frame it has not sent, so a slow encoder or peer skips frames
and latency never accumulates.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telesurg.teleop.robot.realtime import give_back_freed_memory
from telesurg.teleop.video.aiortc_patches import on_keyframe_request, tap_rtp, use_ice_addresses
from telesurg.teleop.video.httpguard import ConnectionGuard, GuardConfig, read_offer, token_ok
from telesurg.teleop.video.pages import page_html
from telesurg.teleop.video.renderer import RendererConfig
from telesurg.teleop.video.source import FrameSource
from telesurg.teleop.video.tracks import VIDEO_MIME, SharedEncoder, rendered_track_class
from telesurg.teleop.video.webrtc import LOOPBACK_ADDRESSES, keep_candidates, rtc_configuration
from telesurg.teleop.wire import signalling
from telesurg.teleop.wire.channels import is_loopback
from telesurg.teleop.wire.ports import bind_zmq, listen_tcp

log = logging.getLogger("telesurg.video")
#: How often the media process gives the C heaps' free memory back to the OS besides at each peer's end (s).
TRIM_EVERY_S = 60.0

VIEWER_HTML = Path(__file__).with_name("web") / "viewer.html"


@dataclass(frozen=True)
class VideoConfig:
    """The media process. ``renderer``: size, rate and back end of the images; ``signal_port``: where
    the robot server forwards consoles' offers (loopback); ``http_host``/``http_port``: the web
    viewer (``http_port`` 0: no viewer); ``token``: the viewer's access token (default: a fresh
    random one), required unless ``http_host`` is loopback, or always with ``token_required``;
    ``ice_addresses``: the local addresses ICE may use (default loopback; list the LAN address for a
    console on another machine); ``ice_servers``: STUN/TURN URLs (none by default); ``max_peers``: peer
    connections served at once; beyond it a new one is refused with the reason, never an existing
    one closed (default 12: a console, the surgeon's page and 10 observers)."""

    renderer: RendererConfig = field(default_factory=RendererConfig)
    signal_port: int | None = 5574
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    token: str | None = None
    token_required: bool | None = None
    ice_addresses: tuple[str, ...] = LOOPBACK_ADDRESSES
    ice_servers: tuple[str, ...] = ()
    max_peers: int = 12
    #: The one VP8 stream every peer receives (``telesurg.teleop.video.tracks.SharedEncoder``): its
    #: bitrate (bit/s; size it for the slowest peer's link) and the longest time between keyframes (s).
    #: 0.9 Mbit/s: the endoscope view with texture and shadows filled 1.5 Mbit/s, and at that rate
    #: the soak's console (every correction stage on, over delay=200ms loss=1%) saw its video
    #: 1.2–1.6 s late at p50 (it keeps up with 0.9: 0.29 s, as the flat view had at 0.85).
    bitrate_bps: int = 900_000
    keyframe_every_s: float = 2.0
    #: Scheduling niceness added to the media process (its encoder): the control loop comes first.
    nice: int = 5
    #: The web viewer's connection limits: request deadline, caps on connections without the token.
    http_guard: GuardConfig = field(default_factory=GuardConfig)

    def __post_init__(self) -> None:
        if not 100_000 <= self.bitrate_bps <= 20_000_000:
            raise ValueError(f"bitrate_bps must be in [100000, 20000000], got {self.bitrate_bps}")
        if self.keyframe_every_s <= 0:
            raise ValueError(f"keyframe_every_s must be positive, got {self.keyframe_every_s}")
        if self.max_peers < 1:
            raise ValueError("max_peers must be at least 1")
        if not 0 <= self.http_port <= 65535:
            raise ValueError(f"http_port must be 0–65535, got {self.http_port}")
        if self.token is not None and len(self.token) < 16:
            raise ValueError("token must be at least 16 characters")

    @property
    def needs_token(self) -> bool:
        return self.token_required if self.token_required is not None else not is_loopback(self.http_host)


class _Peer:
    def __init__(self, name: str, pc: Any, track: Any) -> None:
        self.name = name
        self.pc = pc
        self.track = track
        self.channel: Any = None
        self.created_s = time.monotonic()


class MediaServer:
    """Peer connections, signalling and the web viewer around one ``FrameSource``."""

    def __init__(self, config: VideoConfig) -> None:
        self.config = config
        self.token = config.token or secrets.token_urlsafe(24)
        self.peers: list[_Peer] = []
        self.source: FrameSource | None = None
        self.encoder: SharedEncoder | None = None
        self._track_cls: type | None = None
        self._runner: Any = None
        self._zctx: Any = None
        self._router: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._http_sockets: list[socket.socket] = []
        self._http_servers: list[asyncio.AbstractServer] = []
        self.guard = ConnectionGuard(config.http_guard)
        self.http_url = ""

    async def start(self) -> None:
        """Bind the ports, then start the renderer and serve. A port that cannot be bound raises
        ``PortError`` before the renderer process and its shared memory exist; ``close()`` undoes a
        partial start."""
        use_ice_addresses(self.config.ice_addresses)
        self._track_cls = rendered_track_class()
        if self.config.signal_port is not None:
            import zmq
            import zmq.asyncio

            self._zctx = zmq.asyncio.Context()
            self._router = self._zctx.socket(zmq.ROUTER)
            self._router.setsockopt(zmq.LINGER, 0)
            bind_zmq(self._router, "127.0.0.1", self.config.signal_port, "signal_port")
        if self.config.http_port:
            self._http_sockets = listen_tcp(self.config.http_host, self.config.http_port, "http_port")
        self.source = FrameSource(self.config.renderer)
        self.encoder = SharedEncoder(self.source, self.config.bitrate_bps, self.config.keyframe_every_s)
        if self._router is not None:
            self._tasks.append(asyncio.get_running_loop().create_task(self._serve_signalling()))
        if self._http_sockets:
            await self._start_http()

    async def answer(self, client: str, offer_sdp: str) -> str:
        """Answer an SDP offer from ``client`` with the rendered track (replacing its older connection)."""
        from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription

        assert self.encoder is not None and self._track_cls is not None
        for old in [peer for peer in self.peers if peer.name == client]:
            await self._close_peer(old)
        if len(self.peers) >= self.config.max_peers:
            # Never close someone else's video for a newcomer (it may be the surgeon's).
            log.info("refused %s: all %d video peers in use", client, self.config.max_peers)
            raise ValueError(f"video capacity reached: all {self.config.max_peers} peers in use; try again later")
        pc = RTCPeerConnection(rtc_configuration(self.config.ice_servers))
        track = self._track_cls(self.encoder)
        peer = _Peer(client, pc, track)
        self.peers.append(peer)

        @pc.on("datachannel")
        def _on_channel(channel: Any) -> None:
            if channel.label == "meta":
                peer.channel = channel

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            log.info("peer %s: %s", client, pc.connectionState)
            if pc.connectionState in ("failed", "closed") and peer in self.peers:
                await self._close_peer(peer)

        pending: OrderedDict[int, dict[str, Any]] = OrderedDict()

        def _on_frame(meta: dict[str, Any]) -> None:
            pending[meta["pts"]] = meta
            while len(pending) > 64:
                pending.popitem(last=False)

        def _on_rtp_frame(rtp_ts: int, pts: int) -> None:
            # aiortc converts pts to the RTP clock with float rounding: allow ±2 ticks (frames are
            # ≥ 700 ticks apart even at 120 fps).
            meta = next((pending.pop(k) for k in (pts, pts - 1, pts + 1, pts - 2, pts + 2) if k in pending), None)
            ch = peer.channel
            if meta is not None and ch is not None and ch.readyState == "open":
                meta.update(rtp_ts=rtp_ts, sent_s=time.monotonic())
                ch.send(json.dumps(meta, separators=(",", ":")))

        track.on_frame = _on_frame
        try:
            offer = RTCSessionDescription(keep_candidates(offer_sdp, self.config.ice_addresses), "offer")
            # The offer's video section takes this transceiver: VP8 only (and its retransmissions),
            # the codec the shared encoder's packets are in.
            vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType in (VIDEO_MIME, "video/rtx")]
            pc.addTransceiver("video", direction="sendonly").setCodecPreferences(vp8)
            await pc.setRemoteDescription(offer)
            if not any(t.kind == "video" for t in pc.getTransceivers()):
                raise ValueError("the offer has no video section")
            pc.addTrack(track)  # takes the offered video transceiver: the answer is sendonly
            await pc.setLocalDescription(await pc.createAnswer())
            tap_rtp(pc, track, _on_rtp_frame)
            on_keyframe_request(pc, track, self.encoder.request_keyframe)
        except Exception:
            await self._close_peer(peer)
            raise
        return pc.localDescription.sdp

    async def _close_peer(self, peer: _Peer) -> None:
        if peer in self.peers:
            self.peers.remove(peer)
        await peer.pc.close()
        # Its encoder's buffers went back to the C heap: give them back to the OS (peers come and go
        # for hours; without this the process grows with each one).
        give_back_freed_memory()

    # ------------------------------------------------------------------ signalling from the robot
    async def _serve_signalling(self) -> None:
        assert self._router is not None
        while True:
            ident, data = await self._router.recv_multipart()
            try:
                req = signalling.decode_request(data)
            except ValueError as exc:
                log.warning("%s", exc)
                continue
            asyncio.get_running_loop().create_task(self._answer_robot(ident, req))

    async def _answer_robot(self, ident: bytes, req: signalling.SignalRequest) -> None:
        try:
            sdp = await self.answer(req.client, req.sdp)
            reply = signalling.SignalReply(req.request_id, True, sdp=sdp)
            log.info("answered %s's offer (console)", req.client)
        except Exception as exc:  # a bad offer is the peer's problem, not the server's
            log.warning("offer from %s refused: %s", req.client, exc)
            reply = signalling.SignalReply(req.request_id, False, reason=str(exc)[:400])
        await self._router.send_multipart([ident, signalling.encode(reply)])

    # ------------------------------------------------------------------ the web viewer
    async def _start_http(self) -> None:
        from aiohttp import web

        app = web.Application(client_max_size=256 * 1024, middlewares=[self.guard.middleware()])
        app.router.add_get("/", self._page)
        app.router.add_post("/offer", self._http_offer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        loop = asyncio.get_running_loop()
        for sock in self._http_sockets:  # bound in start(); every connection through the guard
            self._http_servers.append(await loop.create_server(self.guard.wrap(self._runner.server), sock=sock))
        port = self._http_sockets[0].getsockname()[1]
        query = f"?token={self.token}" if self.config.needs_token else ""
        self.http_url = f"http://{self.config.http_host}:{port}/{query}"

    def _authorised(self, token: str | None) -> bool:
        return token_ok(self.config.needs_token, self.token, token)

    async def _page(self, request: Any) -> Any:
        from aiohttp import web

        if not self._authorised(request.query.get("token")):
            return web.Response(status=403, text="403: this viewer needs its access token (?token=…)\n")
        if self.config.needs_token:
            self.guard.trust(request)
        return web.Response(text=page_html(VIEWER_HTML), content_type="text/html")

    async def _http_offer(self, request: Any) -> Any:
        from aiohttp import web

        body, error = await read_offer(request, self.guard, self.config.needs_token, self.token)
        if body is None:
            return error
        sdp = body["sdp"]
        if body.get("type") != "offer":
            return web.json_response({"error": "expected an SDP offer"}, status=400)
        name = f"browser-{request.remote}-{secrets.token_hex(3)}"
        try:
            answer = await self.answer(name, sdp)
        except Exception as exc:
            return web.json_response({"error": f"offer refused: {exc}"}, status=400)
        return web.json_response({"sdp": answer, "type": "answer"})

    # ------------------------------------------------------------------ shutdown
    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for peer in list(self.peers):
            await self._close_peer(peer)
        for server in self._http_servers:
            server.close()
        if self._runner is not None:
            await self._runner.cleanup()
        for sock in self._http_sockets:  # the server closed those it took; a failed start leaves others
            sock.close()
        if self._router is not None:
            self._router.close(0)
            self._zctx.term()
        if self.source is not None:
            self.source.close()

    def status(self) -> str:
        src = self.source
        return f"frames rendered {src.frames if src else 0} (torn {src.torn if src else 0}) | peers " + (
            ", ".join(f"{p.name}:{p.pc.connectionState}:{p.track.sent}" for p in self.peers) or "none"
        )


async def serve_async(config: VideoConfig, stop: asyncio.Event, status_every_s: float = 5.0) -> None:
    server = MediaServer(config)
    try:
        await server.start()
        r = config.renderer
        # Ready means a frame exists (the renderer builds and warms every task scene first, and
        # needs the robot's state feed): launch files and tests wait for the line below.
        assert server.source is not None
        waited = 0.0
        while server.source.frames == 0 and not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
            waited += 0.1
            if abs(waited - 10.0) < 0.05:
                log.warning("no frame yet: is the robot running with its state feed on %s?", r.state_url)
        print(
            f"video: rendering {r.width}×{r.height} at {r.fps:g} fps; signalling on 127.0.0.1:{config.signal_port}"
            + (f"; viewer at {server.http_url}" if server.http_url else ""),
            flush=True,
        )
        trimmed_s = time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), status_every_s)
            log.info("%s", server.status())
            if time.monotonic() - trimmed_s >= TRIM_EVERY_S:  # a long-lived peer's churn of frames
                give_back_freed_memory()
                trimmed_s = time.monotonic()
    finally:
        await server.close()


def serve(config: VideoConfig) -> int:
    """Run the media process until SIGINT/SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="video: %(message)s")
    logging.getLogger("aioice").setLevel(logging.WARNING)
    logging.getLogger("aiortc").setLevel(logging.WARNING)

    if config.nice:
        os.nice(config.nice)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve_async(config, stop)

    asyncio.run(main())
    return 0

"""The surgeon page's server (`telesurg console --web`): an aiohttp server and the page's WebRTC peer
connections, in a thread of their own, so the console thread only ever takes requests from a queue
and hands over HUD snapshots.

- ``GET /`` serves the page (``web/surgeon.html``). Off loopback it needs the token (``?token=…``)
  and is served over HTTPS (browsers give the Gamepad API only to secure contexts), with a
  certificate the user gives or ``telesurg web-cert`` makes.
- ``POST /connect`` answers the page's peer connection, which carries four data channels the page
  opens: ``input`` and ``frames`` (unordered, no retransmissions: input events and displayed-frame
  reports, where only the newest counts and nothing stale may queue), ``control`` (reliable and
  ordered: engage, disengage, e-stop, reset, task, stages, take control; each answered), ``hud``
  (unordered, no retransmissions: the HUD at ``hud_rate_hz``).
- ``POST /video`` relays the page's own video offer through the console's robot connection to the
  media process, so the page receives the endoscope stream itself, never decoded and re-encoded on
  the way.

At most one page drives: the first to connect, until another asks to take control (explicitly, from
its page); every other page is watch-only (HUD and video, and the e-stop, which anyone may press).
A driving page that leaves releases the clutch at once; a page that comes back never re-engages by
itself (engaging is a request the person makes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import secrets
import ssl
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telesurg.teleop.console.page_input import PageInput, PageInputConfig
from telesurg.teleop.console.page_video import PageVideo
from telesurg.teleop.video.aiortc_patches import use_ice_addresses
from telesurg.teleop.video.httpguard import ConnectionGuard, GuardConfig, read_offer, token_ok
from telesurg.teleop.video.pages import page_html
from telesurg.teleop.video.webrtc import LOOPBACK_ADDRESSES, keep_candidates, rtc_configuration
from telesurg.teleop.wire.channels import is_loopback
from telesurg.teleop.wire.ports import listen_tcp

log = logging.getLogger("telesurg.console.web")

PAGE = Path(__file__).with_name("web") / "surgeon.html"
#: Requests a watch-only page may make (anyone may stop the arm).
WATCHER_OPS = frozenset({"estop", "take_control"})
OPS = frozenset({"engage", "disengage", "estop", "reset", "load_task", "stage", "take_control"})


@dataclass(frozen=True)
class WebConsoleConfig:
    """The surgeon page. ``host``/``port``: where it is served (port 0: any free one); ``token``: the
    access token (default a fresh random one), required off loopback or with ``token_required``;
    ``tls_cert``/``tls_key``: PEM files for HTTPS (required off loopback); ``ice_addresses``/
    ``ice_servers``: as the media process's (list the LAN address for a page on another machine);
    ``hud_rate_hz``: HUD snapshots sent to the pages; ``page``: the page's rate control."""

    host: str = "127.0.0.1"
    port: int = 8090
    token: str | None = None
    token_required: bool | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    ice_addresses: tuple[str, ...] = LOOPBACK_ADDRESSES
    ice_servers: tuple[str, ...] = ()
    hud_rate_hz: float = 60.0
    page: PageInputConfig = field(default_factory=PageInputConfig)
    http_guard: GuardConfig = field(default_factory=GuardConfig)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0–65535, got {self.port}")
        if self.token is not None and len(self.token) < 16:
            raise ValueError("token must be at least 16 characters")
        if not 1.0 <= self.hud_rate_hz <= 240.0:
            raise ValueError(f"hud_rate_hz must be in [1, 240], got {self.hud_rate_hz}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together")
        if not is_loopback(self.host) and not self.tls_cert:
            raise ValueError(
                f"the surgeon page on {self.host} (off loopback) needs HTTPS: set tls_cert and tls_key "
                "(telesurg web-cert DIR --host ADDR makes a pair)"
            )

    @property
    def needs_token(self) -> bool:
        return self.token_required if self.token_required is not None else not is_loopback(self.host)


@dataclass
class PageRequest:
    """A request from a page, served in the console thread; ``reply`` gets (ok, reason, extra)."""

    page: str
    op: str
    args: dict[str, Any]
    reply: Future


class _Page:
    def __init__(self, page_id: str, pc: Any) -> None:
        self.id = page_id
        self.pc = pc
        self.channels: dict[str, Any] = {}

    def send(self, label: str, text: str) -> None:
        ch = self.channels.get(label)
        if ch is not None and ch.readyState == "open":
            with contextlib.suppress(Exception):  # a channel closing under us: the page is leaving
                ch.send(text)


class WebServer:
    """See the module docstring. ``start``/``close``/``take_requests``/``publish`` from the console
    thread; everything else runs in the server's own thread and event loop."""

    def __init__(self, config: WebConsoleConfig, device: PageInput, video: PageVideo | None, clock: Any) -> None:
        self.config = config
        self.device = device
        self.video = video
        self.clock = clock  # the console's true clock (s), for arrival times
        self.token = config.token or secrets.token_urlsafe(24)
        self.guard = ConnectionGuard(config.http_guard)
        self.pages: dict[str, _Page] = {}
        #: The page that drives (None: none yet).
        self.driver: str | None = None
        self.url = ""
        self._requests: queue.SimpleQueue[PageRequest] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: Any = None
        self._servers: list[asyncio.AbstractServer] = []
        self._sockets: list[Any] = []

    # ------------------------------------------------------------------ console thread
    def start(self) -> str:
        """Bind, start the thread and its server; the page's address (with the token when needed)."""
        self._sockets = listen_tcp(self.config.host, self.config.port, "web port")
        started: Future = Future()
        self._thread = threading.Thread(target=self._run, args=(started,), name="web", daemon=True)
        self._thread.start()
        started.result(timeout=10.0)
        return self.url

    def take_requests(self) -> list[PageRequest]:
        out = []
        while True:
            try:
                out.append(self._requests.get_nowait())
            except queue.Empty:
                return out

    def publish(self, hud: dict[str, Any]) -> None:
        """Send one HUD snapshot to every page (its role added per page)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._send_hud, hud)

    def close(self) -> None:
        loop = self._loop
        if loop is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=5.0)
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout=5.0)
        for sock in self._sockets:
            sock.close()

    # ------------------------------------------------------------------ server thread
    def _run(self, started: Future) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start_http())
        except BaseException as exc:
            started.set_exception(exc)
            loop.close()
            return
        started.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _start_http(self) -> None:
        from aiohttp import web

        use_ice_addresses(self.config.ice_addresses)
        app = web.Application(client_max_size=256 * 1024, middlewares=[self.guard.middleware()])
        app.router.add_get("/", self._page)
        app.router.add_post("/connect", self._connect)
        app.router.add_post("/video", self._video)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        tls = None
        if self.config.tls_cert:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            server = await loop.create_server(self.guard.wrap(self._runner.server), sock=sock, ssl=tls)
            self._servers.append(server)
        port = self._sockets[0].getsockname()[1]
        query = f"?token={self.token}" if self.config.needs_token else ""
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        self.url = f"{'https' if tls else 'http'}://{host}:{port}/{query}"

    def _authorised(self, token: Any) -> bool:
        return token_ok(self.config.needs_token, self.token, token)

    async def _page(self, request: Any) -> Any:
        from aiohttp import web

        if not self._authorised(request.query.get("token")):
            return web.Response(status=403, text="403: the surgeon page needs its access token (?token=…)\n")
        if self.config.needs_token:
            self.guard.trust(request)
        return web.Response(text=page_html(PAGE), content_type="text/html", headers={"Cache-Control": "no-store"})

    async def _body(self, request: Any) -> tuple[dict[str, Any] | None, Any]:
        return await read_offer(request, self.guard, self.config.needs_token, self.token)

    async def _connect(self, request: Any) -> Any:
        from aiohttp import web
        from aiortc import RTCPeerConnection, RTCSessionDescription

        body, error = await self._body(request)
        if body is None:
            return error
        page_id = secrets.token_hex(4)
        pc = RTCPeerConnection(rtc_configuration(self.config.ice_servers))
        page = _Page(page_id, pc)
        self.pages[page_id] = page
        if self.driver is None:
            self._set_driver(page_id)

        @pc.on("datachannel")
        def _on_channel(channel: Any) -> None:
            page.channels[channel.label] = channel
            if channel.label == "input":
                channel.on("message", lambda m: self._on_input(page_id, m))
            elif channel.label == "frames":
                channel.on("message", lambda m: self._on_frame(page_id, m))
            elif channel.label == "control":
                channel.on("message", lambda m: self._on_control(page, m))
                channel.on("open", lambda: self._send_role(page))
                if channel.readyState == "open":
                    self._send_role(page)

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            if pc.connectionState in ("failed", "closed", "disconnected"):
                await self._drop(page)

        try:
            offer = RTCSessionDescription(keep_candidates(body["sdp"], self.config.ice_addresses), "offer")
            await pc.setRemoteDescription(offer)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await self._drop(page)
            return web.json_response({"error": f"offer refused: {exc}"}, status=400)
        return web.json_response({"sdp": pc.localDescription.sdp, "type": "answer", "page": page_id})

    async def _video(self, request: Any) -> Any:
        from aiohttp import web

        body, error = await self._body(request)
        if body is None:
            return error
        page = body.get("page")
        if not isinstance(page, str) or page not in self.pages:
            return web.json_response({"error": "connect first (POST /connect), then offer video"}, status=400)
        reply: Future = Future()
        self._requests.put(PageRequest(page, "video_offer", {"sdp": body["sdp"]}, reply))
        self.device.wake()
        try:
            ok, reason, extra = await asyncio.wait_for(asyncio.wrap_future(reply), 15.0)
        except TimeoutError:
            return web.json_response({"error": "the console did not answer"}, status=504)
        if not ok:
            return web.json_response({"error": reason}, status=502)
        return web.json_response({"sdp": extra["sdp"], "type": "answer"})

    def _set_driver(self, page_id: str | None) -> None:
        if page_id != self.driver:
            self.device.reset_clock()  # a new page's clock and sequence; the clutch is released
            if self.video is not None:
                self.video.page_left()
        self.driver = page_id
        for page in self.pages.values():
            self._send_role(page)

    def _send_role(self, page: _Page) -> None:
        role = "driver" if page.id == self.driver else "watcher"
        page.send("control", json.dumps({"type": "role", "role": role, "page": page.id}))

    def _on_input(self, page_id: str, message: Any) -> None:
        if page_id == self.driver:
            self.device.push(message, self.clock())

    def _on_frame(self, page_id: str, message: Any) -> None:
        if page_id == self.driver and self.video is not None:
            self.video.report(message, self.clock())

    def _on_control(self, page: _Page, message: Any) -> None:
        try:
            msg = json.loads(message)
            rid, op, args = msg["id"], msg["op"], msg.get("args", {})
            if not isinstance(args, dict) or op not in OPS:
                raise ValueError(op)
        except (ValueError, KeyError, TypeError):
            page.send("control", json.dumps({"type": "reply", "id": None, "ok": False, "reason": "bad request"}))
            return
        if page.id != self.driver and op not in WATCHER_OPS:
            reply = {"type": "reply", "id": rid, "ok": False, "reason": "this page is watch-only: take control first"}
            page.send("control", json.dumps(reply))
            return
        if op == "take_control":
            self._set_driver(page.id)
            page.send("control", json.dumps({"type": "reply", "id": rid, "ok": True, "reason": ""}))
            return
        future: Future = Future()

        def _done(f: Future) -> None:
            ok, reason, _ = f.result()
            answer = json.dumps({"type": "reply", "id": rid, "ok": ok, "reason": reason})
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(page.send, "control", answer)

        future.add_done_callback(_done)
        self._requests.put(PageRequest(page.id, op, args, future))
        self.device.wake()  # the console's loop serves it now, not at its next tick

    def _send_hud(self, hud: dict[str, Any]) -> None:
        text = json.dumps(hud, separators=(",", ":"))
        for page in list(self.pages.values()):
            page.send("hud", text)

    async def _drop(self, page: _Page) -> None:
        if self.pages.pop(page.id, None) is None:
            return
        if page.id == self.driver:
            self.device.page_left()  # the clutch is released at once
            if self.video is not None:
                self.video.page_left()
            self.driver = None
        await page.pc.close()

    async def _shutdown(self) -> None:
        for page in list(self.pages.values()):
            await self._drop(page)
        for server in self._servers:
            server.close()
        if self._runner is not None:
            await self._runner.cleanup()

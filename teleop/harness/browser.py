"""The web viewer in a real browser: Debian's headless Chromium driven by playwright (never
``playwright install``, which downloads a browser of its own), kept open on the media process's
page while a run goes on, so the video is served to a browser the whole time."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from telesurg.teleop.harness import procstats

#: Debian's Chromium (the ``chromium`` package).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # WebRTC on loopback: offer the loopback address as a host candidate, not an mDNS name.
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
)


class BrowserViewer:
    """``url`` (the viewer page with its token) open in headless Chromium at ``executable``.
    ``poll()`` reads the page's ``window.telesurg`` (frames decoded, connection state, error) and
    reloads the page when its connection failed. Use from one thread (playwright's sync API)."""

    def __init__(self, url: str, executable: str = CHROMIUM) -> None:
        from playwright.sync_api import sync_playwright

        self.url = url
        self.reloads = 0
        #: Frames decoded by pages closed by a reload (the page's own count starts again).
        self._decoded_before = 0
        self._last: dict[str, Any] = {}
        self._pw = sync_playwright().start()
        try:
            self._browser = self._pw.chromium.launch(
                executable_path=executable, headless=True, args=list(CHROMIUM_ARGS)
            )
            self._page = self._browser.new_page(viewport={"width": 800, "height": 600})
            self._page.goto(url)
        except BaseException:
            self._pw.stop()
            raise

    def poll(self) -> dict[str, Any]:
        """``frames_decoded`` (over every reload), ``connection``, ``error``, ``reloads``."""
        try:
            state = self._page.evaluate("window.telesurg") or {}
        except Exception as exc:  # the page or the browser went away: what it had decoded stays
            gone = {**self._last, "connection": "gone", "error": f"{type(exc).__name__}: {exc}"[:200]}
            return {"frames_decoded": 0, "reloads": self.reloads, **gone}
        decoded = int(state.get("framesDecoded") or 0)
        out = {
            "frames_decoded": self._decoded_before + decoded,
            "connection": str(state.get("connection", "")),
            "error": state.get("error"),
            "reloads": self.reloads,
        }
        if state.get("connection") in ("failed", "closed") or state.get("error"):
            self._decoded_before += decoded
            self.reloads += 1
            with contextlib.suppress(Exception):
                self._page.reload()
        self._last = out
        return out

    def pids(self) -> list[int]:
        """Chromium's processes (browser, renderers, GPU and utility processes) under this one."""
        return [pid for pid in procstats.descendants(os.getpid()) if "chrom" in procstats.executable(pid)]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._browser.close()
        with contextlib.suppress(Exception):
            self._pw.stop()

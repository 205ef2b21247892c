"""The browser viewer in a real browser: Debian's headless Chromium, driven by playwright (never
`playwright install`), opens the media process's page with its token and decodes the WebRTC video
of the robot host; without the token it is refused."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from telesurg.envs.safety import ForceLimits
from telesurg.teleop.harness.browser import CHROMIUM_ARGS

from ...system_programs import require
from ..conftest import RobotProcess
from .test_video import VideoStack

pytestmark = pytest.mark.slow


@pytest.fixture
def viewer_stack(tmp_path: Path, robot: Callable[..., RobotProcess]):
    require("chromium")  # before anything starts
    s = VideoStack(tmp_path, robot, token_required=True, token="test-token-0123456789abcdef")
    yield s
    s.close()


def _status(url: str, data: bytes | None = None) -> int:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_browser_receives_decoded_frames_with_the_token_and_is_refused_without(viewer_stack, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{viewer_stack.http_port}/"
    token = "test-token-0123456789abcdef"
    # Without (or with a wrong) token: no page and no signalling.
    assert _status(base) == 403
    assert _status(base + "?token=wrong-token-0123456789") == 403
    offer = json.dumps({"sdp": "v=0", "type": "offer", "token": "wrong"}).encode()
    assert _status(base + "offer", offer) == 403

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=require("chromium"), headless=True, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": 800, "height": 600})
            refused = page.goto(base)
            assert refused is not None and refused.status == 403
            assert page.evaluate("typeof window.telesurg") == "undefined"  # the viewer never loaded

            page.goto(base + f"?token={token}")
            deadline = time.monotonic() + 30
            state = {}
            while time.monotonic() < deadline:
                state = page.evaluate("window.telesurg")
                if state["error"] or state["framesDecoded"] >= 30:
                    break
                time.sleep(0.25)
            assert state["error"] is None, state
            assert state["connection"] == "connected", state
            assert state["framesDecoded"] >= 30, state
            # The metadata channel carries what the HUD draws (the surgeon page's HUD, without
            # controls): the supervisor state, the robot scene's force limits, the task.
            meta = state["meta"]
            assert meta is not None and meta["state"] in ("IDLE", "ENGAGED", "HOLD", "ESTOP")
            limits = ForceLimits()
            assert meta["force_limits_N"] == [limits.warn_N, limits.hard_N]
            assert meta["task"]["name"] == "Reach" and meta["force_band_N"] is None
            assert state["hudDrawn"] > 0

            with_hud, shot = tmp_path / "viewer_hud.png", tmp_path / "viewer.png"
            page.locator("#wrap").screenshot(path=str(with_hud))
            page.evaluate("document.getElementById('hud').style.display = 'none'")  # the video alone
            page.locator("video").screenshot(path=str(shot))
        finally:
            browser.close()

    from PIL import Image

    hud = np.asarray(Image.open(with_hud).convert("RGB"), dtype=float)
    image = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    # The HUD's bar across the top darkens the video under it; the force bar sits at the bottom left.
    assert hud[5:45].mean() < 0.8 * image[5:45].mean(), (hud[5:45].mean(), image[5:45].mean())
    assert hud[450:466, 10:310].mean() < 0.8 * image[450:466, 10:310].mean()
    assert image.shape[0] >= 200 and image.shape[1] >= 300, image.shape
    # Not blank: the tissue, the tool and the props give real contrast (a black or flat frame has ~0).
    assert image.std() > 10.0, image.std()
    assert image.mean() > 30.0, image.mean()


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether the server has closed (or reset) this connection."""
    try:
        return sock.recv(4096) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def test_a_slow_loris_cannot_hold_the_viewer_and_the_page_keeps_working(tmp_path: Path, robot) -> None:
    """200 half-sent requests from another loopback address (127.0.0.2): at most the per-address cap
    is held, each only until the request deadline, open files stay bounded, and a browser on
    127.0.0.1 loads the page and decodes video meanwhile."""
    from playwright.sync_api import sync_playwright

    require("chromium")
    stack = VideoStack(tmp_path, robot, http_guard={"request_timeout_s": 3.0, "max_untrusted_per_address": 32})
    try:
        pid = stack.video.proc.pid
        fds_before = len(os.listdir(f"/proc/{pid}/fd"))
        attackers: list[socket.socket] = []

        def attack(n: int) -> None:  # open n half-sent requests
            for _ in range(n):
                sock = socket.socket()
                sock.bind(("127.0.0.2", 0))
                sock.connect(("127.0.0.1", stack.http_port))
                sock.sendall(b"GET / HTTP/1.1\r\nHost: viewer\r\n")  # never finished
                sock.setblocking(False)
                attackers.append(sock)

        def still_held() -> list[socket.socket]:  # closes (here) what the server closed
            for s in [s for s in attackers if _closed_by_peer(s)]:
                s.close()
                attackers.remove(s)
            return list(attackers)

        attack(200)
        time.sleep(0.5)
        held = still_held()
        assert len(held) <= 32, len(held)
        assert len(os.listdir(f"/proc/{pid}/fd")) <= fds_before + 40
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=require("chromium"), headless=True, args=list(CHROMIUM_ARGS))
            try:
                page = browser.new_page()
                response = page.goto(f"http://127.0.0.1:{stack.http_port}/")
                assert response is not None and response.status == 200
                state: dict = {}
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    for s in held:  # the slow loris trickles on: a byte now and then never completes a request
                        with contextlib.suppress(OSError):
                            s.send(b"X")
                    attack(20)  # and opens more as its connections are closed
                    time.sleep(0.05)
                    held = still_held()
                    assert len(held) <= 32, len(held)
                    state = page.evaluate("window.telesurg")
                    if state["error"] or state["framesDecoded"] >= 10:
                        break
                    time.sleep(0.25)
                assert state["error"] is None and state["framesDecoded"] >= 10, state
            finally:
                browser.close()
        # Past the request deadline every half-sent request is gone, trickle or not.
        time.sleep(4.0)
        still = still_held()
        assert not still, f"{len(still)} slow connections still held after the request deadline"
        assert len(os.listdir(f"/proc/{pid}/fd")) <= fds_before + 8
        for s in attackers:
            s.close()
    finally:
        stack.close()


def test_the_viewer_says_stale_within_a_second_when_video_stops_and_live_when_it_resumes(viewer_stack) -> None:
    import signal

    from playwright.sync_api import sync_playwright

    url = f"http://127.0.0.1:{viewer_stack.http_port}/?token=test-token-0123456789abcdef"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=require("chromium"), headless=True, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": 800, "height": 600})
            page.goto(url)

            def status_becomes(prefix: str, within_s: float) -> float:
                start = time.monotonic()
                while time.monotonic() - start < within_s:
                    if page.evaluate("window.telesurg.status").startswith(prefix):
                        return time.monotonic() - start
                    page.wait_for_timeout(50)
                raise AssertionError(f"not {prefix!r} within {within_s} s: {page.evaluate('window.telesurg')}")

            status_becomes("live", 30.0)
            pid = viewer_stack.video.proc.pid
            os.kill(pid, signal.SIGSTOP)  # the media process freezes: no frame reaches the page
            try:
                took = status_becomes("stale", 3.0)
            finally:
                os.kill(pid, signal.SIGCONT)
            assert took < 1.5, took  # 1 s without a frame, plus the page's 200 ms status tick
            assert page.inner_text("#status").startswith("stale")
            status_becomes("live", 10.0)
        finally:
            browser.close()

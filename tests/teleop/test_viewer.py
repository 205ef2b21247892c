"""The browser viewer in a real browser: Debian's headless Chromium, driven by playwright (never
`playwright install`), opens the media process's page with its token and decodes the WebRTC video
of the robot host; without the token it is refused."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from teleop.harness.browser import CHROMIUM_ARGS

from ..system_programs import require
from .conftest import RobotProcess
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
            # The metadata channel works: the page shows the supervisor state and force.
            assert state["meta"] is not None and state["meta"]["state"] in ("IDLE", "ENGAGED", "HOLD", "ESTOP")
            assert page.inner_text("#state") == state["meta"]["state"]

            shot = tmp_path / "viewer.png"
            page.evaluate("document.getElementById('hud').style.display = 'none'")  # the video alone
            page.locator("video").screenshot(path=str(shot))
        finally:
            browser.close()

    from PIL import Image

    image = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert image.shape[0] >= 200 and image.shape[1] >= 300, image.shape
    # Not blank: the tissue, the tool and the props give real contrast (a black or flat frame has ~0).
    assert image.std() > 10.0, image.std()
    assert image.mean() > 30.0, image.mean()

"""The browser surgeon console through the real stack: a robot, its media process, `telesurg console
--web` and Debian's headless Chromium (playwright, never `playwright install`). The page reads the
keyboard and draws; the console core maps and commands; the robot's MCAP recording is the judge."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from telesurg.teleop.harness.browser import CHROMIUM_ARGS
from telesurg.teleop.harness.process import CliProcess
from telesurg.teleop.robot.reader import read_topic
from telesurg.teleop.settings import write_toml
from telesurg.teleop.wire.channels import free_loopback_ports

from ...system_programs import require
from ..conftest import RobotProcess
from ..video.test_video import VideoStack
from ..video.test_viewer import _status

pytestmark = pytest.mark.slow

#: The key that moves the hand along each axis, + and −.
KEYS = {0: ("KeyD", "KeyA"), 1: ("KeyW", "KeyS"), 2: ("KeyR", "KeyF")}


class SurgeonStack:
    """Robot + media process + the browser console's server (`telesurg console --web`)."""

    def __init__(
        self,
        tmp: Path,
        robot: Callable[..., RobotProcess],
        video: dict[str, Any] | None = None,
        correction: dict[str, Any] | None = None,
        **web: Any,
    ) -> None:
        self.video = VideoStack(tmp, robot, **(video or {}))
        self.robot = self.video.robot
        (self.web_port,) = free_loopback_ports(1)
        ep = self.robot.endpoints
        tables = {
            "": {"input": "web", "client": "surgeon"},
            "endpoints": {
                "cmd_port": ep.cmd_port,
                "telemetry_port": ep.telemetry_port,
                "control_port": ep.control_port,
            },
            "video": {"enabled": True},
            "web": {"port": self.web_port, **web},
            "correction": correction or {},
        }
        cfg = write_toml(tmp / "surgeon.toml", "console", tables)
        self.console = CliProcess(["console", "--config", str(cfg)], tmp / "surgeon.log", ready="surgeon page at")
        if not self.console.wait_ready(60):
            self.close()
            raise RuntimeError("the browser console did not start:\n" + "\n".join(self.console.lines[-30:]))
        line = next(ln for ln in self.console.lines if "surgeon page at" in ln)
        self.url = line.split("surgeon page at ", 1)[1].strip()

    def close(self) -> None:
        self.console.stop(10)
        self.video.close()


@pytest.fixture
def surgeon(tmp_path: Path, robot: Callable[..., RobotProcess]) -> Iterator[Callable[..., SurgeonStack]]:
    require("chromium")
    made: list[SurgeonStack] = []

    def _make(
        video: dict[str, Any] | None = None, correction: dict[str, Any] | None = None, **web: Any
    ) -> SurgeonStack:
        s = SurgeonStack(tmp_path, robot, video, correction, **web)
        made.append(s)
        return s

    yield _make
    for s in made:
        s.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=require("chromium"), headless=True, args=list(CHROMIUM_ARGS))
        try:
            yield b
        finally:
            b.close()


def _state(page: Any) -> dict[str, Any]:
    return page.evaluate("() => JSON.parse(JSON.stringify(window.telesurg))")


def _wait(page: Any, what: str, check: Callable[[dict[str, Any]], bool], timeout_s: float = 30.0) -> dict[str, Any]:
    end = time.monotonic() + timeout_s
    s = _state(page)
    while time.monotonic() < end:
        s = _state(page)
        if check(s):
            return s
        page.wait_for_timeout(50)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s; page state {json.dumps(s)[:1500]}")


def _open(browser: Any, url: str) -> Any:
    page = browser.new_page(viewport={"width": 1000, "height": 520})
    page.goto(url)
    _wait(page, "the page drives, with telemetry and displayed video", _ready)
    return page


def _ready(s: dict[str, Any]) -> bool:
    return s["role"] == "driver" and s["hud"] is not None and s["hud"].get("task") is not None and s["frames"] > 5


def _tool_goal(s: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    hud = s["hud"]
    return np.asarray(hud["tool_m"], dtype=float), np.asarray(hud["task"]["desired"][:3], dtype=float)


class Keys:
    """The keyboard as a person holds it: the clutch (Space), a key per axis direction, Shift."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.held: set[str] = set()

    def engage(self) -> None:
        self.page.keyboard.press("KeyE")

    def set(self, hand: np.ndarray, clutch: bool, fine: bool = False) -> None:
        want = {KEYS[i][0 if hand[i] > 0 else 1] for i in range(3) if abs(hand[i]) > 0.3}
        want |= {"Space"} if clutch else set()
        want |= {"Shift"} if fine else set()
        for k in self.held - want:
            self.page.keyboard.up(k)
        for k in want - self.held:
            self.page.keyboard.down(k)
        self.held = want


#: A standard-mapping gamepad the page reads through ``navigator.getGamepads`` (the test sets it).
PAD_SCRIPT = """
window.__pad = { axes: [0, 0, 0, 0], buttons: Array.from({ length: 17 }, () => ({ pressed: false, value: 0 })) };
navigator.getGamepads = () => [{ index: 0, id: "synthetic standard gamepad", mapping: "standard", connected: true,
  timestamp: performance.now(), axes: window.__pad.axes.slice(),
  buttons: window.__pad.buttons.map((b) => ({ pressed: b.pressed, touched: b.pressed, value: b.value })) }];
"""


class Pad:
    """The synthetic gamepad: left stick x/y and right stick y as the hand's x, y, z (stick y is
    down-positive), A held = clutch, RB = fine, Y = engage."""

    def __init__(self, page: Any) -> None:
        self.page = page

    def _buttons(self, **pressed: bool) -> None:
        self.page.evaluate(
            "(p) => { for (const [i, v] of Object.entries(p)) "
            "window.__pad.buttons[i] = {pressed: v, value: v ? 1 : 0}; }",
            {str({"a": 0, "rb": 5, "y": 3}[k]): v for k, v in pressed.items()},
        )

    def engage(self) -> None:
        self._buttons(y=True)
        self.page.wait_for_timeout(100)
        self._buttons(y=False)

    def set(self, hand: np.ndarray, clutch: bool, fine: bool = False) -> None:
        x, y, z = (float(v) for v in np.clip(hand, -1.0, 1.0))
        self.page.evaluate("(a) => { window.__pad.axes = a; }", [x, -y, 0.0, -z])
        self._buttons(a=clutch, rb=fine)


def _drive_to_goal(page: Any, device: Keys | Pad, seen: list[dict[str, Any]], timeout_s: float = 60.0) -> dict:
    """Drive the tool to the Reach goal as a person would: first learn how each hand axis moves the
    tool in the image (clutch and full deflection briefly), then deflect toward the goal (the
    keyboard: the keys of the axes that matter; the gamepad: in proportion), fine near the goal.
    Every HUD snapshot read goes to ``seen``."""
    columns = []
    for axis in range(3):
        before = _tool_goal(_state(page))[0]
        device.set(np.eye(3)[axis], clutch=True)
        page.wait_for_timeout(400)
        device.set(np.zeros(3), clutch=False)
        page.wait_for_timeout(300)
        columns.append(_tool_goal(_state(page))[0] - before)
    gain = np.stack(columns, axis=1)  # tool displacement per hand axis
    assert np.linalg.matrix_rank(gain, tol=1e-4) == 3, f"the input does not move the tool in 3-D: {gain}"
    end = time.monotonic() + timeout_s
    try:
        while time.monotonic() < end:
            s = _state(page)
            seen.append(s["hud"])
            if s["hud"]["task"]["success"]:
                return s
            tool, goal = _tool_goal(s)
            u = np.linalg.solve(gain, goal - tool)  # hand-axis "strokes" (of 0.4 s) to the goal
            fine = bool(np.linalg.norm(goal - tool) < 0.006)
            device.set(np.clip(u * (10.0 if fine else 3.0), -1.0, 1.0), clutch=True, fine=fine)
            page.wait_for_timeout(40)
    finally:
        device.set(np.zeros(3), clutch=False)
    raise AssertionError(f"Reach not reached in {timeout_s:.0f} s: {_state(page)['hud']}")


@pytest.mark.parametrize("kind", ["keyboard", "gamepad"])
def test_the_keyboard_and_the_gamepad_drive_reach_to_success_on_the_real_stack(surgeon, browser, kind) -> None:
    stack = surgeon()
    page = browser.new_page(viewport={"width": 1000, "height": 520})
    if kind == "gamepad":
        page.add_init_script(PAD_SCRIPT)
    page.goto(stack.url)
    _wait(page, "the page drives, with telemetry and displayed video", _ready)
    device = Keys(page) if kind == "keyboard" else Pad(page)
    device.engage()
    s = _wait(page, "engaged", lambda s: s["hud"]["engaged"])
    start_tool = _tool_goal(s)[0]
    seen: list[dict[str, Any]] = []
    s = _drive_to_goal(page, device, seen)
    goal = _tool_goal(s)[1]
    shot = page.screenshot()
    device.engage()  # the same button disengages
    _wait(page, "disengaged", lambda s: not s["hud"]["engaged"])
    page.close()
    # Stopped as a person stops it (Ctrl-C): it disengages, prints its summary and exits cleanly.
    assert stack.console.stop(10) == 0, "\n".join(stack.console.lines[-30:])
    assert any("console summary" in line for line in stack.console.lines)
    stack.robot.kill()  # the recording is flushed and closed
    # The robot's recording: the page's commands moved the tip from the start to the goal.
    states = list(read_topic(stack.robot.record, "/robot/state"))
    engaged = [r for r in states if r["state"] == "ENGAGED"]
    assert engaged, "the robot was never engaged"
    tips = np.asarray([r["tip_m"] for r in engaged])
    assert np.linalg.norm(tips[0] - start_tool) < 0.003
    assert np.min(np.linalg.norm(tips - goal, axis=1)) < 0.005
    commands = [r for r in read_topic(stack.robot.record, "/robot/commands") if r["accepted"] and r["clutch"]]
    assert len(commands) > 50, "the tool was driven by clutched commands"
    # What the HUD showed is what the robot recorded at that robot time: state, tool, force.
    by_time = {round(r["robot_s"], 6): r for r in states}
    matched = 0
    for hud in seen:
        rec = by_time.get(round(hud["robot_s"], 6))
        if rec is None:
            continue
        matched += 1
        assert hud["state"] == rec["state"]
        assert np.linalg.norm(np.asarray(hud["tool_m"]) - rec["tip_m"]) < 1e-4
        assert abs(hud["force_N"] - rec["force_mag_N"]) < 0.05
    assert matched > 0.8 * len(seen) > 10, (matched, len(seen))
    assert len(shot) > 20_000  # a real screenshot, not a blank page


def test_the_estop_button_latches_and_closing_the_page_releases_the_clutch(surgeon, browser) -> None:
    stack = surgeon()
    page = _open(browser, stack.url)
    page.keyboard.press("KeyE")
    _wait(page, "engaged", lambda s: s["hud"]["engaged"])
    # Hold the clutch and a key, then close the page: the console stops clutching at once.
    page.keyboard.down("Space")
    page.keyboard.down("KeyD")
    page.wait_for_timeout(300)
    page.close()
    time.sleep(1.0)
    page = _open(browser, stack.url)  # a new page drives, engaged but never clutched by itself
    s = _wait(page, "the new page sees the still-engaged arm", lambda s: s["hud"]["engaged"])
    tool_a = _tool_goal(s)[0]
    page.wait_for_timeout(500)
    tool_b = _tool_goal(_state(page))[0]
    assert np.linalg.norm(tool_b - tool_a) < 0.0005, "the tool moved with no page holding the clutch"
    page.click("#estop")
    s = _wait(page, "e-stop latched", lambda s: s["hud"]["state"] == "ESTOP")
    page.wait_for_timeout(500)
    assert _state(page)["hud"]["state"] == "ESTOP"  # latched, not a blip
    page.close()
    stack.console.stop(10)
    stack.robot.kill()
    events = list(read_topic(stack.robot.record, "/robot/events"))
    assert any(e["state"] == "ESTOP" for e in events), events


def test_a_wrong_or_missing_token_is_refused_by_the_page_and_every_endpoint(surgeon, browser) -> None:
    token = "surgeon-token-0123456789abcdef"
    stack = surgeon(token_required=True, token=token)
    base = f"http://127.0.0.1:{stack.web_port}/"
    assert stack.url == base + f"?token={token}"
    for url in (base, base + "?token=wrong-token-0123456789"):
        assert _status(url) == 403
    for endpoint in ("connect", "video"):
        for body in ({"sdp": "v=0", "type": "offer"}, {"sdp": "v=0", "type": "offer", "token": "wrong"}):
            assert _status(base + endpoint, json.dumps(body).encode()) == 403
    page = _open(browser, stack.url)  # with the token it drives
    page.close()


def _viewer(browser: Any, port: int) -> Any:
    page = browser.new_page(viewport={"width": 800, "height": 600})
    page.goto(f"http://127.0.0.1:{port}/")
    return page


def test_observers_never_close_the_surgeons_video_and_beyond_capacity_are_refused(surgeon, browser) -> None:
    # What the media process controls: observers share the one encoded stream, a full house refuses
    # a newcomer with the reason instead of closing someone's peer, and the surgeon's video stays
    # connected and displayed throughout. (Whether the surgeon's video stays under the hold
    # threshold while three more Chromium pages decode on these two CPUs is a benchmark figure:
    # bench/browser_console.py.)
    stack = surgeon(video={"max_peers": 4})  # the surgeon page and 3 observers fill it
    page = _open(browser, stack.url)
    viewers = [_viewer(browser, stack.video.http_port) for _ in range(3)]
    for v in viewers:
        _wait(v, "an observer receives video", lambda s: s["framesDecoded"] > 5)
    late = _viewer(browser, stack.video.http_port)  # the fifth peer: refused with the reason
    s = _wait(late, "the late observer is refused", lambda s: s["error"] is not None, 15.0)
    assert "capacity" in s["error"], s["error"]
    frames = _state(page)["frames"]
    end = time.monotonic() + 3.0
    while time.monotonic() < end:
        assert _state(page)["video"] == "connected"
        page.wait_for_timeout(100)
    assert _state(page)["frames"] > frames + 20  # still displayed, frame after frame
    for v in viewers:
        assert _state(v)["connection"] == "connected"
    log = "\n".join(stack.video.video.lines)
    assert "refused" in log and "closing" not in log


def test_the_page_over_https_with_its_token(surgeon, browser, tmp_path: Path) -> None:
    from telesurg.teleop.console.certificate import make_web_certificate

    cert, key = make_web_certificate(tmp_path / "cert", ["127.0.0.1"])
    token = "surgeon-token-0123456789abcdef"
    stack = surgeon(token_required=True, token=token, tls_cert=str(cert), tls_key=str(key))
    assert stack.url == f"https://127.0.0.1:{stack.web_port}/?token={token}"
    context = browser.new_context(ignore_https_errors=True)  # the test trusts its own certificate
    page = context.new_page()
    page.goto(stack.url)
    s = _wait(page, "the page drives over HTTPS, with telemetry and displayed video", _ready)
    assert page.evaluate("() => window.isSecureContext") and s["error"] is None
    context.close()


def test_off_loopback_the_page_needs_https_and_a_token() -> None:
    from telesurg.teleop.console.web import WebConsoleConfig

    with pytest.raises(ValueError, match="needs HTTPS"):
        WebConsoleConfig(host="10.1.2.3")
    cfg = WebConsoleConfig(host="10.1.2.3", tls_cert="a.crt", tls_key="a.key")
    assert cfg.needs_token and not WebConsoleConfig().needs_token
    with pytest.raises(ValueError, match="go together"):
        WebConsoleConfig(tls_cert="a.crt")


def test_in_a_still_frame_the_twins_ghost_lands_on_the_tool(surgeon, browser, tmp_path: Path) -> None:
    from PIL import Image

    stack = surgeon(correction={"twin_enabled": True})
    page = _open(browser, stack.url)
    s = _wait(page, "the ghost is drawn", lambda s: bool(s["hud"].get("overlay", {}).get("ghost")))
    tip = s["hud"]["overlay"]["ghost"][-1]
    assert tip is not None
    page.wait_for_timeout(500)  # the arm is still: the frame shows the tool where the twin is
    page.evaluate("document.getElementById('hud').style.visibility = 'hidden'")
    page.locator("#video").screenshot(path=str(tmp_path / "frame.png"))
    image = np.asarray(Image.open(tmp_path / "frame.png").convert("RGB"), dtype=float)
    h, w = image.shape[:2]
    x, y = round(tip[0] * w), round(tip[1] * h)
    # The metal tool on pink tissue: grey, neither dark (shadow, vessels) nor a blown-out highlight.
    grey = (np.ptp(image, axis=2) < 30) & (image.mean(axis=2) > 60) & (image.min(axis=2) < 235)
    ys, xs = np.nonzero(grey)
    assert len(xs) > 50, "no tool in the frame"
    distance = np.hypot(xs - x, ys - y)
    assert distance.min() < 8, f"the ghost's tip ({x}, {y}) is {distance.min():.0f} px from the tool"
    # and on the tool's end, not on another grey thing (the needle): tool pixels all around it
    assert (distance < 20).sum() > 60, f"only {(distance < 20).sum()} tool pixels within 20 px of the ghost's tip"


def test_after_a_stale_video_hold_e_re_engages_instead_of_disengaging(surgeon, browser) -> None:
    import os
    import signal

    stack = surgeon()
    page = _open(browser, stack.url)
    keys = Keys(page)
    keys.engage()
    _wait(page, "engaged", lambda s: s["hud"]["engaged"])
    pid = stack.video.video.proc.pid
    os.kill(pid, signal.SIGSTOP)  # the video stops reaching the page
    try:
        _wait(page, "the console holds for stale video", lambda s: bool(s["hud"]["hold"]), 10.0)
    finally:
        os.kill(pid, signal.SIGCONT)
    _wait(page, "fresh video again", lambda s: s["hud"]["video_age_ms"] is not None and s["hud"]["video_age_ms"] < 300)
    assert _state(page)["hud"]["hold"]  # the hold waits for the surgeon
    keys.engage()  # E while holding: re-engage
    s = _wait(page, "the hold ended", lambda s: not s["hud"]["hold"], 10.0)
    assert s["hud"]["engaged"]  # still engaged: E did not disengage
    # and the clutch moves the tool again
    before = _tool_goal(s)[0]
    keys.set(np.array([1.0, 0.0, 0.0]), clutch=True)
    page.wait_for_timeout(400)
    keys.set(np.zeros(3), clutch=False)
    page.wait_for_timeout(300)
    assert np.linalg.norm(_tool_goal(_state(page))[0] - before) > 0.002


def test_dragging_on_the_video_moves_the_tool_in_the_image_plane(surgeon, browser) -> None:
    """Pressing on the video holds the clutch; dragging right moves the tool as the right-arrow key
    (D) does, dragging up as W does; releasing stops it."""
    stack = surgeon()
    page = _open(browser, stack.url)
    keys = Keys(page)
    keys.engage()
    _wait(page, "engaged", lambda s: s["hud"]["engaged"])

    def moved_by(action: Callable[[], None]) -> np.ndarray:
        before = _tool_goal(_state(page))[0]
        action()
        page.wait_for_timeout(300)  # released: the tool settles where the hand left it
        return _tool_goal(_state(page))[0] - before

    def key(code: str) -> Callable[[], None]:
        def press() -> None:
            page.keyboard.down("Space")
            page.keyboard.down(code)
            page.wait_for_timeout(400)
            page.keyboard.up(code)
            page.keyboard.up("Space")

        return press

    def drag(dx: float, dy: float) -> Callable[[], None]:
        def move() -> None:
            box = page.locator("#hud").bounding_box()
            x, y = box["x"] + 320, box["y"] + 240
            page.mouse.move(x, y)
            page.mouse.down()
            page.mouse.move(x + dx, y + dy, steps=4)
            page.wait_for_timeout(400)
            page.mouse.up()

        return move

    for code, (dx, dy) in (("KeyD", (80, 0)), ("KeyW", (0, -80))):
        by_key, by_drag = moved_by(key(code)), moved_by(drag(dx, dy))
        # 80 px is full speed: about as far as the key held as long
        assert np.linalg.norm(by_drag) > 0.5 * np.linalg.norm(by_key) > 0.001, (by_key, by_drag)
        cosine = by_key @ by_drag / (np.linalg.norm(by_key) * np.linalg.norm(by_drag))
        assert cosine > 0.9, (code, by_key, by_drag)
    still = moved_by(lambda: page.wait_for_timeout(300))  # nothing pressed: nothing moves
    assert np.linalg.norm(still) < 5e-4, still

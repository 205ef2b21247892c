"""The browser front end of the console (`telesurg console --web`): the surgeon's page drives the
console core through ``tick`` and its requests only, exactly as the terminal does. Per tick, in the
console thread: serve the page's requests (engage, e-stop, reset, task, stages, its video offer),
tick the core (the page's input device is read inside), and every 1/``hud_rate_hz`` hand the HUD
snapshot to the page server (``telesurg.teleop.console.web``)."""

from __future__ import annotations

import contextlib
import math
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from telesurg.envs.tasks import TASKS_BY_NAME
from telesurg.teleop.console.alerts import Alerts
from telesurg.teleop.console.episodes import print_summary
from telesurg.teleop.console.page_input import PageInput
from telesurg.teleop.console.page_video import PageVideo
from telesurg.teleop.console.robot_link import ConsoleError, RobotLink
from telesurg.teleop.console.web import PageRequest, WebServer
from telesurg.teleop.correction.fixtures import VirtualFixtures
from telesurg.teleop.video.overlay import project
from telesurg.teleop.wire import protocol as p
from telesurg.teleop.wire.timing import FixedRate

if TYPE_CHECKING:
    from telesurg.teleop.console.core import Console


def alerts_now(console: Console, alerts: Alerts, now: float) -> dict[str, str]:
    """This tick's early warnings (``telesurg.teleop.console.alerts``) from the newest telemetry."""
    tel, welcome = console.link.telemetry, console.welcome
    if tel is None:
        return {}
    warn_N = welcome.force_limits_N[0] if welcome is not None and welcome.force_limits_N else 3.0
    forbidden = [(np.asarray(lo), np.asarray(hi)) for lo, hi in welcome.forbidden_m] if welcome else []
    video = console.video if isinstance(console.video, PageVideo) else None
    age = video.age_s(now) if video is not None else None
    return alerts.update(
        now,
        force_N=tel.force_mag_N,
        warn_N=warn_N,
        tool_m=np.asarray(tel.tool.pos_m, dtype=float),
        forbidden_m=forbidden,
        delay_s=console.delay_estimate_s(),
        video_age_s=age if age is not None and math.isfinite(age) else None,
        video_hold_s=console.config.video.max_age_s,
    )


#: The 12 edges of a box, as pairs of corner indices (corner i has x from bit 0, y from bit 1, z from bit 2).
BOX_EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]


def _image_points(points_m: np.ndarray, camera: p.Camera) -> list[list[float] | None]:
    """Base-frame points as image fractions (x right, y down, 0–1), None behind the camera."""
    px, front = project(np.asarray(points_m, dtype=float).reshape(-1, 3), camera, camera.width, camera.height)
    return [
        [round(float(u) / camera.width, 4), round(float(v) / camera.height, 4)] if ok else None
        for (u, v), ok in zip(px, front, strict=True)
    ]


def scene_overlay(console: Console, camera: p.Camera | None) -> dict[str, Any]:
    """What the page draws over the video, already projected into the image (the page only draws):
    the local twin's ghost (its tool skeleton now), the forbidden regions' edges and the guidance path."""
    if camera is None:
        return {}
    out: dict[str, Any] = {}
    twin = console.twin
    if twin is not None and twin.ready:
        out["ghost"] = _image_points(twin.skeleton_m(), camera)
    welcome = console.welcome
    if welcome is not None and welcome.forbidden_m:
        edges = []
        for lo, hi in welcome.forbidden_m:
            corners = np.array([[(hi if i >> k & 1 else lo)[k] for k in range(3)] for i in range(8)])
            pts = _image_points(corners, camera)
            edges += [[pts[a], pts[b]] for a, b in BOX_EDGES if pts[a] is not None and pts[b] is not None]
        out["forbidden"] = edges
    path = next(
        (s.path_m for s in console.tool_stages if isinstance(s, VirtualFixtures) and s.path_m is not None), None
    )
    if path is None and welcome is not None and welcome.guidance is not None:
        path = np.asarray(welcome.guidance.path_m, dtype=float)
    if path is not None and len(path) >= 2:
        out["path"] = _image_points(path, camera)
    return out


def hud(console: Console, web: WebServer, alerts: dict[str, str] | None = None) -> dict[str, Any]:
    """What the page draws: the robot's state as the console last saw it, the console's own figures,
    the early warnings and the correction stages."""
    tel = console.link.telemetry
    welcome = console.welcome
    video = console.video if isinstance(console.video, PageVideo) else None
    out: dict[str, Any] = {
        "link_ok": console.link.link_ok,
        "engaged": bool(console.session),
        "estop_pressed": console.estop_pressed,
        "hold": console.video_hold,
        "holds": console.video_holds,
        "input": (
            {"accepted": console.device.accepted, "dropped": dict(console.device.dropped)}
            if isinstance(console.device, PageInput)
            else None
        ),
        "cmd_latency_ms": console.latencies[-1] * 1e3 if console.latencies else None,
        "video_latency_ms": (video.latency_s() or math.nan) * 1e3 if video is not None else None,
        "video_age_ms": None,
        "stages": {s.name: s.enabled for s in (*console.hand_stages, *console.tool_stages)},
        "force_limits_N": list(welcome.force_limits_N) if welcome and welcome.force_limits_N else None,
        "driver": web.driver,
        "alerts": alerts or {},
    }
    if video is not None:
        age = video.age_s(console.link.true_clock())
        out["video_age_ms"] = age * 1e3 if math.isfinite(age) else None
        if out["video_latency_ms"] is not None and not math.isfinite(out["video_latency_ms"]):
            out["video_latency_ms"] = None
    camera = console.twin.camera if console.twin is not None and console.twin.camera is not None else None
    if tel is not None and tel.camera is not None:
        camera = tel.camera
    out["overlay"] = scene_overlay(console, camera)
    if tel is not None:
        out.update(
            state=tel.state,
            reason=tel.reason,
            force_N=tel.force_mag_N,
            tool_m=list(tel.tool.pos_m),
            jaw=tel.jaw,
            clock_offset_ms=tel.clock_offset_s * 1e3,
            clock_rtt_ms=tel.clock_rtt_s * 1e3,
            robot_s=tel.robot_s,
        )
        if tel.task is not None:
            t = tel.task
            task_class = TASKS_BY_NAME.get(t.name)
            out["force_band_N"] = task_class.force_band_N() if task_class is not None else None
            out["task"] = {
                "name": t.name,
                "seed": t.seed,
                "success": t.success,
                "episode_s": t.episode_s,
                "achieved": t.achieved_goal,
                "desired": t.desired_goal,
            }
    return out


def _serve(console: Console, req: PageRequest) -> tuple[bool, str, dict[str, Any]]:
    """One page request, in the console thread: (ok, reason, extra)."""
    op, args = req.op, req.args
    if op == "estop":
        console.press_estop()  # every command carries it, and the request repeats until acknowledged
        console.estop("e-stop pressed on the surgeon page")
        return True, "", {}
    if op == "engage":
        if console.estop_pressed:
            return False, "e-stop pressed: reset first", {}
        if console.session:  # engaged already: a re-engage ends the video hold once video is fresh
            device = console.device
            if isinstance(device, PageInput):
                device.press_engage()
            return True, "", {}
        console.engage()
        return True, "", {}
    if op == "disengage":
        console.disengage()
        return True, "", {}
    if op == "reset":
        console.reset()
        tel = console.link.telemetry
        console.release_estop()
        return True, "" if tel is None else f"robot was {tel.state}", {}
    if op == "load_task":
        task, seed = args.get("task"), args.get("seed", 0)
        if not isinstance(task, str) or not isinstance(seed, int) or isinstance(seed, bool):
            return False, "load_task needs {task: str, seed: int}", {}
        console.load_task(task, seed)
        return True, "", {}
    if op == "stage":
        name, enabled = args.get("name"), args.get("enabled")
        if not isinstance(name, str) or not isinstance(enabled, bool):
            return False, "stage needs {name: str, enabled: bool}", {}
        console.set_stage(name, enabled)
        return True, "", {}
    if op == "video_offer":
        resp = console.link.request(p.Offer(sdp=args["sdp"], peer=f"page-{req.page}"[:64]))
        if not isinstance(resp, p.Answer):
            return False, f"video refused: {getattr(resp, 'reason', resp)}", {}
        return True, "", {"sdp": resp.sdp}
    return False, f"unknown request {op!r}", {}


def wait_for_tick(
    link: RobotLink, rate: FixedRate, device: PageInput, last_tick_s: float, serve: Callable[[], None]
) -> None:
    """Wait for the next tick after the one at ``last_tick_s``. The page's requests (e-stop above
    all) and new input (a key pressed, the clutch released) end the wait: a request is served at
    once (``serve``); new input is commanded now rather than up to a period later, by a tick that
    takes the place of the next scheduled one (the schedule keeps its phase). An early tick comes no
    sooner than half a period after the last one, nor before the slot it takes was a period away:
    however often the page sends, there is never more than one tick per period."""
    rate.advance()
    while link.wait_until(rate.deadline_s, device.wake_fd):
        serve()
        if device.input_changed:
            earliest = max(last_tick_s + rate.period_s / 2, rate.deadline_s - rate.period_s)
            if link.true_clock() < earliest:
                link.wait_until(earliest)
            return


def _serve_requests(console: Console, web: WebServer) -> None:
    """Serve every request the page has made, in the console thread."""
    for req in web.take_requests():
        try:
            req.reply.set_result(_serve(console, req))
        except (ConsoleError, TimeoutError, ValueError) as exc:
            req.reply.set_result((False, str(exc), {}))


def run_browser(console: Console) -> int:
    """Serve the page and drive the core until SIGINT/SIGTERM; the exit code."""
    cfg = console.config
    device = console.device
    if not isinstance(device, PageInput):
        raise ConsoleError("the browser console needs input = 'web'")
    video = console.video if isinstance(console.video, PageVideo) else None
    web = WebServer(cfg.web, device, video, console.link.true_clock)
    url = web.start()
    print(f"console: surgeon page at {url}", flush=True)
    stop = False

    def _stop(*_: Any) -> None:
        nonlocal stop
        stop = True

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    rate = FixedRate(1.0 / cfg.rate_hz, console.link.true_clock, console.link.true_clock())
    hud_every = 1.0 / cfg.web.hud_rate_hz
    next_hud = -math.inf
    alerts = Alerts()
    try:
        while not stop:
            _serve_requests(console, web)
            now = console.link.true_clock()
            device.woken()  # this tick reads whatever input has arrived: no early tick for it after
            console.tick(now)
            active = alerts_now(console, alerts, now)
            if now >= next_hud:  # on schedule (not now + period: ticks are 5 ms apart)
                next_hud = next_hud + hud_every if now - next_hud < hud_every else now + hud_every
                web.publish(hud(console, web, active))
            wait_for_tick(console.link, rate, device, now, lambda: _serve_requests(console, web))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if console.session:
            with contextlib.suppress(ConsoleError, TimeoutError):
                console.disengage()
        web.close()
    print_summary(console)
    print("console: surgeon page closed", file=sys.stderr, flush=True)
    return 0

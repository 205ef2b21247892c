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
from typing import TYPE_CHECKING, Any

from telesurg.teleop.console.episodes import print_summary
from telesurg.teleop.console.page_input import PageInput
from telesurg.teleop.console.page_video import PageVideo
from telesurg.teleop.console.robot_link import ConsoleError
from telesurg.teleop.console.web import PageRequest, WebServer
from telesurg.teleop.wire import protocol as p
from telesurg.teleop.wire.timing import FixedRate

if TYPE_CHECKING:
    from telesurg.teleop.console.core import Console


def hud(console: Console, web: WebServer) -> dict[str, Any]:
    """What the page draws: the robot's state as the console last saw it, the console's own figures,
    and the correction stages."""
    tel = console.link.telemetry
    welcome = console.welcome
    video = console.video if isinstance(console.video, PageVideo) else None
    out: dict[str, Any] = {
        "link_ok": console.link.link_ok,
        "engaged": bool(console.session),
        "estop_pressed": console.estop_pressed,
        "hold": console.video_hold,
        "cmd_latency_ms": console.latencies[-1] * 1e3 if console.latencies else None,
        "video_latency_ms": (video.latency_s() or math.nan) * 1e3 if video is not None else None,
        "video_age_ms": None,
        "stages": {s.name: s.enabled for s in (*console.hand_stages, *console.tool_stages)},
        "force_limits_N": list(welcome.force_limits_N) if welcome and welcome.force_limits_N else None,
        "driver": web.driver,
    }
    if video is not None:
        age = video.age_s(console.link.true_clock())
        out["video_age_ms"] = age * 1e3 if math.isfinite(age) else None
        if out["video_latency_ms"] is not None and not math.isfinite(out["video_latency_ms"]):
            out["video_latency_ms"] = None
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
    try:
        while not stop:
            for req in web.take_requests():
                try:
                    req.reply.set_result(_serve(console, req))
                except (ConsoleError, TimeoutError, ValueError) as exc:
                    req.reply.set_result((False, str(exc), {}))
            now = console.link.true_clock()
            console.tick(now)
            if now >= next_hud:
                next_hud = now + hud_every
                web.publish(hud(console, web))
            rate.advance()
            console.link.wait_until(rate.deadline_s)
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

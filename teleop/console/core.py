"""The surgeon console (`telesurg console`): input device → clutch, scaling, hand–eye mapping →
``Command`` at a fixed rate, with telemetry shown as a status line (HUD) and a summary at the end.

The console is advisory: the robot's supervisor decides what moves. The console still stops
commanding motion when it cannot see the robot (no telemetry for ``link_timeout_s``) and never
sends a target it has not mapped from the surgeon's hand.

Scripted mode (``input = "scripted"``) runs episodes: for each task it asks the robot to load the
task (simulation), engages, lets the scripted surgeon work from the telemetry until the task
reports success or ``episode_timeout_s`` passes, disengages, and reports success, time, the largest
contact force in telemetry and the command latency (console send → accepted by the robot's
supervisor, from the telemetry echo and the robot's clock-sync offset).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zmq

from teleop.console.inputs import (
    Gamepad,
    HandInput,
    InputDevice,
    Keyboard,
    ScriptedSurgeon,
    SpaceMouse,
    SurgeonConfig,
    Trace,
    TraceReplay,
)
from teleop.console.mapping import HandToTool, MappingConfig
from teleop.correction.blending import PolicyBlending
from teleop.correction.config import CorrectionConfig
from teleop.correction.fixtures import VirtualFixtures
from teleop.correction.stage import Context, Motion, run_stages
from teleop.netem.model import DelayLine, LinkModel
from teleop.netem.spec import LinkSpec
from teleop.video.client import VideoClient, VideoClientConfig
from teleop.wire import protocol as p
from teleop.wire.channels import ClientKeys, ClientSockets, Endpoints
from teleop.wire.clock import ClockEstimator
from teleop.wire.timing import SPIN_S, FixedRate, sleep_until

InputKind = Literal["scripted", "keyboard", "gamepad", "spacemouse", "trace"]


@dataclass(frozen=True)
class ConsoleConfig:
    """The console. Rates in Hz, times in s. ``tasks``/``seed``/``episode_timeout_s`` are for the
    scripted surgeon (a trace replay loads ``tasks[0]`` with ``seed`` first); ``trace`` is the CSV for
    ``input = "trace"``; ``record_trace`` saves the
    hand motion (hand space, before mapping) as such a CSV; ``summary_json`` writes the summary."""

    endpoints: Endpoints = field(default_factory=Endpoints)
    keys: ClientKeys | None = None
    client: str = "console"
    arm: str = "psm1"
    rate_hz: float = 200.0
    ping_every_s: float = 0.1
    request_timeout_s: float = 2.0
    link_timeout_s: float = 1.0
    mapping: MappingConfig = field(default_factory=MappingConfig)
    input: InputKind = "scripted"
    trace: str | None = None
    tasks: tuple[str, ...] = ("Reach", "Palpate")
    seed: int = 0
    episode_timeout_s: float = 30.0
    settle_s: float = 0.2
    surgeon: SurgeonConfig = field(default_factory=SurgeonConfig)
    headless: bool = True
    hud_every_s: float = 0.1
    summary_json: str | None = None
    record_trace: str | None = None
    #: Re-send an unanswered request this often (s); requests are idempotent.
    request_retry_s: float = 0.5
    #: When another console holds the arm (perhaps a dead one, until its session times out), keep
    #: asking to engage for this long (s).
    engage_wait_s: float = 5.0
    #: Emulated network (``teleop.netem.spec`` format) on every channel and direction, and per-channel
    #: overrides: keys ``cmd``, ``telemetry``, ``control`` (both ways), ``control_up``, ``control_down``.
    link: str = ""
    links: dict[str, str] = field(default_factory=dict)
    #: Scripted runs: load each task first (false: continue with whatever the robot has).
    load_task: bool = True
    #: Fault injection for the safety harness: the console's clock jumps by ``clock_jump_s`` this
    #: long after the first engage; the surgeon presses e-stop ``estop_at_s`` after it.
    clock_jump_s: float = 0.0
    clock_jump_at_s: float = 0.0
    estop_at_s: float | None = None
    #: The endoscope video (WebRTC, ``teleop.video.client``): off unless ``video.enabled``.
    video: VideoClientConfig = field(default_factory=VideoClientConfig)
    #: Motion correction and latency compensation stages (``teleop.correction``): all off by default.
    correction: CorrectionConfig = field(default_factory=CorrectionConfig)

    def __post_init__(self) -> None:
        if not 1.0 <= self.rate_hz <= 2000.0:
            raise ValueError(f"rate_hz must be in [1, 2000], got {self.rate_hz}")
        if self.input == "trace" and not self.trace:
            raise ValueError("input 'trace' needs a trace file (trace = 'file.csv' or --trace)")
        if self.input not in ("scripted", "keyboard", "gamepad", "spacemouse", "trace"):
            raise ValueError(f"unknown input {self.input!r}")
        unknown = sorted(set(self.links) - {"cmd", "telemetry", "control", "control_up", "control_down"})
        if unknown:
            raise ValueError(
                f"links: unknown channel(s) {unknown}; use cmd, telemetry, control, control_up, control_down"
            )
        self.link_specs()  # validates every spec

    def link_specs(self) -> dict[str, LinkSpec]:
        """The emulated link of each channel and direction ({} for a real network)."""
        out: dict[str, LinkSpec] = {}
        if self.link.strip():
            base = LinkSpec.parse(self.link)
            out = dict.fromkeys(RobotLink.CHANNELS, base)
        for key, text in self.links.items():
            spec = LinkSpec.parse(text)
            for channel in ("control_up", "control_down") if key == "control" else (key,):
                out[channel] = spec
        return out


class ConsoleError(RuntimeError):
    """The robot refused or did not answer; the message says which request and why."""


class RobotLink:
    """The console's side of the three channels: requests with timeouts and retries, clock pings,
    commands and the newest telemetry — optionally through the link emulator.

    With ``links`` (one ``LinkSpec`` per channel and direction, see ``teleop.netem.spec``) every
    message the console sends is held in a delay line until the emulated network delivers it, and
    every message the robot sends is held after arrival until then; message-level links may drop,
    reorder and duplicate, TCP-faithful links only delay (in order). The robot side is untouched,
    so this is the same as putting the network between the two processes. Timestamps in messages
    use ``clock`` (the console's clock, which a harness may make jump); scheduling and the emulated
    network use the true monotonic clock.
    """

    CHANNELS = ("cmd", "control_up", "telemetry", "control_down")

    def __init__(self, config: ConsoleConfig, links: dict[str, LinkSpec] | None = None) -> None:
        self.config = config
        self.sockets = ClientSockets(config.endpoints, config.keys)
        self.clock = time.monotonic  # the console's clock (message timestamps)
        self.true_clock = time.monotonic  # scheduling and the emulated network
        self.estimator = ClockEstimator()
        self.telemetry: p.Telemetry | None = None
        self.telemetry_at_s = -math.inf  # true clock
        self.telemetry_count = 0
        self.bad_telemetry = 0
        #: Telemetry numbering restarted (the robot server was restarted); sessions did not survive.
        self.robot_restarts = 0
        self._prev_exchange: tuple[float, float] | None = None
        self._pings: dict[float, None] = {}  # console send times (t1) of unanswered pings, oldest first
        self.exchanges = 0  # completed ping exchanges
        self._last_ping = -math.inf
        self._responses: deque[Any] = deque(maxlen=64)
        self._tel_ready: deque[bytes] = deque(maxlen=1000)
        self._ctl_ready: deque[bytes] = deque(maxlen=1000)
        self.lines: dict[str, DelayLine] = {}
        if links:
            # Outage times count from ``restart_links`` (the console's first engage); until then the
            # schedule lies far in the future, so the handshake sees delay, jitter and loss only.
            later = self.true_clock() + 1e6
            for stream, name in enumerate(self.CHANNELS, start=1):
                spec = links.get(name)
                if spec is not None:
                    self.lines[name] = DelayLine(LinkModel(spec, later, stream=stream))

    def close(self) -> None:
        self.sockets.close()

    def restart_links(self) -> None:
        """Re-anchor the emulated links' schedules (outage times count from now)."""
        now = self.true_clock()
        for line in self.lines.values():
            line.model.restart(now)

    # -------------------------------------------------------------- the emulated network
    def _out(self, channel: str, data: bytes) -> None:
        line = self.lines.get(channel)
        if line is not None:
            line.put(self.true_clock(), data)
            self._release()
        else:
            self._send_now(channel, data)

    def _send_now(self, channel: str, data: bytes) -> None:
        sock = self.sockets.cmd if channel == "cmd" else self.sockets.control
        with contextlib.suppress(zmq.Again):  # no robot connected: lost, as on a dead link
            sock.send(data, zmq.NOBLOCK)

    def _release(self) -> None:
        """Hand every due outbound message to its socket; move arrived inbound ones along."""
        now = self.true_clock()
        for channel in ("cmd", "control_up"):
            line = self.lines.get(channel)
            if line is not None:
                for data in line.pop_due(now):
                    self._send_now(channel, data)
        for sock, channel, ready in (
            (self.sockets.telemetry, "telemetry", self._tel_ready),
            (self.sockets.control, "control_down", self._ctl_ready),
        ):
            line = self.lines.get(channel)
            while True:
                try:
                    data = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if line is None:
                    ready.append(data)
                else:
                    line.put(now, data)
            if line is not None:
                ready.extend(line.pop_due(now))

    def _next_due(self) -> float | None:
        due = [d for line in self.lines.values() if (d := line.next_due()) is not None]
        return min(due) if due else None

    def _wait_io(self, timeout_s: float) -> None:
        """Block up to ``timeout_s`` for an arrival or the next emulated delivery."""
        due = self._next_due()
        if due is not None:
            timeout_s = min(timeout_s, max(0.0, due - self.true_clock()))
        if timeout_s <= 0:
            return
        if timeout_s >= 0.001:
            zmq.select([self.sockets.telemetry, self.sockets.control], [], [], timeout_s)
        else:
            time.sleep(min(timeout_s, 0.0001))

    # -------------------------------------------------------------- control channel
    def request(self, msg: p.Message, timeout_s: float | None = None) -> Any:
        """Send a request and wait for its answer, re-sending it every ``request_retry_s`` (a lossy
        link may drop it; the requests are idempotent). Pongs arriving meanwhile are processed."""
        timeout = self.config.request_timeout_s if timeout_s is None else timeout_s
        start = self.true_clock()
        deadline = start + timeout
        expected = _expected_answer(msg)
        data = p.encode(msg)
        self._responses.clear()
        next_send = start
        while True:
            now = self.true_clock()
            if now >= next_send:
                self._out("control_up", data)
                next_send = now + self.retry_s()
            self.poll_control()
            while self._responses:
                resp = self._responses.popleft()
                if _answers(resp, expected):
                    return resp
            if now >= deadline:
                raise ConsoleError(
                    f"no answer to {type(msg).__name__} from the robot at {self.config.endpoints.host} "
                    f"within {timeout:.1f} s (is `telesurg robot` running, with matching ports and keys?)"
                )
            self._wait_io(min(deadline, next_send) - now)

    def _handle_control(self, data: bytes) -> None:
        try:
            resp = p.decode(data, p.Response)
        except p.ProtocolError as exc:
            print(f"console: ignored a bad response from the robot: {exc}", file=sys.stderr)
            return
        if isinstance(resp, p.Pong):
            t4 = self.clock()
            if resp.t1_console_s in self._pings:
                # Any outstanding ping counts: on a slow link several are in flight, answered in any order.
                del self._pings[resp.t1_console_s]
                try:
                    self.estimator.add(resp.t1_console_s, resp.t2_robot_s, resp.t3_robot_s, t4)
                    self._prev_exchange = (resp.t1_console_s, t4)
                    self.exchanges += 1
                except ValueError:
                    pass
            return
        self._responses.append(resp)

    def poll_control(self) -> None:
        """Process responses that were delivered (Pongs at once; others kept for ``request``)."""
        self._release()
        while self._ctl_ready:
            self._handle_control(self._ctl_ready.popleft())

    def wait_until(self, deadline_s: float) -> None:
        """Sleep to ``deadline_s`` (true clock), serving the link meanwhile: a Pong is time-stamped
        on delivery, not at the next tick (an unbiased clock sync), and emulated messages leave on
        time."""
        while True:
            self.poll_control()
            remaining = deadline_s - self.true_clock() - SPIN_S
            if remaining <= 0:
                break
            self._wait_io(remaining)
        sleep_until(deadline_s, self.true_clock)
        self._release()

    def ping(self, force: bool = False) -> None:
        now = self.true_clock()
        if not force and (now - self._last_ping < self.config.ping_every_s):
            return
        t1 = self.clock()
        prev = self._prev_exchange
        msg = p.Ping(
            t1_console_s=t1,
            prev_t1_console_s=prev[0] if prev else None,
            prev_t4_console_s=prev[1] if prev else None,
        )
        self._last_ping = now
        self._pings[t1] = None
        while len(self._pings) > 64:  # a 2 s round trip at 10 pings/s keeps 20 in flight
            del self._pings[next(iter(self._pings))]
        self._out("control_up", p.encode(msg))

    def retry_s(self) -> float:
        """How long to wait for an answer before asking again: ``request_retry_s``, or longer on a
        slow link (twice the best round trip seen), so a slow answer is not mistaken for a lost one."""
        rtt = self.estimator.best().rtt_s if self.estimator.ready else 0.0
        return max(self.config.request_retry_s, 2.0 * rtt + 0.05)

    def sync(self, exchanges: int = 5) -> None:
        """Complete ``exchanges`` ping exchanges (the robot keeps its own estimate from them). Pings
        go out every ``ping_every_s`` without waiting for each answer, so a slow or lossy link costs
        one round trip, not one per exchange."""
        deadline = self.true_clock() + self.config.request_timeout_s
        target = self.exchanges + exchanges
        while self.exchanges < target:
            if self.true_clock() > deadline:
                raise ConsoleError(
                    f"clock sync: {target - self.exchanges} of {exchanges} ping exchanges unanswered "
                    f"within {self.config.request_timeout_s:.1f} s"
                )
            self.ping()
            self.poll_control()
            self._wait_io(0.005)
        self.ping(force=True)  # carries the last exchange to the robot

    # -------------------------------------------------------------- telemetry and commands
    def poll_telemetry(self) -> p.Telemetry | None:
        """Take the delivered telemetry; keep the newest valid message."""
        self._release()
        while self._tel_ready:
            data = self._tel_ready.popleft()
            try:
                msg = p.decode(data, p.Telemetry)
            except p.ProtocolError:
                self.bad_telemetry += 1
                continue
            if self.telemetry is not None and msg.seq <= self.telemetry.seq:
                if msg.robot_s <= self.telemetry.robot_s:
                    continue  # an older one delivered late (reordered or duplicated on the link)
                self.robot_restarts += 1  # numbering started again, later in time: a new robot process
            self.telemetry = msg
            self.telemetry_at_s = self.true_clock()
            self.telemetry_count += 1
        return self.telemetry

    def send(self, cmd: p.Command) -> None:
        self._out("cmd", p.encode(cmd))

    def send_request(self, msg: p.Message) -> None:
        """Send a request without waiting for the answer (e.g. a repeated e-stop)."""
        self._out("control_up", p.encode(msg))

    @property
    def link_ok(self) -> bool:
        return self.true_clock() - self.telemetry_at_s <= self.config.link_timeout_s


def _expected_answer(msg: p.Message) -> str:
    if isinstance(msg, p.Hello):
        return "hello"
    if isinstance(msg, p.Offer):
        return "offer"
    return type(msg).__struct_config__.tag  # type: ignore[attr-defined]


def _answers(resp: Any, expected: str) -> bool:
    if isinstance(resp, p.Welcome):
        return expected == "hello"
    if isinstance(resp, p.Answer):
        return expected == "offer"
    return isinstance(resp, p.Ack) and resp.request in (expected, "?")


@dataclass
class EpisodeResult:
    task: str
    seed: int
    success: bool
    time_s: float
    max_force_N: float
    latencies_s: list[float]
    commands_sent: int
    reason: str

    def row(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_s) if self.latencies_s else np.full(1, np.nan)
        return {
            "task": self.task,
            "seed": self.seed,
            "success": self.success,
            "time_s": round(self.time_s, 3),
            "max_force_N": round(self.max_force_N, 3),
            "latency_p50_ms": round(float(np.percentile(lat, 50)) * 1e3, 3),
            "latency_p99_ms": round(float(np.percentile(lat, 99)) * 1e3, 3),
            "latency_samples": len(self.latencies_s),
            "commands_sent": self.commands_sent,
            "reason": self.reason,
        }


class Console:
    """See the module docstring."""

    def __init__(self, config: ConsoleConfig, device: InputDevice | None = None) -> None:
        self.config = config
        self.link = RobotLink(config, config.link_specs())
        self.mapping = HandToTool(config.mapping)
        self.device = device or make_device(config)
        self.session = ""
        self.seq = 0
        self.welcome: p.Welcome | None = None
        self.results: list[EpisodeResult] = []
        self._last_hud = -math.inf
        self._trace_rows: list[tuple[float, float, float, float, float]] = []
        self._latencies: list[float] = []
        self._last_echo = 0
        self._max_force = 0.0
        self.estop_pressed = False
        self._estop_acked = False
        self._estop_sent = -math.inf
        self._jump_at: float | None = None
        self._jump_first_seq: int | None = None
        self._jump_session = ""
        self.rehandshakes = 0
        self._engaged_once = False
        self.video: VideoClient | None = VideoClient(config.video) if config.video.enabled else None
        #: Why the console holds on its own (advisory: the robot's supervisor stays authoritative).
        self.video_hold = ""
        self.video_holds = 0
        #: Advisory video holds as (start, end) on the console's true clock (end None while holding).
        self.video_hold_log: list[list[float | None]] = []
        self._video_fresh_since: float | None = None
        self._video_retry_at = -math.inf
        period = 1.0 / config.rate_hz
        self.hand_stages = config.correction.hand_stages(period)
        self.tool_stages = config.correction.tool_stages()
        for stage in self.tool_stages:
            if isinstance(stage, PolicyBlending) and stage.enabled:
                for task in stage.config.policies:  # load now: never in the command loop
                    stage.policy_for(task)
        self._stages_clutched = False
        #: The local twin (``teleop.correction.twin``): on when asked for, or when the scripted
        #: surgeon closes its loop on it.
        self.twin = (
            config.correction.local_twin(period)
            if config.correction.twin_enabled or config.surgeon.feedback == "twin"
            else None
        )
        if isinstance(self.device, ScriptedSurgeon):
            self.device.twin = self.twin
        #: Each clutch stroke's mapping as (console true time, anchor hand, anchor tool, hand → tool
        #: matrix): what an evaluation needs to map the intended hand path to the intended tool path.
        self.mapping_log: list[tuple[float, np.ndarray, np.ndarray, np.ndarray]] = []

    # -------------------------------------------------------------- requests
    def hello(self) -> p.Welcome:
        resp = self.link.request(p.Hello(client=self.config.client))
        if not isinstance(resp, p.Welcome):
            raise ConsoleError(f"hello refused: {getattr(resp, 'reason', resp)}")
        if self.config.arm not in resp.arms:
            raise ConsoleError(f"the robot serves arms {resp.arms}, not {self.config.arm!r}")
        self.welcome = resp
        boxes = [(np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)) for lo, hi in resp.forbidden_m]
        for stage in self.tool_stages:
            if isinstance(stage, VirtualFixtures):
                stage.boxes = boxes
        self._set_guidance(resp.guidance)
        return resp

    def _set_guidance(self, guidance: p.Guidance | None) -> None:
        """Guide along the loaded task's path (from the robot), unless a path is configured."""
        if self.config.correction.guidance_path_m:
            return
        for stage in self.tool_stages:
            if isinstance(stage, VirtualFixtures):
                if guidance is None or len(guidance.path_m) < 2:
                    stage.path_m, stage.normal = None, None
                else:
                    stage.path_m = np.asarray(guidance.path_m, dtype=float)
                    stage.normal = np.asarray(guidance.normal, dtype=float)

    def _ack(self, msg: p.Message) -> p.Ack:
        resp = self.link.request(msg)
        if not isinstance(resp, p.Ack):
            raise ConsoleError(f"unexpected answer {type(resp).__name__} to {type(msg).__name__}")
        return resp

    def engage(self) -> str:
        """Engage; while another console holds the arm (perhaps a dead one whose session has not
        timed out yet), keep asking for ``engage_wait_s``."""
        give_up = self.link.true_clock() + self.config.engage_wait_s
        while True:
            ack = self._ack(p.Engage(arm=self.config.arm, client=self.config.client))
            if ack.ok:
                break
            if "engaged by" not in ack.reason or self.link.true_clock() > give_up:
                raise ConsoleError(f"engage refused: {ack.reason}")
            self.link.wait_until(self.link.true_clock() + 0.25)
        self.session, self.seq = ack.session, 0
        self.mapping.release()
        if not self._engaged_once:
            self._engaged_once = True
            self.link.restart_links()  # emulated outages count from the first engage
        if self._jump_at is None and self.config.clock_jump_s:
            self._jump_at = self.link.true_clock() + self.config.clock_jump_at_s
            jump, at, true = self.config.clock_jump_s, self._jump_at, self.link.true_clock
            self.link.clock = lambda: true() + (jump if true() >= at else 0.0)
        return ack.session

    def disengage(self) -> None:
        if self.session:
            self._ack(p.Disengage(session=self.session))
            self.session = ""

    def estop(self, reason: str = "console e-stop") -> None:
        self._ack(p.EStop(reason=reason))
        self.session = ""

    def start_video(self) -> None:
        """Offer a WebRTC connection on the control channel and complete it with the robot's answer."""
        assert self.video is not None
        resp = self.link.request(p.Offer(sdp=self.video.offer()))
        if not isinstance(resp, p.Answer):
            raise ConsoleError(f"video refused: {getattr(resp, 'reason', resp)}")
        self.video.accept(resp.sdp)

    def _wait_for_video(self) -> None:
        """Wait (serving the link) until a fresh frame is displayed, up to ``request_timeout_s`` × 5."""
        assert self.video is not None
        link = self.link
        deadline = link.true_clock() + 5 * self.config.request_timeout_s
        while link.true_clock() < deadline:
            link.poll_control()
            link.ping()
            link.poll_telemetry()
            self._video_offset()
            if self.video.age_s(link.true_clock()) <= self.config.video.max_age_s:
                return
            link.wait_until(link.true_clock() + 0.02)
        raise ConsoleError(f"no fresh video within {5 * self.config.request_timeout_s:.0f} s ({self.video.stats()})")

    def _video_offset(self) -> None:
        if self.video is not None and self.link.estimator.ready:
            # robot clock − console's true clock (the message clock may carry an injected jump).
            self.video.offset_s = self.link.estimator.best().offset_s + (self.link.clock() - self.link.true_clock())

    def _serve_video(self, now: float, hand: HandInput, tel: p.Telemetry | None) -> HandInput:
        """The advisory video hold: stop commanding motion when the newest frame is too old; resume
        only on the surgeon's re-engage once video is fresh again (the scripted surgeon and trace
        replay re-engage after ``reengage_after_s`` of fresh video)."""
        video = self.video
        if video is None:
            return hand
        cfg = self.config.video
        self._video_offset()
        age = video.age_s(now)
        fresh = age <= cfg.max_age_s
        if tel is not None:
            lat = self._latencies[-1] if self._latencies else None
            video.hud = {"state": tel.state, "force_N": tel.force_mag_N, "cmd_latency_s": lat}
        video.hud["hold_reason"] = self.video_hold
        if not fresh and not self.video_hold and self.session:
            self.video_hold = f"video too old ({age * 1e3:.0f} ms > {cfg.max_age_s * 1e3:.0f} ms): holding"
            self.video_holds += 1
            self.video_hold_log.append([now, None])
            print(f"console: {self.video_hold}; re-engage once video is fresh", flush=True)
        if video.failed and now >= self._video_retry_at:
            self._video_retry_at = now + 2.0
            try:
                self.start_video()
            except (ConsoleError, TimeoutError) as exc:
                print(f"console: video reconnect failed: {exc}", flush=True)
        if self.video_hold:
            self._video_fresh_since = (self._video_fresh_since or now) if fresh else None
            scripted = isinstance(self.device, ScriptedSurgeon | TraceReplay)
            fresh_for = now - self._video_fresh_since if self._video_fresh_since is not None else -1.0
            reengage = hand.engage or (scripted and fresh_for >= cfg.reengage_after_s)
            if fresh and reengage:
                print("console: video fresh again: re-engaged", flush=True)
                self.video_hold = ""
                self.video_hold_log[-1][1] = now
                self.mapping.release()  # re-anchor: no jump toward where the hand went meanwhile
                hand = dataclasses.replace(hand, engage=False)
        return hand

    def load_task(self, task: str, seed: int) -> None:
        ack = self._ack(p.LoadTask(task=task, seed=seed))
        if not ack.ok:
            raise ConsoleError(f"load task {task} refused: {ack.reason}")
        self._set_guidance(ack.guidance)

    # -------------------------------------------------------------- one command period
    def press_estop(self) -> None:
        """E-stop: every command from now on carries the flag, and the request is repeated until the
        robot acknowledges it (a lossy or broken link must not swallow it)."""
        self.estop_pressed = True

    def _serve_estop(self, now: float) -> None:
        if not self.estop_pressed or self._estop_acked:
            return
        for resp in list(self.link._responses):
            if isinstance(resp, p.Ack) and resp.request == "estop" and resp.ok:
                self._estop_acked = True
                return
        if now - self._estop_sent >= 0.2:
            self._estop_sent = now
            self.link.send_request(p.EStop(reason=f"e-stop pressed on {self.config.client}"))

    def tick(self, now: float) -> HandInput:
        """Read telemetry and the device, send one command when engaged, update the HUD. ``now``
        is the true (scheduling) clock; message timestamps use the console's clock."""
        link = self.link
        link.poll_control()
        link.ping()
        tel = link.poll_telemetry()
        if tel is not None:
            if tel.camera is not None:
                self.mapping.set_camera(tel.camera.pose.quat_xyzw)
            if self.twin is not None:
                self.twin.observe(tel)
            self._observe(tel)
        hand = self.device.read(now, tel, self.mapping)
        hand = self._serve_video(now, hand, tel)
        if hand.estop:
            self.press_estop()
        self._serve_estop(now)
        if self.config.record_trace:
            self._trace_rows.append((now, *hand.hand_m.tolist(), hand.jaw))
        if self.session and tel is not None:
            shown_tool = np.asarray(tel.tool.pos_m, dtype=float)
            clutch = hand.clutch and link.link_ok and not self.video_hold
            ctx = Context(period_s=1.0 / self.config.rate_hz, delay_s=self.delay_estimate_s())
            if clutch and not self._stages_clutched:
                for stage in (*self.hand_stages, *self.tool_stages):
                    stage.reset()  # a new stroke: nothing carried over from before the clutch opened
            self._stages_clutched = clutch
            corrected = run_stages(self.hand_stages, Motion(now, hand.hand_m), ctx)
            target = self.mapping.update(corrected.hand_m, clutch, shown_tool)
            anchors = self.mapping.anchors
            if anchors is not None and (
                not self.mapping_log or not np.array_equal(self.mapping_log[-1][2], anchors[1])
            ):
                self.mapping_log.append((now, anchors[0], anchors[1], self.mapping.matrix.copy()))
            if target is not None:
                target = run_stages(self.tool_stages, Motion(now, corrected.hand_m, target), ctx).target_m
            self.seq += 1
            if self._jump_at is not None and self._jump_first_seq is None and now >= self._jump_at:
                self._jump_first_seq, self._jump_session = self.seq, self.session
            pos = target if target is not None else shown_tool
            self.link.send(
                p.Command(
                    arm=self.config.arm,
                    session=self.session,
                    seq=self.seq,
                    sent_console_s=link.clock(),
                    target=p.Pose((float(pos[0]), float(pos[1]), float(pos[2]))),
                    jaw=float(min(max(hand.jaw, 0.0), 1.0)),
                    clutch=target is not None and not self.estop_pressed,
                    estop=self.estop_pressed,
                )
            )
            if self.twin is not None:
                self.twin.sent(self.seq, target if target is not None and not self.estop_pressed else None)
                if self.video is not None and self.twin.ready and self.twin.camera is not None:
                    self.video.ghost = (self.twin.skeleton_m(), self.twin.camera)
        self._hud(now, tel)
        return hand

    def set_stage(self, name: str, enabled: bool) -> None:
        """Switch a correction stage (``scaling``, ``tremor``, ``prediction``) on or off now."""
        for stage in (*self.hand_stages, *self.tool_stages):
            if stage.name == name:
                stage.reset()
                stage.enabled = enabled
                return
        raise ValueError(f"no stage {name!r}; stages: {[s.name for s in (*self.hand_stages, *self.tool_stages)]}")

    def delay_estimate_s(self) -> float:
        """One-way command delay (s): the median of the last 50 echoed command latencies (console send
        → accepted by the robot, through the clock sync), else half the clock-sync round trip."""
        if self._latencies:
            return float(np.median(self._latencies[-50:]))
        if self.link.estimator.ready:
            return self.link.estimator.best().rtt_s / 2
        return 0.0

    def _observe(self, tel: p.Telemetry) -> None:
        self._max_force = max(self._max_force, tel.force_mag_N)
        if tel.task is not None:
            obs = {
                "observation": tel.task.observation,
                "achieved_goal": tel.task.achieved_goal,
                "desired_goal": tel.task.desired_goal,
            }
            for stage in self.tool_stages:
                if isinstance(stage, PolicyBlending):
                    stage.observe(tel.task.name, obs, np.asarray(tel.tool.pos_m, dtype=float))
        if self.session and tel.last_cmd_seq != self._last_echo and tel.last_cmd_seq > 0:
            self._last_echo = tel.last_cmd_seq
            latency = tel.last_cmd_accepted_robot_s - (tel.last_cmd_sent_console_s + tel.clock_offset_s)
            self._latencies.append(latency)

    def _hud(self, now: float, tel: p.Telemetry | None) -> None:
        if now - self._last_hud < (self.config.hud_every_s if not self.config.headless else 2.0):
            return
        self._last_hud = now
        if tel is None:
            line = "waiting for telemetry…"
        else:
            lat = self._latencies[-1] * 1e3 if self._latencies else float("nan")
            task = tel.task
            extra = f" | {task.name} {'✓' if task.success else '…'} {task.episode_s:5.1f} s" if task else ""
            line = (
                f"{tel.state:7s} {tel.reason[:40]:40s} | force {tel.force_mag_N:5.2f} N | cmd latency {lat:6.2f} ms"
                f" | offset {tel.clock_offset_s * 1e3:+7.3f} ms rtt {tel.clock_rtt_s * 1e3:5.2f} ms"
                f"{'' if self.link.link_ok else ' | NO TELEMETRY'}{extra}"
            )
        if self.config.headless:
            print(f"console: {line}", flush=True)
        else:
            print(f"\r{line}\033[K", end="", file=sys.stderr, flush=True)

    # -------------------------------------------------------------- runs
    def run(self) -> int:
        """Connect, then run the scripted episodes or the interactive session. Returns an exit code."""
        print(f"console: correction: {self.stages_line()}", flush=True)
        try:
            self.hello()
            self.link.sync()
            if self.video is not None:
                self.start_video()
                self._wait_for_video()
            code = self._run_scripted() if isinstance(self.device, ScriptedSurgeon) else self._run_interactive()
        finally:
            self._finish()
        return code

    def stages_line(self) -> str:
        """Which correction stages are on, e.g. ``scaling off, tremor on, prediction alphabeta, …``."""
        cfg = self.config.correction
        parts = [f"{stage.name} {'on' if stage.enabled else 'off'}" for stage in self.hand_stages]
        parts.append(f"prediction {cfg.prediction}")
        parts += [f"{s.name} {'on' if s.enabled else 'off'}" for s in self.tool_stages if s.name != "prediction"]
        parts.append(f"twin {'on' if self.twin is not None else 'off'}")
        return ", ".join(parts)

    def _run_scripted(self) -> int:
        assert isinstance(self.device, ScriptedSurgeon)
        cfg = self.config
        for i, task in enumerate(cfg.tasks):
            seed = cfg.seed + i
            if cfg.load_task:
                self.load_task(task, seed)
                self._wait_for_task(task, seed)
            self.device.start_task(task)
            self.link.sync(2)
            self.engage()
            result = self._episode(task, seed)
            self.results.append(result)
            try:
                self.disengage()
            except ConsoleError as exc:
                result.reason += f"; disengage failed: {exc}"
            if self.estop_pressed:
                break
            print(
                f"console: {task} seed {seed}: {'success' if result.success else 'FAILED'} in {result.time_s:.2f} s, "
                f"max force {result.max_force_N:.2f} N ({result.reason})",
                flush=True,
            )
        self.print_summary()
        return 0 if all(r.success for r in self.results) else 1

    def _wait_for_task(self, task: str, seed: int) -> None:
        deadline = self.link.true_clock() + self.config.request_timeout_s
        while self.link.true_clock() < deadline:
            tel = self.link.poll_telemetry()
            task_state = tel.task if tel is not None else None
            if (
                task_state is not None
                and (task_state.name, task_state.seed) == (task, seed)
                and task_state.episode_s < 1
            ):
                return
            self.link.wait_until(self.link.true_clock() + 0.02)
        raise ConsoleError(f"no telemetry of task {task} (seed {seed}) after loading it")

    def _episode(self, task: str, seed: int) -> EpisodeResult:
        """Run the scripted surgeon until the task succeeds, the e-stop latches or the time is up.
        When telemetry stops, the console stops commanding motion; when it returns and the session
        is gone (the robot restarted, or the session timed out), it handshakes again and goes on."""
        cfg = self.config
        link = self.link
        period = 1.0 / cfg.rate_hz
        self._latencies, self._last_echo, self._max_force = [], 0, 0.0
        start = link.true_clock()
        rate = FixedRate(period, link.true_clock, start)
        sent_before = self.seq
        success_since: float | None = None
        reason = "timeout"
        success = False
        lost = False
        restarts = link.robot_restarts
        while True:
            now = link.true_clock()
            if cfg.estop_at_s is not None and now - start >= cfg.estop_at_s and not self.estop_pressed:
                print("console: e-stop pressed", flush=True)
                self.press_estop()
            self.tick(now)
            tel = link.telemetry
            if now - start > cfg.episode_timeout_s:
                break
            if not link.link_ok:
                if not lost:
                    print("console: no telemetry: stopped commanding motion", flush=True)
                lost = True
            elif lost or link.robot_restarts != restarts:
                lost = False
                restarted = link.robot_restarts != restarts
                restarts = link.robot_restarts
                if tel is not None and (tel.state == "IDLE" or restarted) and not self.estop_pressed:
                    print("console: the robot restarted or dropped the session: handshaking again", flush=True)
                    try:
                        self._rehandshake()
                    except ConsoleError as exc:
                        reason = f"re-handshake failed: {exc}"
                        break
            if tel is not None and tel.state == "ESTOP" and link.link_ok:
                reason = f"e-stop: {tel.reason}"
                break
            if tel is not None and tel.task is not None and tel.task.success and tel.task.name == task:
                success_since = now if success_since is None else success_since
                if now - success_since >= cfg.settle_s:
                    success, reason = True, "task success"
                    break
            else:
                success_since = None
            rate.advance()
            link.wait_until(rate.deadline_s)
        return EpisodeResult(
            task=task,
            seed=seed,
            success=success,
            time_s=(success_since if success_since is not None else link.true_clock()) - start,
            max_force_N=self._max_force,
            latencies_s=list(self._latencies),
            commands_sent=self.seq - sent_before,
            reason=reason,
        )

    def _rehandshake(self) -> None:
        self.session = ""
        self.rehandshakes += 1
        self.link.estimator.reset()
        self.link._prev_exchange = None
        self.hello()
        self.link.sync(2)
        self.engage()

    def _run_interactive(self) -> int:
        cfg = self.config
        period = 1.0 / cfg.rate_hz
        auto_engage = isinstance(self.device, TraceReplay)
        if auto_engage:
            # A trace is replayed open loop from the task's start: load the first task (simulation).
            if cfg.tasks:
                try:
                    self.load_task(cfg.tasks[0], cfg.seed)
                    self._wait_for_task(cfg.tasks[0], cfg.seed)
                except ConsoleError as exc:
                    print(f"console: replaying from the current pose: {exc}", file=sys.stderr)
            self.engage()
        start = self.link.true_clock()
        rate = FixedRate(period, self.link.true_clock, start)
        self._latencies, self._max_force = [], 0.0
        try:
            while True:
                now = self.link.true_clock()
                hand = self.tick(now)
                if hand.quit:
                    break
                if hand.estop:
                    self.estop("e-stop pressed on the console")
                if hand.reset:
                    self._ack(p.Reset(client=cfg.client))
                if hand.engage:
                    if self.session:
                        self.disengage()
                    else:
                        try:
                            self.engage()
                        except ConsoleError as exc:
                            print(f"\nconsole: {exc}", file=sys.stderr)
                rate.advance()
                self.link.wait_until(rate.deadline_s)
        except KeyboardInterrupt:
            pass
        finally:
            if self.session:
                with contextlib.suppress(ConsoleError):
                    self.disengage()
        tel = self.link.telemetry
        self.results.append(
            EpisodeResult(
                task=tel.task.name if tel and tel.task else "",
                seed=tel.task.seed if tel and tel.task else 0,
                success=bool(tel and tel.task and tel.task.success),
                time_s=self.link.true_clock() - start,
                max_force_N=self._max_force,
                latencies_s=list(self._latencies),
                commands_sent=self.seq,
                reason="session ended",
            )
        )
        if auto_engage:  # a trace replay is judged like a scripted episode: its exit status says
            result = self.results[-1]
            print(
                f"console: trace replay on {result.task or '?'} seed {result.seed}: "
                f"{'success' if result.success else 'FAILED'} in {result.time_s:.2f} s, "
                f"max force {result.max_force_N:.2f} N",
                flush=True,
            )
        self.print_summary()
        return 1 if auto_engage and not self.results[-1].success else 0

    def _finish(self) -> None:
        if self.config.record_trace and self._trace_rows:
            rows = np.asarray(self._trace_rows)
            Trace(rows[:, 0] - rows[0, 0], rows[:, 1:4], rows[:, 4]).save(self.config.record_trace)
        self.device.close()
        if self.video is not None:
            self.video.close()
        self.link.close()

    def summary(self) -> dict[str, Any]:
        all_lat = [x for r in self.results for x in r.latencies_s]
        lat = np.asarray(all_lat) if all_lat else np.full(1, np.nan)
        return {
            "episodes": [r.row() for r in self.results],
            "success_rate": float(np.mean([r.success for r in self.results])) if self.results else 0.0,
            "max_force_N": max((r.max_force_N for r in self.results), default=0.0),
            "latency_p50_ms": float(np.percentile(lat, 50) * 1e3),
            "latency_p99_ms": float(np.percentile(lat, 99) * 1e3),
            "latency_samples": len(all_lat),
            "recording": self.welcome.recording if self.welcome else "",
            "rehandshakes": self.rehandshakes,
            "estop_pressed": self.estop_pressed,
            "video": {**self.video.stats(), "holds": self.video_holds} if self.video is not None else None,
            "clock_jump": {
                "jump_s": self.config.clock_jump_s,
                "session": self._jump_session,
                "first_seq": self._jump_first_seq,
            }
            if self._jump_first_seq is not None
            else None,
        }

    def print_summary(self) -> None:
        s = self.summary()
        print("\nconsole summary", flush=True)
        print(f"{'task':10s} {'seed':>4s} {'success':>8s} {'time s':>7s} {'max F N':>8s} {'p50 ms':>7s} {'p99 ms':>7s}")
        for row in s["episodes"]:
            print(
                f"{row['task']:10s} {row['seed']:4d} {('yes' if row['success'] else 'NO'):>8s} {row['time_s']:7.2f} "
                f"{row['max_force_N']:8.2f} {row['latency_p50_ms']:7.2f} {row['latency_p99_ms']:7.2f}"
            )
        print(
            f"success {s['success_rate'] * 100:.0f}% | max contact force {s['max_force_N']:.2f} N | command latency "
            f"p50 {s['latency_p50_ms']:.2f} ms, p99 {s['latency_p99_ms']:.2f} ms ({s['latency_samples']} samples)"
        )
        v = s["video"]
        if v is not None:
            lat = v.get("sampled_to_displayed_ms", {})
            ready = v.get("ready_to_displayed_ms", {})
            print(
                f"video: {v['frames']} frames, {v.get('fps', 0.0):.1f} fps, state sampled → displayed p50 "
                f"{lat.get('p50', float('nan')):.1f} ms p95 {lat.get('p95', float('nan')):.1f} ms, ready → displayed "
                f"p50 {ready.get('p50', float('nan')):.1f} ms; held for stale video {v['holds']} time(s)"
                + (f"; saved to {v['saved_video']}" if v["saved_video"] else "")
            )
        print(f"recording: {s['recording'] or '(the robot is not recording)'}", flush=True)
        if self.config.summary_json:
            path = Path(self.config.summary_json)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(s, indent=2) + "\n")


def make_device(config: ConsoleConfig) -> InputDevice:
    kind = config.input
    if kind == "scripted":
        return ScriptedSurgeon(config.surgeon)
    if kind == "trace":
        assert config.trace is not None
        return TraceReplay(Trace.load(config.trace))
    if kind == "keyboard":
        return Keyboard()
    if kind == "gamepad":
        return Gamepad()
    return SpaceMouse()

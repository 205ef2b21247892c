"""The surgeon console core (`telesurg console`): input device → clutch, correction stages, hand–eye
mapping → one ``Command`` per ``tick`` at a fixed rate, the telemetry observed, the requests
(hello, engage, disengage, e-stop, reset, load task) answered. Front ends drive it: the terminal
(``telesurg.teleop.console.terminal``: status line, interactive loop), scripted episodes
(``telesurg.teleop.console.episodes``), and a browser console next; none of them repeats what is here.

The console is advisory: the robot's supervisor decides what moves. The console still stops
commanding motion when it cannot see the robot (no telemetry for ``link_timeout_s``) or its video
is stale (``telesurg.teleop.console.video_hold``), and never sends a target it has not mapped from the
surgeon's hand. Command latency (console send → applied by the robot's supervisor) comes from the
telemetry echo and the robot's clock-sync offset.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from telesurg.teleop.console.config import ConsoleConfig
from telesurg.teleop.console.episodes import EpisodeResult, print_summary, run_scripted, summary
from telesurg.teleop.console.inputs import Gamepad, HandInput, InputDevice, Keyboard, SpaceMouse
from telesurg.teleop.console.mapping import HandToTool
from telesurg.teleop.console.page_input import PageInput
from telesurg.teleop.console.page_video import PageVideo
from telesurg.teleop.console.robot_link import ConsoleError, RobotLink
from telesurg.teleop.console.scripted import ScriptedSurgeon, Trace, TraceReplay
from telesurg.teleop.console.terminal import Hud, run_interactive
from telesurg.teleop.console.video_hold import VideoHold
from telesurg.teleop.correction.blending import PolicyBlending
from telesurg.teleop.correction.fixtures import VirtualFixtures
from telesurg.teleop.correction.stage import Context, Motion, run_stages
from telesurg.teleop.video.client import VideoClient
from telesurg.teleop.wire import protocol as p

#: Command latencies kept (the newest half of them once there are more: ~3 MB): 8 min of echoes at
#: the 200 Hz command rate; a scripted episode's figures come from its own (shorter) stretch.
MAX_LATENCIES = 100_000


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
        #: The status line; None for a front end that draws its own (the browser).
        self.hud: Hud | None = Hud(config)
        self._trace_rows: list[tuple[float, float, float, float, float]] = []
        #: Echoed command latencies (s) and the largest contact force (N) since ``reset_figures``.
        self.latencies: list[float] = []
        self._last_echo = 0
        self.max_force_N = 0.0
        self.estop_pressed = False
        self._estop_acked = False
        self._estop_sent = -math.inf
        self.rehandshakes = 0
        self._engaged_once = False
        self.video: VideoClient | PageVideo | None = None
        if config.video.enabled:
            # The browser console's video is what its page displays (the page reports each frame).
            self.video = PageVideo() if config.input == "web" else VideoClient(config.video)
        #: The advisory video hold (the robot's supervisor stays authoritative).
        self.hold = VideoHold(config, self.link, self.video)
        period = 1.0 / config.rate_hz
        self.hand_stages = config.correction.hand_stages(period)
        self.tool_stages = config.correction.tool_stages()
        for stage in self.tool_stages:
            if isinstance(stage, PolicyBlending) and stage.enabled:
                for task in stage.config.policies:  # load now: never in the command loop
                    stage.policy_for(task)
        self._stages_clutched = False
        #: The local twin (``telesurg.teleop.correction.twin``): on when asked for, or when the scripted
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

    # -------------------------------------------------------------- the video hold's figures
    @property
    def video_hold(self) -> str:
        """Why the console holds on its own ("" when it does not)."""
        return self.hold.reason

    @property
    def video_holds(self) -> int:
        return self.hold.holds

    @property
    def video_hold_log(self) -> list[list[float | None]]:
        """Advisory video holds as (start, end) on the console's true clock (end None while holding)."""
        return self.hold.log

    def start_video(self) -> None:
        self.hold.start()

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
        return ack.session

    def disengage(self) -> None:
        if self.session:
            self._ack(p.Disengage(session=self.session))
            self.session = ""

    def estop(self, reason: str = "console e-stop") -> None:
        self._ack(p.EStop(reason=reason))
        self.session = ""

    def reset(self) -> None:
        """Ask the robot to clear a latched e-stop (it decides whether this console may)."""
        self._ack(p.Reset(client=self.config.client))

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

    def release_estop(self) -> None:
        """After the robot cleared its e-stop on this console's reset: stop flagging commands."""
        self.estop_pressed = False
        self._estop_acked = False
        self._estop_sent = -math.inf

    def _serve_estop(self, now: float) -> None:
        if not self.estop_pressed or self._estop_acked:
            return
        if self.link.acked("estop"):
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
        hand = self.hold.serve(
            now,
            hand,
            tel,
            engaged=bool(self.session),
            cmd_latency_s=self.latencies[-1] if self.latencies else None,
            auto_reengage=isinstance(self.device, ScriptedSurgeon | TraceReplay),
            mapping=self.mapping,
        )
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
        if self.hud is not None:
            self.hud.show(self, now, tel)
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
        if self.latencies:
            return float(np.median(self.latencies[-50:]))
        if self.link.estimator.ready:
            return self.link.estimator.best().rtt_s / 2
        return 0.0

    def _observe(self, tel: p.Telemetry) -> None:
        self.max_force_N = max(self.max_force_N, tel.force_mag_N)
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
            self.latencies.append(latency)
            if len(self.latencies) > MAX_LATENCIES:  # a session driven by hand for hours: bounded
                del self.latencies[: len(self.latencies) - MAX_LATENCIES // 2]

    # -------------------------------------------------------------- runs
    def run(self) -> int:
        """Connect, then run the scripted episodes or the interactive session. Returns an exit code."""
        print(f"console: correction: {self.stages_line()}", flush=True)
        try:
            self.hello()
            self.link.sync()
            if self.config.input == "web":
                from telesurg.teleop.console.browser import run_browser

                return run_browser(self)
            if self.video is not None:
                self.hold.start()
                self.hold.wait_fresh()
            code = run_scripted(self) if isinstance(self.device, ScriptedSurgeon) else run_interactive(self)
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

    def reset_figures(self) -> None:
        """Start an episode's figures afresh: command latencies and the largest force."""
        self.latencies, self._last_echo, self.max_force_N = [], 0, 0.0

    def clock_jump(self) -> dict[str, Any] | None:
        """An injected console clock jump (``telesurg.teleop.harness.faults``), once it happened: size,
        session, first command; None in production."""
        return None

    def summary(self) -> dict[str, Any]:
        return summary(self)

    def print_summary(self) -> None:
        print_summary(self)

    def rehandshake(self) -> None:
        """Hello, clock sync and engage again (a new robot process, or a session the robot dropped)."""
        self.session = ""
        self.rehandshakes += 1
        self.link.forget_sync()
        self.hello()
        self.link.sync(2)
        self.engage()

    def _finish(self) -> None:
        if self.config.record_trace and self._trace_rows:
            rows = np.asarray(self._trace_rows)
            Trace(rows[:, 0] - rows[0, 0], rows[:, 1:4], rows[:, 4]).save(self.config.record_trace)
        self.device.close()
        if self.video is not None:
            self.video.close()
        self.link.close()


def make_device(config: ConsoleConfig) -> InputDevice:
    kind = config.input
    if kind == "scripted":
        return ScriptedSurgeon(config.surgeon)
    if kind == "trace":
        assert config.trace is not None
        return TraceReplay(Trace.load(config.trace))
    if kind == "keyboard":
        return Keyboard()
    if kind == "web":
        return PageInput(config.web.page)
    if kind == "gamepad":
        return Gamepad()
    return SpaceMouse()

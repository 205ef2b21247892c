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
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zmq

from teleop import protocol as p
from teleop.channels import ClientKeys, ClientSockets, Endpoints
from teleop.clock import ClockEstimator
from teleop.inputs import (
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
from teleop.mapping import HandToTool, MappingConfig
from teleop.timing import SPIN_S, sleep_until

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

    def __post_init__(self) -> None:
        if not 1.0 <= self.rate_hz <= 2000.0:
            raise ValueError(f"rate_hz must be in [1, 2000], got {self.rate_hz}")
        if self.input == "trace" and not self.trace:
            raise ValueError("input 'trace' needs a trace file (trace = 'file.csv' or --trace)")
        if self.input not in ("scripted", "keyboard", "gamepad", "spacemouse", "trace"):
            raise ValueError(f"unknown input {self.input!r}")


class ConsoleError(RuntimeError):
    """The robot refused or did not answer; the message says which request and why."""


class RobotLink:
    """The console's side of the three channels: requests with timeouts, clock pings, commands and
    the newest telemetry."""

    def __init__(self, config: ConsoleConfig) -> None:
        self.config = config
        self.sockets = ClientSockets(config.endpoints, config.keys)
        self.clock = time.monotonic
        self.estimator = ClockEstimator()
        self.telemetry: p.Telemetry | None = None
        self.telemetry_at_s = -math.inf
        self.telemetry_count = 0
        self.bad_telemetry = 0
        self._prev_exchange: tuple[float, float] | None = None
        self._ping_pending: float | None = None
        self._last_ping = -math.inf
        self._responses: list[Any] = []

    def close(self) -> None:
        self.sockets.close()

    # -------------------------------------------------------------- control channel
    def request(self, msg: p.Message, timeout_s: float | None = None) -> Any:
        """Send a request and wait for its response (Pongs arriving meanwhile are processed)."""
        timeout = self.config.request_timeout_s if timeout_s is None else timeout_s
        deadline = self.clock() + timeout
        self._send_control(msg, deadline)
        while True:
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise ConsoleError(
                    f"no answer to {type(msg).__name__} from the robot at {self.config.endpoints.host} "
                    f"within {timeout:.1f} s (is `telesurg robot` running, with matching ports and keys?)"
                )
            if self.sockets.control.poll(max(1, int(remaining * 1000))):
                resp = self._read_control()
                if resp is not None and not isinstance(resp, p.Pong):
                    return resp

    def _send_control(self, msg: p.Message, deadline: float) -> None:
        """Queue a request; a DEALER with no connected robot would block, so wait at most until
        ``deadline`` for the connection."""
        data = p.encode(msg)
        while True:
            try:
                self.sockets.control.send(data, zmq.NOBLOCK)
                return
            except zmq.Again:
                if self.clock() >= deadline:
                    raise ConsoleError(
                        f"no answer to {type(msg).__name__}: no connection to the robot at "
                        f"{self.config.endpoints.host} (is `telesurg robot` running, with matching ports and keys?)"
                    ) from None
                time.sleep(0.01)

    def _read_control(self) -> Any:
        data = self.sockets.control.recv()
        try:
            resp = p.decode(data, p.Response)
        except p.ProtocolError as exc:
            print(f"console: ignored a bad response from the robot: {exc}", file=sys.stderr)
            return None
        if isinstance(resp, p.Pong):
            t4 = self.clock()
            if self._ping_pending is not None and resp.t1_console_s == self._ping_pending:
                try:
                    self.estimator.add(resp.t1_console_s, resp.t2_robot_s, resp.t3_robot_s, t4)
                    self._prev_exchange = (resp.t1_console_s, t4)
                except ValueError:
                    pass
                self._ping_pending = None
        return resp

    def wait_until(self, deadline_s: float) -> None:
        """Sleep to ``deadline_s`` (console clock), reading responses as they arrive: a Pong is
        time-stamped on arrival, not at the next tick, which keeps the clock sync unbiased."""
        sock = self.sockets.control
        while True:
            remaining = deadline_s - self.clock() - SPIN_S
            if remaining <= 0:
                break
            if sock.poll(int(remaining * 1000)) if remaining >= 0.001 else sock.poll(0):
                self._read_control()
            elif remaining < 0.001:
                time.sleep(min(remaining, 0.0001))
        sleep_until(deadline_s, self.clock)

    def poll_control(self) -> None:
        """Process responses that arrived (Pongs) without blocking."""
        while self.sockets.control.poll(0):
            self._read_control()

    def ping(self, force: bool = False) -> None:
        now = self.clock()
        if not force and (now - self._last_ping < self.config.ping_every_s):
            return
        if self._ping_pending is not None and now - self._last_ping < 1.0 and not force:
            return
        prev = self._prev_exchange
        msg = p.Ping(
            t1_console_s=now,
            prev_t1_console_s=prev[0] if prev else None,
            prev_t4_console_s=prev[1] if prev else None,
        )
        self._last_ping = now
        try:
            self.sockets.control.send(p.encode(msg), zmq.NOBLOCK)
        except zmq.Again:
            return  # not connected (robot down): the link watchdog notices
        self._ping_pending = now

    def sync(self, exchanges: int = 5) -> None:
        """Complete ``exchanges`` ping exchanges (the robot keeps its own estimate from them)."""
        deadline = self.clock() + self.config.request_timeout_s
        done = 0
        while done < exchanges:
            if self.clock() > deadline:
                raise ConsoleError("clock sync: the robot does not answer pings")
            self.ping(force=True)
            sent = self._ping_pending
            while self._ping_pending == sent and self.clock() < deadline:
                if self.sockets.control.poll(50):
                    self._read_control()
            done += 1
        self.ping(force=True)  # carries the last exchange to the robot

    # -------------------------------------------------------------- telemetry and commands
    def poll_telemetry(self) -> p.Telemetry | None:
        """Drain the telemetry socket; keep the newest valid message."""
        sock = self.sockets.telemetry
        while True:
            try:
                data = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                msg = p.decode(data, p.Telemetry)
            except p.ProtocolError:
                self.bad_telemetry += 1
                continue
            self.telemetry = msg
            self.telemetry_at_s = self.clock()
            self.telemetry_count += 1
        return self.telemetry

    def send(self, cmd: p.Command) -> None:
        with contextlib.suppress(zmq.Again):
            self.sockets.cmd.send(p.encode(cmd), zmq.NOBLOCK)

    @property
    def link_ok(self) -> bool:
        return self.clock() - self.telemetry_at_s <= self.config.link_timeout_s


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
        self.link = RobotLink(config)
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

    # -------------------------------------------------------------- requests
    def hello(self) -> p.Welcome:
        resp = self.link.request(p.Hello(client=self.config.client))
        if not isinstance(resp, p.Welcome):
            raise ConsoleError(f"hello refused: {getattr(resp, 'reason', resp)}")
        if self.config.arm not in resp.arms:
            raise ConsoleError(f"the robot serves arms {resp.arms}, not {self.config.arm!r}")
        self.welcome = resp
        return resp

    def _ack(self, msg: p.Message) -> p.Ack:
        resp = self.link.request(msg)
        if not isinstance(resp, p.Ack):
            raise ConsoleError(f"unexpected answer {type(resp).__name__} to {type(msg).__name__}")
        return resp

    def engage(self) -> str:
        ack = self._ack(p.Engage(arm=self.config.arm, client=self.config.client))
        if not ack.ok:
            raise ConsoleError(f"engage refused: {ack.reason}")
        self.session, self.seq = ack.session, 0
        self.mapping.release()
        return ack.session

    def disengage(self) -> None:
        if self.session:
            self._ack(p.Disengage(session=self.session))
            self.session = ""

    def estop(self, reason: str = "console e-stop") -> None:
        self._ack(p.EStop(reason=reason))
        self.session = ""

    def load_task(self, task: str, seed: int) -> None:
        ack = self._ack(p.LoadTask(task=task, seed=seed))
        if not ack.ok:
            raise ConsoleError(f"load task {task} refused: {ack.reason}")

    # -------------------------------------------------------------- one command period
    def tick(self, now: float) -> HandInput:
        """Read telemetry and the device, send one command when engaged, update the HUD."""
        link = self.link
        link.poll_control()
        link.ping()
        tel = link.poll_telemetry()
        if tel is not None:
            if tel.camera is not None:
                self.mapping.set_camera(tel.camera.pose.quat_xyzw)
            self._observe(tel)
        hand = self.device.read(now, tel, self.mapping)
        if self.config.record_trace:
            self._trace_rows.append((now, *hand.hand_m.tolist(), hand.jaw))
        if self.session and tel is not None:
            shown_tool = np.asarray(tel.tool.pos_m, dtype=float)
            clutch = hand.clutch and link.link_ok
            target = self.mapping.update(hand.hand_m, clutch, shown_tool)
            self.seq += 1
            pos = target if target is not None else shown_tool
            self.link.send(
                p.Command(
                    arm=self.config.arm,
                    session=self.session,
                    seq=self.seq,
                    sent_console_s=now,
                    target=p.Pose((float(pos[0]), float(pos[1]), float(pos[2]))),
                    jaw=float(min(max(hand.jaw, 0.0), 1.0)),
                    clutch=target is not None,
                    estop=hand.estop,
                )
            )
        self._hud(now, tel)
        return hand

    def _observe(self, tel: p.Telemetry) -> None:
        self._max_force = max(self._max_force, tel.force_mag_N)
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
        try:
            self.hello()
            self.link.sync()
            code = self._run_scripted() if isinstance(self.device, ScriptedSurgeon) else self._run_interactive()
        finally:
            self._finish()
        return code

    def _run_scripted(self) -> int:
        assert isinstance(self.device, ScriptedSurgeon)
        cfg = self.config
        for i, task in enumerate(cfg.tasks):
            seed = cfg.seed + i
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
            print(
                f"console: {task} seed {seed}: {'success' if result.success else 'FAILED'} in {result.time_s:.2f} s, "
                f"max force {result.max_force_N:.2f} N ({result.reason})",
                flush=True,
            )
        self.print_summary()
        return 0 if all(r.success for r in self.results) else 1

    def _wait_for_task(self, task: str, seed: int) -> None:
        deadline = self.link.clock() + self.config.request_timeout_s
        while self.link.clock() < deadline:
            tel = self.link.poll_telemetry()
            task_state = tel.task if tel is not None else None
            if (
                task_state is not None
                and (task_state.name, task_state.seed) == (task, seed)
                and task_state.episode_s < 1
            ):
                return
            self.link.sockets.telemetry.poll(20)
        raise ConsoleError(f"no telemetry of task {task} (seed {seed}) after loading it")

    def _episode(self, task: str, seed: int) -> EpisodeResult:
        cfg = self.config
        period = 1.0 / cfg.rate_hz
        self._latencies, self._last_echo, self._max_force = [], 0, 0.0
        start = self.link.clock()
        deadline = start
        sent_before = self.seq
        success_since: float | None = None
        reason = "timeout"
        success = False
        while True:
            now = self.link.clock()
            self.tick(now)
            tel = self.link.telemetry
            if now - start > cfg.episode_timeout_s:
                break
            if not self.link.link_ok and now - start > cfg.link_timeout_s:
                reason = "lost telemetry"
                break
            if tel is not None and tel.state == "ESTOP":
                reason = f"e-stop: {tel.reason}"
                break
            if tel is not None and tel.task is not None and tel.task.success and tel.task.name == task:
                success_since = now if success_since is None else success_since
                if now - success_since >= cfg.settle_s:
                    success, reason = True, "task success"
                    break
            else:
                success_since = None
            deadline += period
            if self.link.clock() > deadline + period:
                deadline = self.link.clock()
            self.link.wait_until(deadline)
        return EpisodeResult(
            task=task,
            seed=seed,
            success=success,
            time_s=(success_since if success_since is not None else self.link.clock()) - start,
            max_force_N=self._max_force,
            latencies_s=list(self._latencies),
            commands_sent=self.seq - sent_before,
            reason=reason,
        )

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
        start = deadline = self.link.clock()
        self._latencies, self._max_force = [], 0.0
        try:
            while True:
                now = self.link.clock()
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
                deadline += period
                if self.link.clock() > deadline + period:
                    deadline = self.link.clock()
                self.link.wait_until(deadline)
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
                time_s=self.link.clock() - start,
                max_force_N=self._max_force,
                latencies_s=list(self._latencies),
                commands_sent=self.seq,
                reason="session ended",
            )
        )
        self.print_summary()
        return 0

    def _finish(self) -> None:
        if self.config.record_trace and self._trace_rows:
            rows = np.asarray(self._trace_rows)
            Trace(rows[:, 0] - rows[0, 0], rows[:, 1:4], rows[:, 4]).save(self.config.record_trace)
        self.device.close()
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

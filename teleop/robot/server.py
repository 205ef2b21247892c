"""The robot server (`telesurg robot`): a fixed-rate real-time loop around the arm and the supervisor.

Every control period (default 2 ms, 500 Hz), in this order:

1. read waiting control requests (e-stops latch as read) and answer up to ``max_control_per_period``
   (hello, clock ping, engage, …), the session owner's first, then the least demanding connections'
   (``telesurg.teleop.robot.intake``), so a flood of connections cannot hold the surgeon's requests back;
2. drain the cmd socket (CONFLATE: one message per connection), keep the newest command per session,
   decode the session owner's and hand it to the supervisor with its robot-clock receive time and
   this console's clock sync; e-stop requests are judged at once, one other message per drain is
   judged (refused), the rest counted (while waiting for the next period, commands are drained as
   they arrive, at most every 0.5 ms);
3. read the arm, let the supervisor compute the setpoint (de-jitter playout, watchdog, freshness,
   speed and jaw rate, workspace, forbidden regions, force shield, e-stop), command the arm, advance
   it one period;
4. publish telemetry (default 250 Hz) and record the period (``--record``).

Anything that fails to decode — bad bytes, another protocol version, NaN, out-of-range values,
oversized frames — is counted by reason (``Telemetry.counters``, the log, the recording) and never
reaches the supervisor; so are the supervisor's refusals. The loop sleeps to absolute deadlines;
if it falls more than one period behind it starts afresh from now (counted as an overrun) rather
than running periods back to back.

This module is the loop and the server's lifecycle (~500 lines: the period's phases, the wait
between periods and the stall accounting read best side by side); each of the server's jobs is a
module of its own: ``control``, ``offers``, ``commands``, ``sessions``, ``telemetry``, ``flight``.

The robot keeps its own clock-sync estimate per console (see ``telesurg.teleop.wire.protocol.Ping``): engage is
refused until a console has completed a ping exchange, and commands are judged with the robot's
estimate, never the console's word.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import math
import os
import signal
import sys
import threading
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from telesurg.teleop.robot.arm import RobotInterface, SimArmConfig, SimulatedArm
from telesurg.teleop.robot.commands import CommandIntake
from telesurg.teleop.robot.control import CONTROL_READS_PER_PERIOD, ControlChannel
from telesurg.teleop.robot.flight import FlightRecording
from telesurg.teleop.robot.intake import ControlIntake
from telesurg.teleop.robot.offers import OfferRelay
from telesurg.teleop.robot.realtime import (
    RealtimeReport,
    SchedClock,
    ThreadUsage,
    enter_realtime,
    other_cpus,
    realtime_io_threads,
)
from telesurg.teleop.robot.records import (
    TOPIC_STATE,
    StateRecord,
    vec3,
)
from telesurg.teleop.robot.sessions import Client, Sessions
from telesurg.teleop.robot.supervisor import Box, Supervisor, SupervisorConfig
from telesurg.teleop.robot.telemetry import TelemetryFeed
from telesurg.teleop.wire import protocol as p
from telesurg.teleop.wire.channels import Endpoints, ServerKeys, ServerSockets
from telesurg.teleop.wire.ports import bind_zmq
from telesurg.teleop.wire.timing import FixedRate, sleep_until

log = logging.getLogger("telesurg.robot")

#: SCHED_RR priority of the control loop (``realtime``); the host probe of the harness uses the same.
REALTIME_PRIORITY = 10
#: A command arriving later than this before the next period waits for the period start.
EARLY_COMMAND_MARGIN_S = 0.0005
#: Between periods the cmd socket is drained again at most this often (s): under a flood it is
#: always readable, and a console at the loop's rate must not have two commands land in one drain.
COMMAND_REDRAIN_S = 0.0005


@dataclass(frozen=True)
class ServerConfig:
    """The robot server. Rates in Hz; ``session_timeout_s``: an engaged console that sends neither a
    valid command nor a control request for this long loses its session (the arm already holds after
    the watchdog; this frees it for another console). ``record``: MCAP path or None; ``{time}`` in it
    becomes the start time (YYYYmmdd-HHMMSS); an existing file is never overwritten. ``realtime``: ask
    the OS for round-robin real-time scheduling (needs the privilege; a warning otherwise).
    ``state_port``: also publish every telemetry message on this loopback port, without CURVE, for
    processes on the robot host (the video renderer mirrors the scene from it); None: off.
    ``video_signal_port``: the media process's signalling port on loopback (``telesurg video``);
    consoles' WebRTC offers are forwarded there; None: video offers are refused."""

    endpoints: Endpoints = field(default_factory=Endpoints)
    control_rate_hz: float = 500.0
    telemetry_rate_hz: float = 250.0
    session_timeout_s: float = 3.0
    max_control_per_period: int = 16
    record: str | None = None
    record_flush_s: float = 0.5
    realtime: bool = False
    #: Pin the control loop to this CPU (None: any; negative counts from the machine's last CPU, so
    #: -1 is the last); the server's other threads and its recorder process then run on the other
    #: CPUs. Ignored on a single CPU.
    cpu: int | None = None
    #: With ``realtime``: lock all memory (mlockall), so the loop never waits for a page fault.
    lock_memory: bool = True
    status_every_s: float = 5.0
    #: A period longer than this many nominal periods is a stall: logged and recorded with where its
    #: time went (the safety harness's stall invariant is 5×; a benchmark may look closer).
    stall_factor: float = 5.0
    keys: ServerKeys | None = None
    state_port: int | None = None
    video_signal_port: int | None = None
    #: Forget a forwarded offer the media process has not answered after this long (s).
    video_answer_timeout_s: float = 5.0
    arm: SimArmConfig = field(default_factory=SimArmConfig)
    supervisor: SupervisorConfig = field(default_factory=SupervisorConfig)

    def __post_init__(self) -> None:
        if not 10.0 <= self.control_rate_hz <= 2000.0:
            raise ValueError(f"control_rate_hz must be in [10, 2000], got {self.control_rate_hz}")
        if not 1.0 <= self.telemetry_rate_hz <= self.control_rate_hz:
            raise ValueError(f"telemetry_rate_hz must be in [1, control_rate_hz], got {self.telemetry_rate_hz}")
        if self.session_timeout_s <= self.supervisor.watchdog_s:
            raise ValueError("session_timeout_s must be longer than the supervisor's watchdog_s")

    @property
    def period_s(self) -> float:
        return 1.0 / self.control_rate_hz


@dataclass
class PeriodStats:
    """Control-loop periods (s) as measured between the starts of successive periods."""

    nominal_s: float
    periods_s: array = field(default_factory=lambda: array("d"))
    overruns: int = 0
    limit: int = 600_000
    realtime: RealtimeReport | None = None
    #: The loop thread's page faults and context switches over the run.
    usage: dict[str, int] = field(default_factory=dict)

    def add(self, period_s: float) -> None:
        if len(self.periods_s) < self.limit:
            self.periods_s.append(period_s)

    def summary(self) -> dict[str, float]:
        x = np.frombuffer(self.periods_s, dtype=float) if len(self.periods_s) else np.zeros(1)
        nominal = self.nominal_s
        return {
            "periods": len(self.periods_s),
            "nominal_ms": nominal * 1e3,
            "mean_ms": float(x.mean() * 1e3),
            "p50_ms": float(np.percentile(x, 50) * 1e3),
            "p99_ms": float(np.percentile(x, 99) * 1e3),
            "max_ms": float(x.max() * 1e3),
            "within_20pct": float(np.mean(np.abs(x - nominal) <= 0.2 * nominal)),
            "over_5x": int(np.sum(x > 5 * nominal)),
            "overruns": self.overruns,
            "realtime_priority": self.realtime.priority if self.realtime else 0,
            "cpu": self.realtime.cpu if self.realtime else None,
            "memory_locked": bool(self.realtime and self.realtime.memory_locked),
            **self.usage,
        }


class RobotServer(ControlChannel, OfferRelay, CommandIntake, Sessions, TelemetryFeed, FlightRecording):
    """See the module docstring. ``run()`` blocks until ``stop()`` (or SIGINT/SIGTERM in ``serve``).

    Its jobs live in one module each (mixins sharing this object's state): ``control``, ``offers``,
    ``commands``, ``sessions``, ``telemetry``, ``flight``; here: the loop and the lifecycle."""

    def __init__(self, config: ServerConfig, robot: RobotInterface | None = None) -> None:
        self.config = config
        self.robot: RobotInterface = robot or SimulatedArm(config.arm)
        self.arm_id = self.robot.arm_id
        self.clock = time.monotonic
        self.counters: Counter[str] = Counter()
        self.stats = PeriodStats(config.period_s)
        self._stop = threading.Event()
        self._clients: dict[bytes, Client] = {}
        self._intake: ControlIntake[list[Any]] = ControlIntake()
        self._control_reads_left = CONTROL_READS_PER_PERIOD
        self._session_owner: bytes | None = None
        #: Who owned the session when the e-stop latched (``_identity``), None if no one did.
        self._stop_owner: tuple[str, str] | None = None
        #: Authorised keys with the reset role: Z85 public key → key name (from the authenticator).
        self._reset_keys: dict[str, str] = {}
        #: The authenticator's key-folder version and denial count the server has taken in.
        self._keys_version = 0
        self._denied_seen = 0
        self._telemetry_seq = 0
        self._last_event = 0
        self.sockets: ServerSockets | None = None
        self.recorder: Any = None
        self.record_path: Path | None = None
        self.supervisor: Supervisor | None = None
        self._camera: p.Camera | None = None
        self._state_pub: zmq.Socket | None = None
        self._signal: zmq.Socket | None = None
        self._signal_seq = 0
        #: Forwarded offers: request id → (console identity, offer digest, forwarded at robot s).
        self._offers_pending: dict[int, tuple[bytes, bytes, float]] = {}
        #: The last answer per console identity and offer digest (a repeated offer gets it again).
        self._offers_answered: dict[bytes, tuple[bytes, p.Message]] = {}
        self._gc_s = self._gc_started_s = 0.0
        #: The length of the period that just ended (s): the nominal one before the first.
        self._period_s = config.period_s
        #: The longest single ZeroMQ poll and nap, and the final sleep, of the current wait (s).
        self._wait_poll_s = self._wait_nap_s = self._wait_sleep_s = 0.0
        self.cpu: int | None = None

    def start(self) -> None:
        """Connect the arm, bind the sockets, open the recording (everything ``run`` needs)."""
        self.cpu = _resolve_cpu(self.config.cpu)
        if self.cpu is not None:
            # Threads started from here on (ZeroMQ's I/O, the authenticator) and the recorder process
            # inherit this: they stay off the CPU that ``run`` then gives the control loop alone.
            os.sched_setaffinity(0, other_cpus(self.cpu))
        self.robot.connect()
        try:
            self.supervisor = Supervisor(self._supervisor_config(), now_s=self.clock())
            context = zmq.Context.instance()
            if self.config.realtime and realtime_io_threads(context, REALTIME_PRIORITY - 1):
                log.info("ZeroMQ I/O threads at SCHED_RR priority %d", REALTIME_PRIORITY - 1)
            self.sockets = ServerSockets(self.config.endpoints, self.config.keys, context)
            ctx = self.sockets.context
            if self.config.state_port is not None:  # every port bound before the recording is created
                self._state_pub = ctx.socket(zmq.PUB)
                self._state_pub.setsockopt(zmq.SNDHWM, 4)
                self._state_pub.setsockopt(zmq.LINGER, 0)
                bind_zmq(self._state_pub, "127.0.0.1", self.config.state_port, "state_port")
            if self.config.record:
                self._open_recorder(self.config.record)
            if self.config.video_signal_port is not None:
                self._signal = ctx.socket(zmq.DEALER)
                self._signal.setsockopt(zmq.SNDHWM, 16)
                self._signal.setsockopt(zmq.LINGER, 0)
                self._signal.connect(f"tcp://127.0.0.1:{self.config.video_signal_port}")
            self._camera = self.robot.camera()
        except Exception:
            self.close()
            raise

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None
        for sock in (self._state_pub, self._signal):
            if sock is not None:
                sock.close(0)
        self._state_pub = self._signal = None
        if self.sockets is not None:
            self.sockets.close()
            self.sockets = None
        self.robot.disconnect()

    def _supervisor_config(self) -> SupervisorConfig:
        low, high = self.robot.workspace_m()
        forbidden = tuple(
            Box(tuple(float(v) for v in lo), tuple(float(v) for v in hi))  # type: ignore[arg-type]
            for lo, hi in self.robot.forbidden_regions_m()
        )
        return dataclasses.replace(
            self.config.supervisor,
            workspace_low_m=tuple(float(v) for v in low),
            workspace_high_m=tuple(float(v) for v in high),
            forbidden=self.config.supervisor.forbidden + forbidden,
            limits=self.robot.limits,
        )

    def run(self) -> PeriodStats:
        if self.supervisor is None or self.sockets is None:
            raise RuntimeError("call start() before run()")
        period = self.config.period_s
        telemetry_every = max(1, round(self.config.control_rate_hz / self.config.telemetry_rate_hz))
        report = enter_realtime(
            priority=REALTIME_PRIORITY if self.config.realtime else 0,
            cpu=self.cpu,
            lock_memory=self.config.realtime and self.config.lock_memory,
        )
        self.stats.realtime = report
        if self.config.realtime and report.realtime:
            log.info("running with SCHED_RR real-time priority %d", report.priority)
        for refused in report.refused:
            log.warning("real-time set-up: %s not granted; running without it", refused)
        # First use inside the simulator allocates (pybullet's first state query: 32 MiB, which locked
        # memory faults in at once, 15 ms): done here, before the first period, not in it.
        self.robot.read()
        # Everything built so far lives as long as the server: take it out of the garbage collector's
        # sight, so a full collection in the loop is short (~10 ms otherwise, five periods).
        gc.collect()
        gc.freeze()
        # Another thread (CURVE's authenticator) would share the interpreter lock: back within 0.5 ms.
        sys.setswitchinterval(0.0005)
        gc.callbacks.append(self._time_gc)
        first_usage = usage = ThreadUsage.now()
        start = self.clock()
        rate = FixedRate(period, self.clock, start)
        last_start = None
        marks = (start,) * 5
        sched = SchedClock()
        sched_start = sched_work = sched.read()
        blocked = False
        next_status = start + self.config.status_every_s
        k = 0
        while not self._stop.is_set():
            now = self.clock()
            # What the period just ended suffered: page faults, garbage collection, and over its work
            # the loop's CPU time, run-queue wait and whether it slept (for stalls).
            usage_before, usage = usage, ThreadUsage.now()
            gc_s, self._gc_s = self._gc_s, 0.0
            if last_start is not None:
                self._period_s = now - last_start  # recorded as is (the stats keep a bounded history)
                self.stats.add(now - last_start)
                if now - last_start > self.config.stall_factor * period:
                    faults = usage.minor_faults + usage.major_faults - usage_before.minor_faults
                    faults -= usage_before.major_faults
                    work = (sched_work[0] - sched_start[0], sched_work[1] - sched_start[1], blocked)
                    self._log_stall(now - last_start, marks, faults, gc_s, work)
            last_start = now
            sched_start = sched.read()
            self._wait_poll_s = self._wait_nap_s = self._wait_sleep_s = 0.0
            auth = self.sockets.auth
            if auth is not None and (auth.version != self._keys_version or auth.denied_total != self._denied_seen):
                self._take_auth_news(auth, now)
            self._control_reads_left = CONTROL_READS_PER_PERIOD
            self._serve_control(now)
            t_control = self.clock()
            self._take_command(t_control)
            t_command = self.clock()
            self._control_period(now, period, publish=(k % telemetry_every == 0))
            t_period = self.clock()
            sched_work = sched.read()
            blocked = ThreadUsage.now().voluntary_switches != usage.voluntary_switches
            k += 1
            if now >= next_status:
                self._status(now)
                next_status = now + self.config.status_every_s
            if rate.advance():  # over a period late: start afresh from now, no wait
                self.stats.overruns += 1
                marks = (now, t_control, t_command, t_period, t_period)
                continue
            self._wait(rate.deadline_s)
            marks = (now, t_control, t_command, t_period, self.clock())
        self.stats.usage = ThreadUsage.now().since(first_usage)
        sched.close()
        gc.callbacks.remove(self._time_gc)
        return self.stats

    def _time_gc(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started_s = self.clock()
        else:
            self._gc_s += self.clock() - self._gc_started_s

    def _wait(self, deadline: float) -> None:
        """Wait for the next period, serving what arrives meanwhile: commands (drained as they arrive,
        at most once per ``COMMAND_REDRAIN_S``, so a flood cannot eat the loop's time while the
        owner's commands are still judged before a newer one replaces them; this takes the wait for
        the period boundary out of the command latency — the arm still moves only at period
        boundaries) and control requests (a clock ping answered at once keeps the sync's round trip
        short and unbiased), within the period's control budget."""
        assert self.sockets is not None
        cmd, control = self.sockets.cmd, self.sockets.control
        control_on = True
        next_drain = 0.0
        served = 0
        while True:
            now = self.clock()
            # Serving takes ~0.1 ms: too close to the deadline, it waits for the period start.
            remaining = deadline - now - EARLY_COMMAND_MARGIN_S
            if remaining <= 0:
                break
            drain = now >= next_drain
            watch = [sock for sock, on in ((cmd, drain), (control, control_on)) if on]
            horizon = remaining if drain else min(remaining, next_drain - now)
            t_poll = self.clock()
            if not watch:
                time.sleep(horizon)
                ready: list[Any] = []
            else:
                # ZeroMQ polls in whole milliseconds; below one, it polls at once and naps 0.1 ms.
                ready, _, _ = zmq.select(watch, [], [], horizon if horizon >= 0.001 else 0)
            self._wait_poll_s = max(self._wait_poll_s, self.clock() - t_poll)
            if cmd in ready:
                self._take_command(self.clock())
                next_drain = self.clock() + COMMAND_REDRAIN_S
            if control in ready:
                served += self._serve_control(self.clock(), limit=1)
                if served >= self.config.max_control_per_period or self._control_reads_left <= 0:
                    control_on = False
            if watch and not ready and horizon < 0.001:
                t_nap = self.clock()
                time.sleep(min(horizon, 0.0001))
                self._wait_nap_s = max(self._wait_nap_s, self.clock() - t_nap)
        t_sleep = self.clock()
        sleep_until(deadline, self.clock)
        self._wait_sleep_s = self.clock() - t_sleep

    def _control_period(self, now: float, dt: float, publish: bool) -> None:
        sup = self.supervisor
        assert sup is not None
        self._check_session(now)
        reading = self.robot.read()
        setpoint = sup.tick(now, reading.tip_m, reading.jaw, dt, reading.force_N, reading.force_peak_N)
        self.robot.command(setpoint.tip_m, setpoint.jaw)
        self.robot.update(dt)
        self._flush_events()
        self._record_task(now)
        f = reading.force_N
        fmag = math.sqrt(float(f @ f))
        if self.recorder is not None:
            self._record(
                TOPIC_STATE,
                StateRecord(
                    robot_s=now,
                    period_s=self._period_s,
                    tip_m=vec3(reading.tip_m),
                    setpoint_m=vec3(setpoint.tip_m),
                    jaw=reading.jaw,
                    jaw_setpoint=setpoint.jaw,
                    force_N=vec3(f),
                    force_mag_N=fmag,
                    force_peak_N=reading.force_peak_N,
                    state=str(sup.state),
                    reason=sup.reason,
                    last_cmd_seq=sup.applied_seq,
                    session=sup.session,
                ),
            )
        if publish:
            self._publish(now, reading, f, fmag)

    def _status(self, now: float) -> None:
        s = self.stats
        recent = np.frombuffer(s.periods_s, dtype=float)[-2500:] if len(s.periods_s) else np.zeros(1)
        sup = self.supervisor
        assert sup is not None
        log.info(
            "%s | period mean %.3f ms, max %.3f ms, overruns %d | commands %d | rejected %d",
            sup.state,
            recent.mean() * 1e3,
            recent.max() * 1e3,
            s.overruns,
            self.counters["cmd.received"],
            sum(
                v
                for k, v in self.counters.items()
                if k not in ("cmd.received", "cmd.accepted") and not k.startswith("telemetry")
            ),
        )


def _resolve_cpu(cpu: int | None) -> int | None:
    """The CPU ``ServerConfig.cpu`` names (negative: from the machine's last), None when unset or on a
    single CPU. Counted over the machine's CPUs, not this process's inherited affinity, which a
    launcher may already have narrowed to the *other* CPUs."""
    cpus = list(range(os.cpu_count() or 1))
    if cpu is None or len(cpus) < 2:
        return None
    if not -len(cpus) <= cpu < len(cpus):
        raise ValueError(f"cpu {cpu} does not exist: this machine has CPUs 0–{len(cpus) - 1}")
    return cpus[cpu]


def serve(config: ServerConfig, ready_message: bool = True) -> PeriodStats:
    """Run a server until SIGINT or SIGTERM; prints 'listening' once ready (launch files wait for it)."""
    server = RobotServer(config)
    server.start()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _stop(signum: int, _frame: Any) -> None:
        server.stop()

    for sig in previous:
        signal.signal(sig, _stop)
    try:
        e = config.endpoints
        if ready_message:
            print(
                f"robot {server.arm_id} ({server.robot.task_name}) listening on {e.host}: cmd {e.cmd_port}, "
                f"telemetry {e.telemetry_port}, control {e.control_port}"
                f"{' (CURVE)' if config.keys else ''}"
                f"{'; recording to ' + str(server.record_path) if server.record_path else ''}",
                flush=True,
            )
        stats = server.run()
    finally:
        server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return stats

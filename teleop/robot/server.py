"""The robot server (`telesurg robot`): a fixed-rate real-time loop around the arm and the supervisor.

Every control period (default 2 ms, 500 Hz), in this order:

1. read waiting control requests (e-stops latch as read) and answer up to ``max_control_per_period``
   (hello, clock ping, engage, …), the session owner's first, then the least demanding connections'
   (``teleop.robot.intake``), so a flood of connections cannot hold the surgeon's requests back;
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

The robot keeps its own clock-sync estimate per console (see ``teleop.wire.protocol.Ping``): engage is
refused until a console has completed a ping exchange, and commands are judged with the robot's
estimate, never the console's word.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
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

from teleop.robot.arm import CameraInfo, SimArmConfig, SimulatedArm
from teleop.robot.intake import ControlIntake
from teleop.robot.realtime import (
    RealtimeReport,
    SchedClock,
    ThreadUsage,
    enter_realtime,
    other_cpus,
    realtime_io_threads,
)
from teleop.robot.records import (
    RECORD_TYPES,
    TOPIC_APPLIED,
    TOPIC_COMMANDS,
    TOPIC_CONFIG,
    TOPIC_CONTROL,
    TOPIC_EVENTS,
    TOPIC_REJECTED,
    TOPIC_STALLS,
    TOPIC_STATE,
    CommandRecord,
    ConfigRecord,
    ControlRecord,
    EventRecord,
    RejectedRecord,
    StallRecord,
    StateRecord,
)
from teleop.robot.supervisor import Box, State, Supervisor, SupervisorConfig
from teleop.wire import protocol as p
from teleop.wire import signalling
from teleop.wire.auth import fingerprint
from teleop.wire.channels import Endpoints, ServerKeys, ServerSockets, is_loopback
from teleop.wire.clock import ClockEstimator, ClockSync
from teleop.wire.ports import bind_zmq
from teleop.wire.timing import FixedRate, sleep_until

log = logging.getLogger("telesurg.robot")

#: SCHED_RR priority of the control loop (``realtime``); the host probe of the harness uses the same.
REALTIME_PRIORITY = 10
#: A command arriving later than this before the next period waits for the period start.
EARLY_COMMAND_MARGIN_S = 0.0005
#: Control requests read per period at most, and for at most this long (s) each time (checked every
#: 16): a flood of connections is read in turn; what is read waits in the intake (``teleop.robot.intake``).
CONTROL_READS_PER_PERIOD = 64
CONTROL_READ_BUDGET_S = 0.0003
#: The answer to a request shed from a full intake (``control.busy``).
BUSY_REPLY = p.encode(
    p.Ack(request="?", ok=False, reason="busy: the robot is answering other connections first; ask again later")
)
#: One drain of the cmd socket reads for at most this long (s) and this many messages: enough to
#: reach every connection of a 200-connection flood each period (~1.5 µs a message), bounded so a
#: flood cannot take the period (checked every 16 messages).
COMMAND_DRAIN_BUDGET_S = 0.0006
COMMAND_DRAIN_MAX = 1024
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


class _Client:
    """What the server knows about one control-channel peer (by ZeroMQ routing id)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hello = False
        self.clock = ClockEstimator()
        self.pongs: dict[float, tuple[float, float]] = {}  # t1 → (t2, t3) of recent exchanges
        self.last_seen_s = 0.0
        #: Its CURVE public key (Z85, ZeroMQ's ``User-Id``; "" without CURVE) and TCP address.
        self.key = ""
        self.address = ""


class RobotServer:
    """See the module docstring. ``run()`` blocks until ``stop()`` (or SIGINT/SIGTERM in ``serve``)."""

    def __init__(self, config: ServerConfig, robot: SimulatedArm | None = None) -> None:
        self.config = config
        self.robot = robot or SimulatedArm(config.arm)
        self.arm_id = self.robot.arm_id
        self.clock = time.monotonic
        self.counters: Counter[str] = Counter()
        self.stats = PeriodStats(config.period_s)
        self._stop = threading.Event()
        self._clients: dict[bytes, _Client] = {}
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

    # ------------------------------------------------------------------ lifecycle
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
            self._camera = camera_message(self.robot.camera())
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

    def _open_recorder(self, path: str) -> None:
        from teleop.robot.recorder_process import ProcessRecorder

        self.record_path = Path(path.replace("{time}", time.strftime("%Y%m%d-%H%M%S"))).resolve()
        # Its own process: encoding, lz4 chunks and the disk never share the loop's interpreter lock.
        self.recorder = ProcessRecorder(
            self.record_path,
            RECORD_TYPES,
            cpus=None if self.cpu is None else other_cpus(self.cpu),
            flush_interval_s=self.config.record_flush_s,
            compression="lz4",
        )
        self._ch = self.recorder.channel_ids
        self._record_config(self.clock())

    def _record_config(self, now: float) -> None:
        sup = self.supervisor
        if self.recorder is None or sup is None:
            return
        cfg = sup.config
        negative = [n for n in ("test_disable_watchdog", "test_disable_speed_limit") if getattr(cfg, n)]
        self._record(
            TOPIC_CONFIG,
            ConfigRecord(
                robot_s=now,
                arm=self.arm_id,
                task=self.robot.task_name,
                seed=self.robot.seed,
                control_period_s=self.config.period_s,
                watchdog_s=cfg.watchdog_s,
                age_slowdown_s=cfg.age_slowdown_s,
                max_age_s=cfg.max_age_s,
                max_tip_speed_m_s=cfg.max_tip_speed_m_s,
                max_jaw_rate_per_s=cfg.max_jaw_rate_per_s,
                hard_force_N=cfg.limits.hard_N,
                workspace_low_m=_vec(cfg.workspace_low_m),
                workspace_high_m=_vec(cfg.workspace_high_m),
                forbidden_m=[(_vec(b.low_m), _vec(b.high_m)) for b in cfg.forbidden],
                negative_controls=negative,
            ),
        )
        if negative:
            log.warning("NEGATIVE CONTROL ACTIVE (harness test only): %s", ", ".join(negative))

    def _record(self, topic: str, message: Any) -> None:
        if self.recorder is not None:
            self.recorder.write(self._ch[topic], message, time.time_ns())

    # ------------------------------------------------------------------ the loop
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

    def _log_stall(
        self, length_s: float, marks: tuple[float, ...], faults: int, gc_s: float, work: tuple[float, float, bool]
    ) -> None:
        """Say where the time of a long period went (control requests, command, arm + supervisor +
        telemetry + recording, waiting), in the log and the recording."""
        start, control, command, period, waited = marks
        work_s = period - start
        stall = StallRecord(
            start_robot_s=start,
            period_s=length_s,
            control_s=control - start,
            command_s=command - control,
            work_s=period - command,
            wait_s=waited - period,
            unaccounted_s=length_s - (waited - start),
            kind="work" if work_s > self.config.period_s else "wait",
            page_faults=faults,
            gc_s=gc_s,
            longest_poll_s=self._wait_poll_s,
            longest_nap_s=self._wait_nap_s,
            final_sleep_s=self._wait_sleep_s,
            work_cpu_s=work[0],
            work_queued_s=work[1],
            work_blocked=work[2],
        )
        self.counters[f"loop.stall.{stall.kind}"] += 1
        self._record(TOPIC_STALLS, stall)
        log.warning(
            "long control period (%s): %.1f ms (control %.2f, command %.2f, arm/supervisor/telemetry/record %.2f, "
            "wait %.2f (longest poll %.2f, nap %.2f, final sleep %.2f), unaccounted %.2f ms; %d page faults, "
            "%.2f ms in garbage collection; before the wait %.2f ms on CPU, %.2f ms queued%s)",
            stall.kind,
            length_s * 1e3,
            stall.control_s * 1e3,
            stall.command_s * 1e3,
            stall.work_s * 1e3,
            stall.wait_s * 1e3,
            stall.longest_poll_s * 1e3,
            stall.longest_nap_s * 1e3,
            stall.final_sleep_s * 1e3,
            stall.unaccounted_s * 1e3,
            stall.page_faults,
            stall.gc_s * 1e3,
            stall.work_cpu_s * 1e3,
            stall.work_queued_s * 1e3,
            ", slept" if stall.work_blocked else "",
        )

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
        f = reading.force_N
        fmag = math.sqrt(float(f @ f))
        if self.recorder is not None:
            self._record(
                TOPIC_STATE,
                StateRecord(
                    robot_s=now,
                    period_s=self._period_s,
                    tip_m=_vec(reading.tip_m),
                    setpoint_m=_vec(setpoint.tip_m),
                    jaw=reading.jaw,
                    jaw_setpoint=setpoint.jaw,
                    force_N=_vec(f),
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

    def _publish(self, now: float, reading: Any, f: np.ndarray, fmag: float) -> None:
        sup = self.supervisor
        assert sup is not None and self.sockets is not None
        self._telemetry_seq += 1
        sync = self._owner_sync()
        rtt = 0.0
        owner = self._clients.get(self._session_owner) if self._session_owner else None
        if owner is not None and owner.clock.ready:
            rtt = owner.clock.best().rtt_s
        snap = self.robot.task_snapshot()
        msg = p.Telemetry(
            arm=self.arm_id,
            seq=self._telemetry_seq,
            robot_s=now,
            joint_pos=reading.joint_pos,
            tool=p.Pose(_vec(reading.tip_m), reading.tip_quat_xyzw),
            jaw=min(max(reading.jaw, 0.0), 1.0),
            force_N=_vec(f),
            force_mag_N=fmag,
            state=str(sup.state),  # type: ignore[arg-type]
            reason=sup.reason[:200],
            last_cmd_seq=sup.applied_seq,
            last_cmd_sent_console_s=sup.applied_sent_console_s,
            last_cmd_accepted_robot_s=sup.applied_robot_s,
            clock_offset_s=sync.offset_s if sync else 0.0,
            clock_rtt_s=rtt,
            objects={name: p.Pose(pos, quat) for name, (pos, quat) in self.robot.objects().items()},  # type: ignore[arg-type]
            camera=self._camera,
            counters=dict(self.counters),
            task=p.TaskState(
                name=snap.name,
                seed=snap.seed,
                observation=snap.observation,
                achieved_goal=snap.achieved_goal,
                desired_goal=snap.desired_goal,
                success=snap.success,
                episode_s=snap.episode_s,
            ),
        )
        data = p.encode(msg)
        try:
            self.sockets.telemetry.send(data, zmq.NOBLOCK)
        except zmq.Again:
            self.counters["telemetry.dropped"] += 1
        if self._state_pub is not None:
            try:
                self._state_pub.send(data, zmq.NOBLOCK)
            except zmq.Again:
                self.counters["state_feed.dropped"] += 1

    # ------------------------------------------------------------------ commands
    def _take_command(self, now: float) -> None:
        """Drain the cmd socket and judge what matters: the owner's newest command every time,
        whatever else is pending (issue 15: ``CONFLATE`` keeps one message per connection and ZeroMQ
        reads connections in turn, so reading one message per turn gave the owner 1/(N+1) of them).

        Every pending message is read (within ``COMMAND_DRAIN_BUDGET_S`` and ``COMMAND_DRAIN_MAX``)
        and peeked at (``protocol.peek_command``): an e-stop request is judged at once; of the rest
        the newest (highest ``seq``) per session is kept. The supervisor's session's newest is then
        judged, and one other message (a session's newest, or one whose session cannot be read, which
        the full decode refuses by reason); the rest are counted (``cmd.superseded``: an older command
        of a kept session, ``cmd.superseded_own`` when the owner's; ``cmd.unjudged``: another
        session's, dropped unread like a conflated one)."""
        assert self.sockets is not None and self.supervisor is not None
        sock = self.sockets.cmd
        curve = self.sockets.auth is not None  # the sender's key is a property of the received frame
        own = self.supervisor.session
        newest: dict[str, tuple[int, list[Any]]] = {}
        unreadable: list[list[Any]] = []
        end = now + COMMAND_DRAIN_BUDGET_S
        for n in range(COMMAND_DRAIN_MAX):
            if n % 16 == 15 and self.clock() > end:
                break
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK, copy=not curve)
            except zmq.Again:
                break
            data = parts[-1] if not curve else parts[-1].bytes
            peek = p.peek_command(data) if len(parts) == 1 else p.CommandPeek(None, None, None)
            if peek.estop is not None:
                self._judge_command(parts, self.clock())
                continue
            if peek.session is None or peek.seq is None:
                unreadable.append(parts)
                continue
            if curve and own and peek.session == own and self._foreign(parts, len(data), now):
                continue
            kept = newest.get(peek.session)
            if kept is not None:
                self.counters["cmd.superseded_own" if own and peek.session == own else "cmd.superseded"] += 1
                if kept[0] >= peek.seq:
                    continue
            newest[peek.session] = (peek.seq, parts)
        mine = newest.pop(own, None) if own else None
        if mine is not None:
            self._judge_command(mine[1], self.clock())
        others = [kept[1] for kept in newest.values()] + unreadable
        if others:
            self._judge_command(others[0], self.clock())
            if len(others) > 1:
                self.counters["cmd.unjudged"] += len(others) - 1

    def _foreign(self, parts: list[Any], size: int, now: float) -> bool:
        """Under CURVE: refuse (and count) a command carrying the owner's session id from another key."""
        owner_key = self._clients[self._session_owner].key if self._session_owner in self._clients else ""
        if owner_key and _frame_property(parts[0], "User-Id") != owner_key:
            self._reject("cmd", "foreign_identity", "the session's id from another key", size, now)
            return True
        return False

    def _judge_command(self, parts: list[Any], now: float) -> None:
        """Decode one command in full and hand it to the supervisor (or refuse it, counted by reason)."""
        assert self.sockets is not None and self.supervisor is not None
        frames = [part if isinstance(part, bytes) else part.bytes for part in parts]
        if len(frames) != 1:  # CONFLATE delivers single frames; be strict anyway
            self._reject("cmd", "malformed", f"{len(frames)} frames", sum(len(f) for f in frames), now)
            for frame in frames:
                if self._odd_estop("cmd", None, frame, "malformed", now):
                    break
            return
        data = frames[0]
        try:
            cmd = p.decode(data, p.Command)
        except p.ProtocolError as exc:
            self._reject("cmd", exc.reason, exc.detail, len(data), now)
            self._odd_estop("cmd", None, data, exc.reason, now)
            return
        self.counters["cmd.received"] += 1
        if cmd.arm != self.arm_id:
            self._reject("cmd", "wrong_arm", f"command for arm {cmd.arm!r}, this is {self.arm_id!r}", len(data), now)
            self._odd_estop("cmd", None, data, "wrong_arm", now)
            return
        owner_key = self._clients[self._session_owner].key if self._session_owner in self._clients else ""
        if not cmd.estop and (owner_key or self.sockets.auth is not None):
            sender = _frame_property(parts[0], "User-Id")
            if self._revoked(sender):
                self._reject("cmd", "revoked", "a command from a revoked key", len(data), now)
                return
            if owner_key and cmd.session == self.supervisor.session and sender != owner_key:
                # The owner's session id from another key: never its command.
                self._reject("cmd", "foreign_identity", "the session's id from another key", len(data), now)
                return
        sync = self._owner_sync() if self.supervisor.session == cmd.session else None
        clock = sync or ClockSync(0.0, 0.0)
        was = self.supervisor.state
        verdict = self.supervisor.on_command(
            cmd.session,
            cmd.seq,
            cmd.sent_console_s,
            np.asarray(cmd.target.pos_m, dtype=float),
            cmd.jaw,
            cmd.clutch,
            cmd.estop,
            now,
            clock,
        )
        self._latched(was)
        if verdict.accepted:
            self.counters["cmd.accepted"] += 1
            if self._session_owner in self._clients:
                self._clients[self._session_owner].last_seen_s = now
        else:
            self.counters[f"cmd.{verdict.code}"] += 1
        if self.recorder is not None:
            rec = CommandRecord(
                received_robot_s=now,
                session=cmd.session,
                seq=cmd.seq,
                sent_console_s=cmd.sent_console_s,
                target_m=cmd.target.pos_m,
                jaw=cmd.jaw,
                clutch=cmd.clutch,
                estop=cmd.estop,
                accepted=verdict.accepted,
                code=verdict.code,
                reason=verdict.reason,
                age_s=now - (cmd.sent_console_s + clock.offset_s),
                clock_offset_s=clock.offset_s,
                clock_uncertainty_s=clock.uncertainty_s,
            )
            self._record(TOPIC_COMMANDS, rec)
            if verdict.accepted:
                self._record(TOPIC_APPLIED, rec)
        self._flush_events()

    def _owner_sync(self) -> ClockSync | None:
        owner = self._clients.get(self._session_owner) if self._session_owner else None
        return owner.clock.sync() if owner is not None and owner.clock.ready else None

    def _check_session(self, now: float) -> None:
        sup = self.supervisor
        assert sup is not None
        if not sup.session:
            self._session_owner = None
            return
        owner = self._clients.get(self._session_owner) if self._session_owner else None
        seen = max(sup.last_valid_s, owner.last_seen_s if owner else -math.inf)
        if now - seen > self.config.session_timeout_s:
            log.warning("session %s of %s timed out; the arm is free", sup.session, sup.client)
            sup.disengage(sup.session, now)
            sup.reason = f"session timed out after {self.config.session_timeout_s:.1f} s of silence"
            self._session_owner = None

    def _reject(self, channel: str, reason: str, detail: str, size: int, now: float) -> None:
        self.counters[f"{channel}.{reason}"] += 1
        if self.counters[f"{channel}.{reason}"] <= 5 or self.counters[f"{channel}.{reason}"] % 1000 == 0:
            log.warning(
                "rejected %s message (%s, %d bytes): %s [%d so far]",
                channel,
                reason,
                size,
                detail[:200],
                self.counters[f"{channel}.{reason}"],
            )
        self._record(TOPIC_REJECTED, RejectedRecord(now, channel, reason, detail[:500], size))

    def _flush_events(self) -> None:
        sup = self.supervisor
        assert sup is not None
        events = list(sup.events)
        # events is a bounded deque; find the ones not written yet by their count.
        new = events[len(events) - min(len(events), sup.events_total - self._last_event) :]
        for ev in new:
            log.info("supervisor %s → %s: %s", ev.previous, ev.state, ev.reason)
            self._record(TOPIC_EVENTS, EventRecord(ev.time_s, str(ev.previous), str(ev.state), ev.reason))
        self._last_event = sup.events_total

    # ------------------------------------------------------------------ control channel
    def _serve_control(self, now: float, limit: int | None = None) -> int:
        """Read waiting requests into the intake (``teleop.robot.intake``: e-stops latched as read, at most
        ``CONTROL_READS_PER_PERIOD`` a period within ``CONTROL_READ_BUDGET_S``), then answer up to
        ``limit`` (default: the per-period budget), the owner's first; returns how many."""
        assert self.sockets is not None
        if self._signal is not None:
            self._relay_answers(now)
        self._read_control(now)
        taken = self._intake.take(
            self.config.max_control_per_period if limit is None else limit, now, self._session_owner
        )
        for ident, parts in taken:
            self._serve_request(ident, parts, self.clock())
        return len(taken)

    def _read_control(self, now: float) -> None:
        assert self.sockets is not None
        sock = self.sockets.control
        end = now + CONTROL_READ_BUDGET_S
        while self._control_reads_left > 0:
            if self._control_reads_left % 16 == 0 and self.clock() > end:
                break
            try:
                parts = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._control_reads_left -= 1
            ident = parts[0].bytes
            if any(len(part) > p.MAX_MESSAGE_BYTES for part in parts[1:]):
                self._intake.rates.add(ident, now)
                self._too_large(ident, parts, self.clock())
                continue
            if len(parts) == 2 and p.estop_request(parts[1].bytes) is not None:  # latched at once
                self._intake.rates.add(ident, now)
                self._serve_request(ident, parts, self.clock())
                continue
            for shed_ident, _ in self._intake.arrived(ident, parts, now, self._session_owner):
                self.counters["control.busy"] += 1
                self._reply_bytes(shed_ident, BUSY_REPLY)

    def _too_large(self, ident: bytes, parts: list[Any], now: float) -> None:
        """A request with a frame above ``MAX_MESSAGE_BYTES`` (up to ``channels.MAX_FRAME_BYTES``,
        beyond which ZeroMQ closes the connection): answered ``too_large`` and counted, never copied
        (an e-stop in it still latches)."""
        self._see(ident, parts[-1], now)
        size = sum(len(part) for part in parts[1:])
        if any(self._odd_estop("control", ident, part.buffer, "too large", now) for part in parts[1:]):
            return
        detail = f"{size} bytes > {p.MAX_MESSAGE_BYTES}"
        self._reject("control", "too_large", detail, size, now)
        self._reply(ident, p.Ack(request="?", ok=False, reason=f"too_large: {detail}"))

    def _serve_request(self, ident: bytes, parts: list[Any], now: float) -> None:
        """Answer one control request (``parts``: routing id, then the request's frames)."""
        body = [part.bytes for part in parts[1:]]
        self._see(ident, parts[-1], now)
        if len(body) != 1:
            self._reject("control", "malformed", f"{len(body)} frames", sum(len(b) for b in body), now)
            if not any(self._odd_estop("control", ident, b, "malformed: one frame per request", now) for b in body):
                self._reply(ident, p.Ack(request="?", ok=False, reason="malformed: one frame per request"))
            return
        if self._revoked(self._clients[ident].key):  # only its e-stop still counts
            if not self._odd_estop("control", ident, body[0], "revoked key", now):
                self._reject("control", "revoked", "a request from a revoked key", len(body[0]), now)
                self._reply(ident, p.Ack(request="?", ok=False, reason="revoked: this key is no longer authorised"))
            return
        try:
            req = p.decode(body[0], p.Request)
        except p.ProtocolError as exc:
            self._reject("control", exc.reason, exc.detail, len(body[0]), now)
            if not self._odd_estop("control", ident, body[0], exc.reason, now):
                self._reply(ident, p.Ack(request="?", ok=False, reason=f"{exc.reason}: {exc.detail}"[:500]))
            return
        self._handle(ident, req, self.clock())

    def _take_auth_news(self, auth: Any, now: float) -> None:
        """What the authenticator saw since the last period (rare): refused handshakes (counted as
        ``zap.<reason>``, recorded on ``/robot/rejected``) and a reloaded key folder (new roles; a
        revoked owner's session ends and the arm holds)."""
        while auth.pending:
            denial = auth.pending.popleft()
            reason = denial.reason.lower().replace(" ", "_")
            self.counters[f"zap.{reason}"] += 1
            detail = f"from {denial.address or '?'} with key {denial.fingerprint or '(none)'}"
            self._record(TOPIC_REJECTED, RejectedRecord(now, "zap", reason, detail, 0))
        self._denied_seen = auth.denied_total
        if auth.version == self._keys_version:
            return
        self._keys_version = auth.version
        self._reset_keys = {key: name for key, (name, role) in auth.roles.items() if role == "reset"}
        owner = self._clients.get(self._session_owner) if self._session_owner else None
        sup = self.supervisor
        assert sup is not None
        if owner is not None and owner.key and owner.key not in auth.keys and sup.session:
            log.warning("the key of session %s (%s) was revoked: the session ends", sup.session, fingerprint(owner.key))
            sup.disengage(sup.session, now)
            sup.reason = f"session ended: its key {fingerprint(owner.key)} was revoked"
            self._session_owner = None
            self._flush_events()

    def _revoked(self, key: str) -> bool:
        """Whether a connection's CURVE key was authorised when it connected but is not now."""
        auth = self.sockets.auth if self.sockets is not None else None
        return bool(key) and auth is not None and key not in auth.keys

    def _see(self, ident: bytes, frame: zmq.Frame, now: float) -> None:
        """Note who sent a control request: the connection's CURVE key and address (ZeroMQ's frame
        properties), which decide authority (never the request's own ``client`` field)."""
        client = self._client(ident, now)
        client.key = _frame_property(frame, "User-Id")
        client.address = _frame_property(frame, "Peer-Address")

    def _identity(self, ident: bytes) -> tuple[str, str]:
        """Who a control connection is: its CURVE key, or without CURVE the connection itself."""
        client = self._clients.get(ident)
        if client is not None and client.key:
            return ("key", client.key)
        return ("connection", ident.hex())

    def _odd_estop(self, channel: str, ident: bytes | None, data: bytes | memoryview, oddity: str, now: float) -> bool:
        """Latch the e-stop that a message rejected for ``oddity`` still asks for (an e-stop request
        latches whatever else is wrong with it; ``protocol.estop_request``); False when it asks for none.
        Counted as ``{channel}.estop_odd``; a control request is answered as a pressed e-stop."""
        reason = p.estop_request(data)
        if reason is None:
            return False
        self.counters[f"{channel}.estop_odd"] += 1
        client = self._client(ident, now) if ident is not None else None
        source = client.name if client is not None else "a command"
        self._latch_estop(f"{reason or 'no reason given'} (from {source}; odd request: {oddity})", now)
        if ident is not None and client is not None:
            self._answer(ident, now, client, "estop", True, f"latched (the request was odd: {oddity})")
        return True

    def _latch_estop(self, reason: str, now: float) -> None:
        assert self.supervisor is not None
        was = self.supervisor.state
        self.supervisor.estop(reason, now)
        self._latched(was)
        self._session_owner = None
        self._flush_events()

    def _latched(self, was: State) -> None:
        """After a request that may have latched the e-stop (the supervisor was in ``was``): on the
        latch, remember who owned the session then (only they, or a reset key, may clear it)."""
        assert self.supervisor is not None
        if was != State.ESTOP and self.supervisor.state == State.ESTOP:
            self._stop_owner = self._identity(self._session_owner) if self._session_owner else None

    def _may_reset(self, ident: bytes, client: _Client) -> tuple[bool, str]:
        """Whether ``client`` may clear the latched e-stop, and why (README, "E-stop and reset")."""
        owner = self._stop_owner
        if owner is not None and owner == self._identity(ident):
            return True, "reset by the session owner at the stop"
        if client.key and client.key in self._reset_keys:
            return True, f"reset by key {self._reset_keys[client.key]!r} (role reset)"
        if owner is None and not self._reset_keys and is_loopback(client.address):
            return True, "reset from the robot host (no session owner at the stop, no reset key configured)"
        if owner is None:
            return False, "refused: no session owner at the stop; only a key with the reset role may reset"
        return False, "refused: only the session owner at the time of the stop, or a key with the reset role, may reset"

    def _reply(self, ident: bytes, msg: p.Message) -> None:
        self._reply_bytes(ident, p.encode(msg))

    def _reply_bytes(self, ident: bytes, data: bytes) -> None:
        assert self.sockets is not None
        try:
            self.sockets.control.send_multipart([ident, data], zmq.NOBLOCK)
        except zmq.Again:
            self.counters["control.reply_dropped"] += 1

    def _client(self, ident: bytes, now: float) -> _Client:
        """The control peer ``ident`` (a new one is remembered; at most 64, the longest silent
        forgotten first), seen now."""
        client = self._clients.get(ident)
        if client is None:
            if len(self._clients) >= 64:  # bounded memory: forget the most demanding peer (never the owner)
                heaviest = max(
                    (k for k in self._clients if k != self._session_owner),
                    key=lambda k: self._intake.rates.rate(k, now),
                    default=None,
                )
                if heaviest is not None:
                    del self._clients[heaviest]
            client = self._clients[ident] = _Client(ident.hex()[:16])
        client.last_seen_s = now
        return client

    def _handle(self, ident: bytes, req: Any, now: float) -> None:
        sup = self.supervisor
        assert sup is not None
        client = self._client(ident, now)
        kind = p.type_name(req)
        if isinstance(req, p.Ping):
            t2 = now
            if req.prev_t1_console_s is not None and req.prev_t4_console_s is not None:
                prev = client.pongs.pop(req.prev_t1_console_s, None)
                if prev is not None:
                    try:
                        client.clock.add(req.prev_t1_console_s, prev[0], prev[1], req.prev_t4_console_s)
                    except ValueError as exc:
                        self.counters["control.bad_clock_sample"] += 1
                        log.warning("ignored clock sample from %s: %s", client.name, exc)
            t3 = self.clock()
            if len(client.pongs) > 32:
                client.pongs.pop(next(iter(client.pongs)))
            client.pongs[req.t1_console_s] = (t2, t3)
            self._reply(ident, p.Pong(t1_console_s=req.t1_console_s, t2_robot_s=t2, t3_robot_s=t3))
            return
        if isinstance(req, p.Hello):
            client.name = req.client
            if req.protocol != p.PROTOCOL_VERSION:
                self._answer(ident, now, client, "hello", False, f"protocol {req.protocol} not supported")
                return
            client.hello = True
            self._reply(
                ident,
                p.Welcome(
                    protocol=p.PROTOCOL_VERSION,
                    arms=[self.arm_id],
                    task=self.robot.task_name,
                    recording=str(self.record_path) if self.record_path else "",
                    forbidden_m=[(_vec(b.low_m), _vec(b.high_m)) for b in sup.config.forbidden],
                    guidance=self._guidance(),
                    workspace_m=(_vec(sup.config.workspace_low_m), _vec(sup.config.workspace_high_m)),
                ),
            )
            self._record(TOPIC_CONTROL, ControlRecord(now, client.name, "hello", True, ""))
            return
        if isinstance(req, p.EStop):  # honoured from anyone, hello or not
            self._latch_estop(f"{p.printable(req.reason)} (from {client.name})", now)
            self._answer(ident, now, client, "estop", True, "")
            return
        if not client.hello:
            self._answer(ident, now, client, kind, False, "say hello first")
            return
        if isinstance(req, p.Engage):
            if req.arm != self.arm_id:
                self._answer(
                    ident, now, client, "engage", False, f"no arm {req.arm!r}; this server has {self.arm_id!r}"
                )
                return
            if not client.clock.ready:
                self._answer(ident, now, client, "engage", False, "no clock sync yet: complete a ping exchange first")
                return
            if sup.session and ident == self._session_owner:
                # A repeated engage (its answer was lost on the way): the same session, not a refusal.
                self._answer(ident, now, client, "engage", True, "already engaged", sup.session)
                return
            verdict = sup.engage(req.client, now)
            if verdict.accepted:
                self._session_owner = ident
                client.name = req.client
            self._answer(ident, now, client, "engage", verdict.accepted, verdict.reason, verdict.session)
        elif isinstance(req, p.Disengage):
            owner = self._session_owner
            if req.session == sup.session and owner is not None and self._identity(ident) != self._identity(owner):
                self._answer(ident, now, client, "disengage", False, "the session belongs to another connection")
                return
            verdict = sup.disengage(req.session, now)
            if verdict.accepted:
                self._session_owner = None
            self._answer(ident, now, client, "disengage", verdict.accepted, verdict.reason)
        elif isinstance(req, p.Reset):
            if sup.state != State.ESTOP:
                self._answer(ident, now, client, "reset", True, "nothing to reset")
            else:
                allowed, why = self._may_reset(ident, client)
                if allowed:
                    sup.reset(now)
                    self._stop_owner = None
                    log.info("e-stop %s (%s)", why, client.name)
                self._answer(ident, now, client, "reset", allowed, why)
        elif isinstance(req, p.LoadTask):
            self._load_task(ident, now, client, req)
        elif isinstance(req, p.Offer):
            self._forward_offer(ident, now, client, req)
        self._flush_events()

    # ------------------------------------------------------------------ video signalling
    def _forward_offer(self, ident: bytes, now: float, client: _Client, req: p.Offer) -> None:
        """Hand a console's WebRTC offer to the media process; the answer is relayed when it comes
        (``_relay_answers``), never waited for here. A repeated offer (the console re-sends requests
        whose answer is late or lost) is not forwarded twice: it gets the same answer."""
        if self._signal is None:
            self._answer(ident, now, client, "offer", False, "no_video: this robot server serves no video")
            return
        digest = hashlib.blake2b(req.sdp.encode(), digest_size=16).digest()
        answered = self._offers_answered.get(ident)
        if answered is not None and answered[0] == digest:
            self._reply(ident, answered[1])
            return
        if any(pending[:2] == (ident, digest) for pending in self._offers_pending.values()):
            return
        self._signal_seq += 1
        try:
            self._signal.send(
                signalling.encode(signalling.SignalRequest(self._signal_seq, client.name, req.sdp)), zmq.NOBLOCK
            )
        except zmq.Again:
            self._answer(ident, now, client, "offer", False, "no_video: the media process is not answering")
            return
        self._offers_pending[self._signal_seq] = (ident, digest, now)
        self._record(TOPIC_CONTROL, ControlRecord(now, client.name, "offer", True, "forwarded to the media process"))

    def _relay_answers(self, now: float) -> None:
        assert self._signal is not None
        while True:
            try:
                data = self._signal.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                reply = signalling.decode_reply(data)
            except ValueError as exc:
                self.counters["video.bad_reply"] += 1
                log.warning("%s", exc)
                continue
            pending = self._offers_pending.pop(reply.request_id, None)
            if pending is None:
                continue
            ident, digest, _ = pending
            if reply.ok:
                msg: p.Message = p.Answer(sdp=reply.sdp)
            else:
                msg = p.Ack(request="offer", ok=False, reason=f"video: {reply.reason}"[:500])
            if len(self._offers_answered) >= 64 and ident not in self._offers_answered:
                self._offers_answered.pop(next(iter(self._offers_answered)))
            self._offers_answered[ident] = (digest, msg)
            self._reply(ident, msg)
        for rid, (ident, _, at) in list(self._offers_pending.items()):
            if now - at > self.config.video_answer_timeout_s:
                del self._offers_pending[rid]
                self.counters["video.offer_timeout"] += 1
                self._reply(ident, p.Ack(request="offer", ok=False, reason="no_video: media process silent"))

    def _load_task(self, ident: bytes, now: float, client: _Client, req: p.LoadTask) -> None:
        sup = self.supervisor
        assert sup is not None
        if sup.session:
            self._answer(ident, now, client, "load_task", False, f"arm is engaged by {sup.client}; disengage first")
            return
        if sup.state == State.ESTOP:
            self._answer(ident, now, client, "load_task", False, "e-stop latched; reset first")
            return
        try:
            self.robot.load_task(req.task, req.seed)
        except ValueError as exc:
            self._answer(ident, now, client, "load_task", False, str(exc))
            return
        sup.rebase()
        self._record_config(now)
        reason = f"loaded {req.task} with seed {req.seed}"
        self._answer(ident, now, client, "load_task", True, reason, guidance=self._guidance())

    def _guidance(self) -> p.Guidance | None:
        """The loaded task's guidance path for consoles' fixtures (simulated arms only)."""
        get = getattr(self.robot, "guidance_path_m", None)
        found = get() if get is not None else None
        if found is None:
            return None
        path, normal = found
        return p.Guidance(path_m=[_vec(x) for x in path[:1000]], normal=_vec(normal))

    def _answer(
        self,
        ident: bytes,
        now: float,
        client: _Client,
        request: str,
        ok: bool,
        reason: str,
        session: str = "",
        guidance: p.Guidance | None = None,
    ) -> None:
        if not ok:
            self.counters[f"control.refused.{request}"] += 1
        self._reply(ident, p.Ack(request=request, ok=ok, reason=reason[:500], session=session, guidance=guidance))
        self._record(TOPIC_CONTROL, ControlRecord(now, client.name, request, ok, reason, session))

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


def camera_message(cam: CameraInfo) -> p.Camera:
    """The endoscope camera as telemetry carries it."""
    return p.Camera(
        pose=p.Pose(cam.pos_m, cam.quat_xyzw),
        width=cam.width,
        height=cam.height,
        fx=cam.fx,
        fy=cam.fy,
        cx=cam.cx,
        cy=cam.cy,
        near_m=cam.near_m,
        far_m=cam.far_m,
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


def _frame_property(frame: zmq.Frame, name: str) -> str:
    """A received frame's ZeroMQ property (``User-Id``: the CURVE key, Z85; ``Peer-Address``), ""
    when the connection has none (no CURVE, not TCP)."""
    try:
        return str(frame.get(name))
    except zmq.ZMQError:
        return ""


def _vec(v: Any) -> tuple[float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]))


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

"""The console's connection to the robot (``RobotLink``): requests with timeouts and retries, clock
pings, commands and the newest telemetry, optionally through the link emulator."""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections import deque
from typing import Any

import zmq

from telesurg.teleop.console.config import LINK_CHANNELS, ConsoleConfig
from telesurg.teleop.netem.model import DelayLine, LinkModel
from telesurg.teleop.netem.spec import LinkSpec
from telesurg.teleop.wire import protocol as p
from telesurg.teleop.wire.channels import ClientSockets
from telesurg.teleop.wire.clock import ClockEstimator
from telesurg.teleop.wire.timing import SPIN_S, sleep_until


class ConsoleError(RuntimeError):
    """The robot refused or did not answer; the message says which request and why."""


class RobotLink:
    """The console's side of the three channels: requests with timeouts and retries, clock pings,
    commands and the newest telemetry — optionally through the link emulator.

    With ``links`` (one ``LinkSpec`` per channel and direction, see ``telesurg.teleop.netem.spec``) every
    message the console sends is held in a delay line until the emulated network delivers it, and
    every message the robot sends is held after arrival until then; message-level links may drop,
    reorder and duplicate, TCP-faithful links only delay (in order). The robot side is untouched,
    so this is the same as putting the network between the two processes. Timestamps in messages
    use ``clock`` (the console's clock, which a harness may make jump); scheduling and the emulated
    network use the true monotonic clock.
    """

    CHANNELS = LINK_CHANNELS

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

    def _wait_io(self, timeout_s: float, wake_fd: int | None = None) -> bool:
        """Block up to ``timeout_s`` for an arrival or the next emulated delivery; True when
        ``wake_fd`` (an eventfd) was signalled meanwhile (it is drained)."""
        due = self._next_due()
        if due is not None:
            timeout_s = min(timeout_s, max(0.0, due - self.true_clock()))
        if timeout_s <= 0:
            return False
        if timeout_s >= 0.001:
            fds: list[Any] = [self.sockets.telemetry, self.sockets.control]
            if wake_fd is not None and wake_fd < 0:
                wake_fd = None  # closed: nothing can signal it
            if wake_fd is not None:
                fds.append(wake_fd)
            readable, _, _ = zmq.select(fds, [], [], timeout_s)
            return wake_fd is not None and wake_fd in readable and _drain(wake_fd)
        time.sleep(min(timeout_s, 0.0001))
        return wake_fd is not None and _drain(wake_fd)

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

    def wait_until(self, deadline_s: float, wake_fd: int | None = None) -> bool:
        """Sleep to ``deadline_s`` (true clock), serving the link meanwhile: a Pong is time-stamped
        on delivery, not at the next tick (an unbiased clock sync), and emulated messages leave on
        time. ``wake_fd``: an eventfd (non-blocking) that ends the wait early when signalled (new
        input that should not wait for the next tick); returns True when it did."""
        while True:
            self.poll_control()
            remaining = deadline_s - self.true_clock() - SPIN_S
            if remaining <= 0:
                break
            if self._wait_io(remaining, wake_fd):
                self._release()
                return True
        sleep_until(deadline_s, self.true_clock)
        self._release()
        return False

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

    def acked(self, request: str) -> bool:
        """Whether a positive ``Ack`` to ``request`` is among the responses not yet taken."""
        return any(isinstance(r, p.Ack) and r.request == request and r.ok for r in self._responses)

    def forget_sync(self) -> None:
        """Start the clock sync afresh (a new robot process, or a dropped session)."""
        self.estimator.reset()
        self._prev_exchange = None

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


def _drain(fd: int) -> bool:
    """Read a non-blocking eventfd: whether it had been signalled."""
    try:
        os.eventfd_read(fd)
    except (OSError, ValueError):  # not signalled (BlockingIOError), or closed
        return False
    return True

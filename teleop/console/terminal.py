"""The terminal front end of the console: the status line (HUD: state, force, command latency,
clock sync, task) and the interactive loop for keyboard, gamepad and 3D mouse sessions and trace
replays. It drives ``telesurg.teleop.console.core.Console`` through ``tick`` and its requests only."""

from __future__ import annotations

import contextlib
import math
import sys
from typing import TYPE_CHECKING

from telesurg.teleop.console.episodes import EpisodeResult, print_summary, wait_for_task
from telesurg.teleop.console.robot_link import ConsoleError
from telesurg.teleop.console.scripted import TraceReplay
from telesurg.teleop.wire import protocol as p
from telesurg.teleop.wire.timing import FixedRate

if TYPE_CHECKING:
    from telesurg.teleop.console.config import ConsoleConfig
    from telesurg.teleop.console.core import Console


class Hud:
    """The status line: every ``hud_every_s`` on a terminal (rewritten in place), every 2 s as a
    ``console:`` line when headless."""

    def __init__(self, config: ConsoleConfig) -> None:
        self.config = config
        self._last = -math.inf

    def show(self, console: Console, now: float, tel: p.Telemetry | None) -> None:
        if now - self._last < (self.config.hud_every_s if not self.config.headless else 2.0):
            return
        self._last = now
        if tel is None:
            line = "waiting for telemetry…"
        else:
            lat = console.latencies[-1] * 1e3 if console.latencies else float("nan")
            task = tel.task
            extra = f" | {task.name} {'✓' if task.success else '…'} {task.episode_s:5.1f} s" if task else ""
            line = (
                f"{tel.state:7s} {tel.reason[:40]:40s} | force {tel.force_mag_N:5.2f} N | cmd latency {lat:6.2f} ms"
                f" | offset {tel.clock_offset_s * 1e3:+7.3f} ms rtt {tel.clock_rtt_s * 1e3:5.2f} ms"
                f"{'' if console.link.link_ok else ' | NO TELEMETRY'}{extra}"
            )
        if self.config.headless:
            print(f"console: {line}", flush=True)
        else:
            print(f"\r{line}\033[K", end="", file=sys.stderr, flush=True)


def run_interactive(console: Console) -> int:
    """The interactive session (keyboard, gamepad, 3D mouse) or a trace replay, until the surgeon
    quits; the exit code (a trace replay that fails its task: 1)."""
    cfg = console.config
    period = 1.0 / cfg.rate_hz
    auto_engage = isinstance(console.device, TraceReplay)
    if auto_engage:
        # A trace is replayed open loop from the task's start: load the first task (simulation).
        if cfg.tasks:
            try:
                console.load_task(cfg.tasks[0], cfg.seed)
                wait_for_task(console, cfg.tasks[0], cfg.seed)
            except ConsoleError as exc:
                print(f"console: replaying from the current pose: {exc}", file=sys.stderr)
        console.engage()
    start = console.link.true_clock()
    rate = FixedRate(period, console.link.true_clock, start)
    console.reset_figures()
    try:
        while True:
            now = console.link.true_clock()
            hand = console.tick(now)
            if hand.quit:
                break
            if hand.estop:
                console.estop("e-stop pressed on the console")
            if hand.reset:
                console.reset()
            if hand.engage:
                if console.session:
                    console.disengage()
                else:
                    try:
                        console.engage()
                    except ConsoleError as exc:
                        print(f"\nconsole: {exc}", file=sys.stderr)
            rate.advance()
            console.link.wait_until(rate.deadline_s)
    except KeyboardInterrupt:
        pass
    finally:
        if console.session:
            with contextlib.suppress(ConsoleError):
                console.disengage()
    tel = console.link.telemetry
    console.results.append(
        EpisodeResult(
            task=tel.task.name if tel and tel.task else "",
            seed=tel.task.seed if tel and tel.task else 0,
            success=bool(tel and tel.task and tel.task.success),
            time_s=console.link.true_clock() - start,
            max_force_N=console.max_force_N,
            latencies_s=list(console.latencies),
            commands_sent=console.seq,
            reason="session ended",
        )
    )
    if auto_engage:  # a trace replay is judged like a scripted episode: its exit status says
        result = console.results[-1]
        print(
            f"console: trace replay on {result.task or '?'} seed {result.seed}: "
            f"{'success' if result.success else 'FAILED'} in {result.time_s:.2f} s, "
            f"max force {result.max_force_N:.2f} N",
            flush=True,
        )
    print_summary(console)
    return 1 if auto_engage and not console.results[-1].success else 0

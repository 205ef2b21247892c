"""Scripted runs of the console and their results: episodes of the scripted surgeon (load the task,
engage, let it work until the task succeeds, the e-stop latches or the time is up), the summary
table and JSON. Front-end code: it drives ``telesurg.teleop.console.core.Console`` through its public
``tick`` and requests, as the terminal and (later) the browser do."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from telesurg.teleop.console.robot_link import ConsoleError
from telesurg.teleop.console.scripted import ScriptedSurgeon
from telesurg.teleop.wire.timing import FixedRate

if TYPE_CHECKING:
    from telesurg.teleop.console.core import Console


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


def run_scripted(console: Console) -> int:
    """Run the scripted episodes of ``config.tasks`` (the scripted surgeon drives); the exit code."""
    assert isinstance(console.device, ScriptedSurgeon)
    cfg = console.config
    for i, task in enumerate(cfg.tasks):
        seed = cfg.seed + i
        if cfg.load_task:
            console.load_task(task, seed)
            wait_for_task(console, task, seed)
        console.device.start_task(task)
        console.link.sync(2)
        console.engage()
        result = episode(console, task, seed)
        console.results.append(result)
        try:
            console.disengage()
        except ConsoleError as exc:
            result.reason += f"; disengage failed: {exc}"
        if console.estop_pressed:
            break
        print(
            f"console: {task} seed {seed}: {'success' if result.success else 'FAILED'} in {result.time_s:.2f} s, "
            f"max force {result.max_force_N:.2f} N ({result.reason})",
            flush=True,
        )
    print_summary(console)
    return 0 if all(r.success for r in console.results) else 1


def wait_for_task(console: Console, task: str, seed: int) -> None:
    """Wait until the telemetry shows ``task`` (seed ``seed``) freshly loaded."""
    deadline = console.link.true_clock() + console.config.request_timeout_s
    while console.link.true_clock() < deadline:
        tel = console.link.poll_telemetry()
        task_state = tel.task if tel is not None else None
        if task_state is not None and (task_state.name, task_state.seed) == (task, seed) and task_state.episode_s < 1:
            return
        console.link.wait_until(console.link.true_clock() + 0.02)
    raise ConsoleError(f"no telemetry of task {task} (seed {seed}) after loading it")


def episode(console: Console, task: str, seed: int) -> EpisodeResult:
    """Run the scripted surgeon until the task succeeds, the e-stop latches or the time is up.
    When telemetry stops, the console stops commanding motion; when it returns and the session
    is gone (the robot restarted, or the session timed out), it handshakes again and goes on."""
    cfg = console.config
    link = console.link
    period = 1.0 / cfg.rate_hz
    console.reset_figures()
    start = link.true_clock()
    rate = FixedRate(period, link.true_clock, start)
    sent_before = console.seq
    success_since: float | None = None
    reason = "timeout"
    success = False
    lost = False
    restarts = link.robot_restarts
    while True:
        now = link.true_clock()
        console.tick(now)
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
            if tel is not None and (tel.state == "IDLE" or restarted) and not console.estop_pressed:
                print("console: the robot restarted or dropped the session: handshaking again", flush=True)
                try:
                    console.rehandshake()
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
        max_force_N=console.max_force_N,
        latencies_s=list(console.latencies),
        commands_sent=console.seq - sent_before,
        reason=reason,
    )


def summary(console: Console) -> dict[str, Any]:
    """The session's figures: per episode, success rate, force, command latency, video, faults."""
    all_lat = [x for r in console.results for x in r.latencies_s]
    lat = np.asarray(all_lat) if all_lat else np.full(1, np.nan)
    return {
        "episodes": [r.row() for r in console.results],
        "success_rate": float(np.mean([r.success for r in console.results])) if console.results else 0.0,
        "max_force_N": max((r.max_force_N for r in console.results), default=0.0),
        "latency_p50_ms": float(np.percentile(lat, 50) * 1e3),
        "latency_p99_ms": float(np.percentile(lat, 99) * 1e3),
        "latency_samples": len(all_lat),
        "recording": console.welcome.recording if console.welcome else "",
        "rehandshakes": console.rehandshakes,
        "estop_pressed": console.estop_pressed,
        "video": {**console.video.stats(), "holds": console.video_holds} if console.video is not None else None,
        "clock_jump": console.clock_jump(),
    }


def print_summary(console: Console) -> None:
    """Print the summary table (and write ``summary_json``)."""
    s = summary(console)
    print("\nconsole summary", flush=True)
    print(f"{'task':10s} {'seed':>4s} {'success':>8s} {'time s':>7s} {'max F N':>8s} {'p50 ms':>7s} {'p99 ms':>7s}")
    for row in s["episodes"]:
        print(
            f"{row['task']:10s} {row['seed']:4d} {('yes' if row['success'] else 'NO'):>8s} {row['time_s']:7.2f} "
            f"{row['max_force_N']:8.2f} {row['latency_p50_ms']:7.2f} {row['latency_p99_ms']:7.2f}"
        )
    if s["episodes"]:
        print(
            f"success {s['success_rate'] * 100:.0f}% | max contact force {s['max_force_N']:.2f} N | command latency "
            f"p50 {s['latency_p50_ms']:.2f} ms, p99 {s['latency_p99_ms']:.2f} ms ({s['latency_samples']} samples)"
        )
    else:
        print("no scripted episodes: the session was driven by hand")
    v = s["video"]
    if v is not None:
        lat = v.get("sampled_to_displayed_ms", {})
        ready = v.get("ready_to_displayed_ms", {})
        print(
            f"video: {v['frames']} frames, {v.get('fps', 0.0):.1f} fps, state sampled → displayed p50 "
            f"{lat.get('p50', float('nan')):.1f} ms p95 {lat.get('p95', float('nan')):.1f} ms, ready → displayed "
            f"p50 {ready.get('p50', float('nan')):.1f} ms; held for stale video {v['holds']} time(s)"
            + (f"; saved to {v['saved_video']}" if v.get("saved_video") else "")
        )
    print(f"recording: {s['recording'] or '(the robot is not recording)'}", flush=True)
    if console.config.summary_json:
        path = Path(console.config.summary_json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(s, indent=2) + "\n")

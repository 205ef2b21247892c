"""The soak (`telesurg soak`): the whole stack for an hour under a bad network, judged window by window.

    telesurg soak --minutes 60                      # the target run: 12 windows of 5 min
    telesurg soak --minutes 3 --window-minutes 1    # a smoke run
    telesurg soak --minutes 60 --strict             # the timing targets decide the exit status too

What runs, each a process of its own (``telesurg.teleop.harness.process.CliProcess``, as in the safety harness):

- the robot (`telesurg robot`: recording every period, real-time priority where permitted, the state
  feed and video signalling on), its control loop on the last CPU (``cpu`` in ``[robot]``); with
  three CPUs or more this process and every other child run on the others (``--pinning``: see
  ``PINNINGS`` for why a two-core machine shares the robot's CPU);
- the host probe (``telesurg.teleop.harness.runner.HostProbe``) pinned beside the robot one real-time priority
  above it, so a long control period can be told apart as the host's (no probe when nothing is pinned);
- the media process (`telesurg video`: renderer + WebRTC) with its web viewer on a token;
- a browser on the web viewer (Debian's headless Chromium, ``telesurg.teleop.harness.browser``) for the whole run;
- the scripted surgeon console (`telesurg console`) doing every task (Reach, Palpate, Retract,
  Transfer, Trace) with every correction stage on (the safety harness's all-stages cell: scaling,
  tremor, learned prediction, blending, fixtures, the local twin, the surgeon closing its loop on the
  twin) and watching the video, over an emulated ``delay=200ms jitter=20ms loss=1%`` link on every
  channel (``rto=410ms`` on the TCP channels, as the harness's cells: fast retransmit after about a
  round trip) and on the video. A console runs its task list once; a new console process starts
  for every cycle until the time is up (a surgeon console restarting is part of a long session).

What it reports, per window (``--window-minutes``, default 5), each written when it completes
(``windows.jsonl``, one JSON object a line, and a row of ``windows.md``) and printed as a progress
line — an interrupted soak keeps every window so far:

- from the robot's recording, read as it grows (``telesurg.teleop.harness.recording_windows``): command
  latency p50/p99 (true age of every applied command: robot receive − console send, one host
  clock), control periods (share within ±20% of nominal, worst, count over 5×), stalls (work or
  wait) and whether the host probe saw them too, and the safety invariants judged on the window's
  slice of the recording (so every record is judged once, in its window);
- the video as the console saw it (frames, fps, state-sampled → displayed latency p50/p95) from the
  summaries of the consoles that finished in the window, and the browser's decoded frames;
- resident memory (``VmRSS``) and open file descriptors of every telesurg process: the robot, its
  recorder process, the media process, its renderer, the console (and their multiprocessing
  resource trackers); the browser's memory (all Chromium processes) is reported, not judged;
- the recording's size, the tasks done and the console cycles.

At the end: the recording is complete (no control period missing; every long gap has its stall
record) and the upstream ``mcap`` reader reads it whole, with its summary, after the robot stopped.
Targets (``summary.json``, and a table): 0 invariant breaks; RSS growth under 5% per process from
minute 10 (for a shorter run: from the end of the first window) to the end of the last window;
command latency p99 and video latency p50 of the last window within 10% of the first; the recording
complete and readable. Exit status 0 when the invariants held and the recording passed (the timing
targets too with ``--strict``), 1 otherwise, 130 when interrupted (SIGINT/SIGTERM) with nothing failed.

~700 lines with this description: one orchestrator whose start, loop, windows and finish share the
run's state; its text and targets are ``soak_report``, its windows over the recording
``recording_windows``, its processes ``stack``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import secrets
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telesurg.teleop.harness import procstats
from telesurg.teleop.harness.browser import CHROMIUM, BrowserViewer
from telesurg.teleop.harness.cells import ALL_STAGES, Cell
from telesurg.teleop.harness.hostprobe import read_gaps
from telesurg.teleop.harness.process import CliProcess
from telesurg.teleop.harness.recording_windows import RecordingWindows
from telesurg.teleop.harness.runner import FORBIDDEN_M, HostProbe
from telesurg.teleop.harness.soak_report import (
    TABLE_HEADER,
    cycle_line,
    final_table,
    targets,
    window_line,
    window_row,
)
from telesurg.teleop.harness.stack import endpoint_table, start
from telesurg.teleop.netem.spec import LinkSpec
from telesurg.teleop.robot.reader import RecordingTail
from telesurg.teleop.settings import write_toml
from telesurg.teleop.wire.channels import free_loopback_ports

TASKS = ("Reach", "Palpate", "Retract", "Transfer", "Trace")
LINK = "delay=200ms jitter=20ms loss=1% rto=410ms"
VIDEO_LINK = "delay=200ms jitter=20ms loss=1%"
#: How often the soak's loop reads the recording and looks after its processes (s).
LOOP_S = 0.25
BROWSER_POLL_S = 2.0
#: A console that ends sooner than this after its start waits before the next (s): no restart storm.
QUICK_EXIT_S = 10.0
RESTART_BACKOFF_S = 5.0
#: How long the last window may wait for its records after the time is up before the soak gives up (s).
RECORDING_LAG_LIMIT_S = 60.0
#: Where the processes run. ``isolate``: the robot's control loop (and the host probe) on the last
#: CPU, this process and every other child on the others; ``robot``: the control loop and the probe
#: on the last CPU, everything else on any (the loop's real-time priority puts it first there);
#: ``none``: no affinity at all; ``auto``: ``isolate`` from ``ISOLATE_MIN_CPUS`` CPUs, ``robot`` with
#: fewer (two), ``none`` with one. The stack besides the robot needs about one and a half cores (the
#: console with every stage on and its video ~35%, renderer ~25%, media process ~30%, browser ~20%,
#: the robot's own threads and recorder): isolated on a two-core machine it gets one, the renderer
#: falls to a few frames a second, and the console holds for stale video all the time.
PINNINGS = ("auto", "isolate", "robot", "none")
ISOLATE_MIN_CPUS = 3
#: ``console: video too old (…)``: the console held for stale video.
VIDEO_HOLD_LINE = "console: video too old"
#: ``console: Reach seed 3: success in 4.20 s, …`` (one line per episode, printed when it ends).
EPISODE_LINE = re.compile(r"^console: (\w+) seed (\d+): (success|FAILED) in ([\d.]+) s")


def _print(line: str) -> None:
    print(line, flush=True)


@dataclass(frozen=True)
class SoakConfig:
    """A soak into ``out``: ``minutes`` long in windows of ``window_minutes``; ``link`` on every
    channel of the console and ``video_link`` on its video (``telesurg.teleop.netem.spec``; a cycle's seed is
    added to both); ``sample_every_s``: how often process memory is read; ``record_flush_s``: the
    recorder's flush interval (how far the recording lags behind); ``strict``: the timing targets
    decide the exit status too; ``max_rss_growth``/``max_drift``: the targets (fractions);
    ``rss_from_minute``: where RSS growth is measured from when the run is long enough;
    ``pinning`` (see ``PINNINGS``): where the processes run."""

    out: Path
    minutes: float = 60.0
    window_minutes: float = 5.0
    link: str = LINK
    video_link: str = VIDEO_LINK
    tasks: tuple[str, ...] = TASKS
    chromium: str = CHROMIUM
    strict: bool = False
    sample_every_s: float = 10.0
    record_flush_s: float = 0.2
    max_rss_growth: float = 0.05
    max_drift: float = 0.10
    rss_from_minute: float = 10.0
    pinning: str = "auto"

    def __post_init__(self) -> None:
        if self.pinning not in PINNINGS:
            raise ValueError(f"pinning must be one of {list(PINNINGS)}, got {self.pinning!r}")
        if not self.minutes > 0 or not self.window_minutes > 0:
            raise ValueError("minutes and window_minutes must be positive")
        if self.window_minutes > self.minutes:
            raise ValueError(f"window_minutes ({self.window_minutes:g}) is longer than the soak ({self.minutes:g})")
        unknown = sorted(set(self.tasks) - set(TASKS))
        if unknown or not self.tasks:
            raise ValueError(f"tasks must be among {list(TASKS)}, got {list(self.tasks)}")
        for text in (self.link, self.video_link):
            if "seed=" in text:
                raise ValueError(f"{text!r}: leave the seed out (each console cycle gets its own)")
            LinkSpec.parse(text)

    def with_seed(self, text: str, seed: int) -> str:
        return str(dataclasses.replace(LinkSpec.parse(text), seed=seed))


class Soak:
    """One soak run (see the module docstring); ``run()`` returns the exit status."""

    def __init__(self, config: SoakConfig, log: Callable[[str], None] = _print) -> None:
        self.config = config
        self.out = config.out
        self.log = log
        self.stopping = False
        self.failure = ""
        self.robot: CliProcess | None = None
        self.video: CliProcess | None = None
        self.console: CliProcess | None = None
        self.probe: HostProbe | None = None
        self.browser: BrowserViewer | None = None
        self.windows: RecordingWindows | None = None
        self.tail: RecordingTail | None = None
        self.robot_cpu: int | None = None
        self.pinning = "none"
        self.record = self.out / "robot.mcap"
        self.t0 = 0.0
        self.t_end = 0.0
        self.cycle = 0
        self.cycles: list[dict[str, Any]] = []
        self.window_records: list[dict[str, Any]] = []
        self._console_started_s = 0.0
        self._console_seen = 0
        self._next_console_s = 0.0
        self._episodes: list[dict[str, Any]] = []
        #: When the console held for stale video (monotonic s).
        self._holds: list[float] = []
        #: Process samples of the current window (role → (monotonic s, sample)), and the last one of
        #: each role in the previous window (CPU use is measured from it).
        self._samples: dict[str, list[tuple[float, procstats.ProcessSample]]] = {}
        self._carry: dict[str, tuple[float, procstats.ProcessSample]] = {}
        self._browser_processes = 0
        self._browser_state: dict[str, Any] = {}
        self._browser_frames_before = 0
        self._window_started_s = 0.0
        self._endpoints: dict[str, int] = {}
        self._http_url = ""

    # ------------------------------------------------------------------ the run
    def run(self) -> int:
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, self._on_signal)
        own_cpus = os.sched_getaffinity(0)
        try:
            try:
                started = self._start()
                if started:
                    self._loop()
            finally:
                self._stop_all()
            if not started:
                self.log("soak: interrupted before it began")
                return 130
            return self._finish()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.sched_setaffinity(0, own_cpus)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if not self.stopping:
            self.log(f"soak: {signal.Signals(signum).name}: stopping (the windows so far are written)")
        self.stopping = True

    def _start(self) -> bool:
        cfg = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "consoles").mkdir(exist_ok=True)
        cpus = os.sched_getaffinity(0)
        pinning = cfg.pinning
        if pinning == "auto":
            pinning = "isolate" if len(cpus) >= ISOLATE_MIN_CPUS else "robot" if len(cpus) >= 2 else "none"
        self.pinning = pinning if len(cpus) >= 2 else "none"
        if self.pinning != "none":
            self.robot_cpu = max(cpus)
        if self.pinning == "isolate":
            # The robot's control loop on a CPU of its own; this process and every child it starts
            # (media process, browser, consoles) inherit the others.
            os.sched_setaffinity(0, cpus - {self.robot_cpu})
        ports = free_loopback_ports(6)
        self._endpoints = endpoint_table(ports)
        state_port, signal_port, http_port = ports[3:6]
        self.log(
            f"soak: {cfg.minutes:g} min in windows of {cfg.window_minutes:g} min; output in {self.out}; "
            f"pinning {self.pinning} (robot loop on CPU {self.robot_cpu if self.robot_cpu is not None else 'any'}, "
            f"{len(cpus)} CPUs)"
        )
        self.log("soak: starting the robot (it builds every task's scene first)")
        self.robot = self._start_robot(state_port, signal_port)
        if self.stopping:
            return False
        if self.robot_cpu is not None:
            self.probe = HostProbe(self.out / "probe.jsonl", self.robot_cpu)
        token = secrets.token_urlsafe(24)
        self.log(f"soak: robot up; starting {'the host probe and ' if self.probe else ''}the media process")
        self.video = self._start_video(state_port, signal_port, http_port, token)
        self.log("soak: media process up; opening the web viewer in the browser")
        if self.stopping:
            return False
        self._http_url = f"http://127.0.0.1:{http_port}/"
        self.browser = BrowserViewer(f"{self._http_url}?token={token}", cfg.chromium)
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline and not self.stopping:
            self._browser_state = self.browser.poll()
            if self._browser_state["frames_decoded"] > 0:
                break
            time.sleep(0.25)
        self.log(
            f"soak: browser on the viewer: {self._browser_state.get('frames_decoded', 0)} frames decoded "
            f"({self._browser_state.get('connection')})"
        )
        if self.stopping:
            return False
        self.t0 = time.monotonic()
        self.t_end = self.t0 + cfg.minutes * 60.0
        self._window_started_s = self.t0
        self.windows = RecordingWindows(self.out / "windows", self.t0, cfg.window_minutes * 60.0, self.t_end)
        self.tail = RecordingTail(self.record)
        (self.out / "windows.md").write_text(TABLE_HEADER)
        (self.out / "windows.jsonl").write_text("")
        self._write_stack()
        self._start_console(self.t0)
        return True

    def _start_robot(self, state_port: int, signal_port: int) -> CliProcess:
        return start(
            "robot",
            self.out,
            {
                "": {
                    "record": str(self.record),
                    "record_flush_s": self.config.record_flush_s,
                    "status_every_s": 10.0,
                    "realtime": True,
                    "state_port": state_port,
                    "video_signal_port": signal_port,
                    **({"cpu": self.robot_cpu} if self.robot_cpu is not None else {}),
                },
                "endpoints": self._endpoints,
                "arm": {"task": self.config.tasks[0], "forbidden_m": FORBIDDEN_M},
            },
            name="robot",
            timeout_s=90,
            what="the robot",
        )

    def _start_video(self, state_port: int, signal_port: int, http_port: int, token: str) -> CliProcess:
        return start(
            "video",
            self.out,
            {
                "": {"signal_port": signal_port, "http_port": http_port, "token": token, "token_required": True},
                "renderer": {"state_url": f"tcp://127.0.0.1:{state_port}"},
            },
            name="video",
            timeout_s=120,
            what="the media process",
        )

    def _start_console(self, now: float) -> None:
        cfg = self.config
        self.cycle += 1
        spec = LinkSpec.parse(cfg.link)
        delay_s = spec.delay_s
        timeout_s = max(Cell(f"soak/{t}", t, cfg.link, delay_s=delay_s).timeout_s for t in cfg.tasks)
        summary = self.out / "consoles" / f"console-{self.cycle:03d}.json"
        console: dict[str, Any] = {
            "client": f"soak-{self.cycle}",
            "tasks": list(cfg.tasks),
            "seed": (self.cycle - 1) * len(cfg.tasks),
            "episode_timeout_s": timeout_s,
            "request_timeout_s": 3.0 + 4.0 * delay_s,
            "link_timeout_s": 1.0 + 2.0 * delay_s,
            "link": cfg.with_seed(cfg.link, self.cycle),
            "load_task": True,
            "summary_json": str(summary),
            "engage_wait_s": 6.0,
        }
        tables: dict[str, dict[str, Any]] = {
            "": console,
            "endpoints": self._endpoints,
            "video": {"enabled": True, "link": cfg.with_seed(cfg.video_link, self.cycle)},
        }
        correction = dict(ALL_STAGES)
        tables["correction"] = {k: v for k, v in correction.items() if not isinstance(v, dict)}
        for key, value in correction.items():
            if isinstance(value, dict):
                tables[f"correction.{key}"] = value
        tables["surgeon"] = {"feedback": "twin"}
        path = write_toml(self.out / "consoles" / f"console-{self.cycle:03d}.toml", "console", tables)
        self.console = CliProcess(["console", "--config", str(path)], self.out / "console.log")
        self._console_started_s = now
        self._console_seen = 0

    def _write_stack(self) -> None:
        assert self.robot is not None and self.video is not None
        stack = {
            "robot_pid": self.robot.proc.pid,
            "video_pid": self.video.proc.pid,
            "probe_pid": self.probe.proc.pid if self.probe is not None else None,
            "soak_pid": os.getpid(),
            "pinning": self.pinning,
            "robot_cpu": self.robot_cpu,
            "others_on_cpus": sorted(os.sched_getaffinity(0)),
            "record": str(self.record),
            "viewer": self._http_url,
            "endpoints": self._endpoints,
        }
        (self.out / "stack.json").write_text(json.dumps(stack, indent=1) + "\n")

    def _loop(self) -> None:
        assert self.windows is not None
        next_sample = next_browser = 0.0
        while not self.stopping:
            now = time.monotonic()
            self._read_recording()
            self._serve_console(now)
            if now >= next_browser:
                self._poll_browser()
                next_browser = now + BROWSER_POLL_S
            if now >= next_sample:
                self._sample()
                next_sample = now + self.config.sample_every_s
            while self.windows.ready and self.windows.current.index <= self.windows.windows:
                self._close_window(partial=False)
            if self.windows.current.index > self.windows.windows:
                return  # every window is in
            for name, proc in (("robot", self.robot), ("media process", self.video)):
                if proc is not None and proc.proc.poll() is not None and not self.stopping:
                    self.failure = f"the {name} exited (code {proc.proc.returncode}) during the soak"
            if now > self.t_end + RECORDING_LAG_LIMIT_S:
                self.failure = f"the recording lagged more than {RECORDING_LAG_LIMIT_S:g} s behind"
            if self.failure:
                self.log(f"soak: FAILED: {self.failure}")
                return
            time.sleep(LOOP_S)

    def _read_recording(self) -> None:
        assert self.tail is not None and self.windows is not None
        self.windows.feed(self.tail.read_new())

    # ------------------------------------------------------------------ the console cycles
    def _serve_console(self, now: float) -> None:
        c = self.console
        if c is None:
            if not self.stopping and now >= self._next_console_s and now < self.t_end:
                self._start_console(now)
            return
        self._read_console_lines(c, now)
        if c.proc.poll() is None:
            return
        self._end_cycle(c.stop(5), now, cut_short=False)
        self.console = None
        if now - self._console_started_s < QUICK_EXIT_S:
            self._next_console_s = now + RESTART_BACKOFF_S
        if not self.stopping and now >= self._next_console_s and now < self.t_end:
            self._start_console(now)

    def _read_console_lines(self, c: CliProcess, now: float) -> None:
        lines = c.lines[self._console_seen :]
        self._console_seen += len(lines)
        for line in lines:
            if line.startswith(VIDEO_HOLD_LINE):
                self._holds.append(now)
            m = EPISODE_LINE.match(line)
            if m:
                self._episodes.append(
                    {"at_s": now, "cycle": self.cycle, "task": m[1], "seed": int(m[2]), "success": m[3] == "success"}
                )

    def _end_cycle(self, code: int | None, now: float, cut_short: bool) -> None:
        path = self.out / "consoles" / f"console-{self.cycle:03d}.json"
        summary: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            summary = json.loads(path.read_text())
        cycle = {
            "cycle": self.cycle,
            "started_min": (self._console_started_s - self.t0) / 60.0,
            "ended_min": (now - self.t0) / 60.0,
            "at_s": now,
            "exit": code,
            "cut_short": cut_short,
            "episodes": summary.get("episodes", []),
            "video": summary.get("video"),
            "latency_p99_ms": summary.get("latency_p99_ms"),
        }
        if not summary and self.console is not None:
            cycle["last_lines"] = self.console.lines[-5:]
        self.cycles.append(cycle)
        self.log(cycle_line(cycle))

    # ------------------------------------------------------------------ sampling
    def _processes(self) -> dict[str, int]:
        """Every telesurg process now: role → pid (children named by what they run)."""
        roles: dict[str, int] = {}
        for role, proc in (("robot", self.robot), ("video", self.video), ("console", self.console)):
            if proc is None or proc.proc.poll() is not None:
                continue
            roles[role] = proc.proc.pid
            for kid in procstats.descendants(proc.proc.pid):
                command = procstats.cmdline(kid)
                if "resource_tracker" in command:
                    name = "resource_tracker"
                elif "spawn_main" in command:
                    name = {"robot": "recorder", "video": "renderer"}.get(role, "child")
                else:
                    name = "child"
                key, n = f"{role}/{name}", 2
                while key in roles:
                    key, n = f"{role}/{name}-{n}", n + 1
                roles[key] = kid
        return roles

    def _sample(self) -> None:
        now = time.monotonic()
        for role, pid in self._processes().items():
            s = procstats.sample(pid)
            if s is not None:
                self._samples.setdefault(role, []).append((now, s))
        if self.browser is not None:
            samples = [s for pid in self.browser.pids() if (s := procstats.sample(pid)) is not None]
            if samples:  # all of Chromium's processes as one (pid 0)
                rss, cpu = sum(s.rss_bytes for s in samples), sum(s.cpu_s for s in samples)
                self._samples.setdefault("browser", []).append((now, procstats.ProcessSample(0, rss, 0, cpu)))
                self._browser_processes = len(samples)

    def _poll_browser(self) -> None:
        if self.browser is not None:
            self._browser_state = self.browser.poll()

    # ------------------------------------------------------------------ windows
    def _close_window(self, partial: bool) -> None:
        assert self.windows is not None
        w = self.windows.current
        end_s = min(w.end_s, time.monotonic())
        self._sample()
        self._poll_browser()
        gaps, _ = read_gaps(self.out / "probe.jsonl")
        judging = time.monotonic()
        record = self.windows.close(gaps, partial)
        record["judged_in_s"] = time.monotonic() - judging
        start_s = max(w.start_s, self.t0)
        record["start_min"] = (start_s - self.t0) / 60.0
        record["end_min"] = (end_s - self.t0) / 60.0
        record.update(self._extras(end_s, max(end_s - self._window_started_s, 1e-9)))
        self._window_started_s = end_s
        with open(self.out / "windows.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        with open(self.out / "windows.md", "a") as f:
            f.write(window_row(record) + "\n")
        self.window_records.append(record)
        self.log(window_line(record, self.windows.windows))

    def _extras(self, end_s: float, duration_s: float) -> dict[str, Any]:
        """What the soak measured itself over the window ending at ``end_s`` (s, monotonic)."""
        processes: dict[str, dict[str, Any]] = {}
        for role, samples in sorted(self._samples.items()):
            t_last, last = samples[-1]
            same = [x for x in ([self._carry[role]] if role in self._carry else []) + samples if x[1].pid == last.pid]
            t_first, first = same[0]
            cpu = (last.cpu_s - first.cpu_s) / (t_last - t_first) if t_last > t_first else None
            entry: dict[str, Any] = {
                "rss_bytes": last.rss_bytes,
                "rss_peak_bytes": max(s.rss_bytes for _, s in samples),
                "cpu_pct": None if cpu is None or cpu < 0 else 100.0 * cpu,
                "judged": role != "browser",
            }
            if role == "browser":
                entry["processes"] = self._browser_processes
            else:
                entry |= {"pid": last.pid, "fds": last.fds}
            processes[role] = entry
        self._carry = {role: samples[-1] for role, samples in self._samples.items()}
        self._samples = {}
        episodes = [e for e in self._episodes if e["at_s"] < end_s]
        self._episodes = [e for e in self._episodes if e["at_s"] >= end_s]
        cycles = [c for c in self.cycles if end_s - duration_s <= c["at_s"] < end_s]
        frames = self._browser_state.get("frames_decoded", 0)
        browser = {
            "frames_decoded": frames,
            "frames_in_window": frames - self._browser_frames_before,
            "fps": (frames - self._browser_frames_before) / duration_s,
            "connection": self._browser_state.get("connection"),
            "error": self._browser_state.get("error"),
            "reloads": self._browser_state.get("reloads", 0),
        }
        self._browser_frames_before = frames
        holds = sum(t < end_s for t in self._holds)
        self._holds = [t for t in self._holds if t >= end_s]
        by_task = Counter(e["task"] for e in episodes)
        return {
            "duration_s": duration_s,
            "processes": processes,
            "video": _video(cycles),
            "browser": browser,
            "tasks": {
                "episodes": len(episodes),
                "succeeded": sum(e["success"] for e in episodes),
                "by_task": dict(by_task),
            },
            "consoles": {"finished": len(cycles), "exit_codes": [c["exit"] for c in cycles], "video_holds": holds},
            "recording_bytes": self.record.stat().st_size if self.record.exists() else 0,
        }

    # ------------------------------------------------------------------ the end
    def _stop_all(self) -> None:
        now = time.monotonic()
        if self.console is not None:
            if self.console.proc.poll() is None:
                code = self.console.stop(15)
                self._read_console_lines(self.console, now)
                self._end_cycle(code, now, cut_short=True)
            else:
                self._read_console_lines(self.console, now)
                self._end_cycle(self.console.stop(5), now, cut_short=False)
            self.console = None
        if self.browser is not None:
            self._poll_browser()
            self.browser.close()
            self.browser = None
        if self.video is not None:
            self.video.stop(20)
        if self.robot is not None:
            self.robot.stop(60)
        if self.probe is not None:
            self.probe.stop()

    def _finish(self) -> int:
        assert self.windows is not None and self.tail is not None and self.robot is not None
        interrupted = self.stopping
        deadline = time.monotonic() + 30.0
        while not self.tail.finished and time.monotonic() < deadline:
            self._read_recording()
            time.sleep(0.1)
        self._read_recording()
        while self.windows.ready:
            self._close_window(partial=True)
        if self.windows.current.states:
            self._close_window(partial=True)
        self.windows.discard()
        recording = self._check_recording()
        marks = targets(self.window_records, recording, self.config)
        invariants_ok = all(w["invariants"]["ok"] for w in self.window_records)
        failed = not invariants_ok or not recording["ok"] or bool(self.failure)
        if self.config.strict:
            failed |= any(t["status"] != "PASS" for t in marks)
        episodes = [e for c in self.cycles for e in c["episodes"]]
        summary = {
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self.config).items()},
            "interrupted": interrupted,
            "failure": self.failure,
            "minutes_run": (self.window_records[-1]["end_min"] if self.window_records else 0.0),
            "realtime_granted": not any("not granted" in line for line in self.robot.lines),
            "pinning": self.pinning,
            "robot_cpu": self.robot_cpu,
            "robot_exit": self.robot.proc.returncode,
            "windows": len(self.window_records),
            "cycles": self.cycles,
            "tasks": dict(Counter(e["task"] for e in episodes)),
            "tasks_succeeded": dict(Counter(e["task"] for e in episodes if e["success"])),
            "recording": recording,
            "targets": marks,
            "ok": not failed,
            "notes": self._notes(recording),
        }
        (self.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        self.log("")
        self.log(final_table(self.window_records, marks, summary))
        self.log(f"soak: {'PASSED' if not failed else 'FAILED'}; report in {self.out}")
        if failed:
            return 1
        return 130 if interrupted else 0

    def _notes(self, recording: dict[str, Any]) -> list[str]:
        notes = []
        if self.pinning != "isolate" and self.robot_cpu is not None:
            notes.append(f"pinning {self.pinning}: other processes may run on the robot's CPU {self.robot_cpu}")
        return notes

    def _check_recording(self) -> dict[str, Any]:
        """The recording complete (no control period missing) and read whole by the ``mcap`` library."""
        from mcap.reader import make_reader

        assert self.windows is not None and self.tail is not None and self.robot is not None
        complete = self.windows.completeness.to_dict()
        reader: dict[str, Any] = {"summary": False, "messages": 0, "error": ""}
        try:
            with open(self.record, "rb") as f:
                mcap = make_reader(f)
                reader["summary"] = mcap.get_summary() is not None
                reader["messages"] = sum(1 for _ in mcap.iter_messages())
        except Exception as exc:  # whatever the library raises on a bad file is the finding
            reader["error"] = f"{type(exc).__name__}: {exc}"[:300]
        reader["ok"] = reader["summary"] and not reader["error"] and reader["messages"] == self.tail.messages
        ok = (
            complete["ok"]
            and reader["ok"]
            and self.tail.finished
            and self.robot.proc.returncode == 0
            and self.record.exists()
        )
        return {
            "ok": bool(ok),
            "bytes": self.record.stat().st_size if self.record.exists() else 0,
            "closed": self.tail.finished,
            "messages_read": self.tail.messages,
            "complete": complete,
            "mcap_reader": reader,
            "robot_exit": self.robot.proc.returncode,
        }


def _video(cycles: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The video figures of the console cycles that ended in a window: frames and fps summed and
    frame-weighted, latency p50 frame-weighted and p95 the worst cycle's."""
    parts = [c["video"] for c in cycles if c.get("video") and c["video"].get("frames")]
    if not parts:
        return None
    frames = sum(v["frames"] for v in parts)
    lat = [(v["frames"], v.get("sampled_to_displayed_ms") or {}) for v in parts]
    weighted = [(n, d["p50"]) for n, d in lat if "p50" in d]
    return {
        "consoles": len(parts),
        "frames": frames,
        "fps": sum(v["frames"] * v.get("fps", 0.0) for v in parts) / frames,
        "latency_p50_ms": sum(n * x for n, x in weighted) / sum(n for n, _ in weighted) if weighted else None,
        "latency_p95_ms": max((d["p95"] for _, d in lat if "p95" in d), default=None),
        "holds": sum(v.get("holds", 0) for v in parts),
        "source": "summaries of the consoles that finished in the window (state sampled -> displayed)",
    }


def run_soak(config: SoakConfig, log: Callable[[str], None] = _print) -> int:
    """Run a soak; returns the exit status (see the module docstring)."""
    return Soak(config, log).run()

"""The robot's recording judged window by window while it is still being written (``telesurg soak``).

``RecordingWindows.feed`` takes the messages a ``telesurg.teleop.robot.recorder.RecordingTail`` read and files each
into the time window it belongs to (robot monotonic clock, the host's CLOCK_MONOTONIC): a control
period by its end (``/robot/state`` ``robot_s``; a ``/robot/stalls`` record by start + length),
everything else by its own receive or event time. Records from before the first window's nominal
start (the robot starting up) belong to the first window, so every record is in exactly one.

A window is complete once a control period ending at or after its end has been read (the server
writes its records in loop order, so everything earlier is in the file by then). ``close`` then:

- judges the safety invariants (``telesurg.teleop.harness.invariants.check_recording``, with the host probe's
  gaps: a stall the host took is set apart) on the window's slice, written as an MCAP file of its
  own: the window's records plus the context a slice needs to be judged as the whole file would
  be — every config, every engage grant and every supervisor event so far, the commands of the
  ``CONTEXT_S`` before the window (and the last one, whatever its age), the last
  ``CONTEXT_STATES`` control periods of the previous window (the speed check looks across the
  boundary). A slice is kept only when an invariant broke in it.
- measures the window: command latency from ``/robot/applied`` (true age: robot receive time −
  console send time; console and robot read the same host clock, so no clock-sync estimate is
  involved), control periods (from successive ``robot_s``), stalls with their kind and whether the
  host probe was held up as long (as the stall invariant judges it), refused commands, rejected
  messages, the share of periods ENGAGED.

It also checks, over the whole recording, that no control period is missing: consecutive
``robot_s`` differ by exactly the later record's ``period_s``, and every gap longer than the stall
threshold has its ``/robot/stalls`` record.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from telesurg.teleop.harness.hostprobe import Gap, stall_is_hosts, unexecuted_work_s
from telesurg.teleop.harness.invariants import STALL_FACTOR, check_recording
from telesurg.teleop.robot.reader import RecordedMessage
from telesurg.teleop.robot.recorder import Recorder, encode
from telesurg.teleop.robot.records import RECORD_TYPES, TOPIC_STALLS, TOPIC_STATE

#: Commands before a window that its slice carries (s): more than the watchdog and the maximum age.
CONTEXT_S = 2.0
#: Control periods of the previous window a slice carries (the speed check's tip window is 10 ms).
CONTEXT_STATES = 8
#: A period within this share of nominal counts as on time.
ON_TIME_SHARE = 0.2
#: Two float times this close are the same instant (both are copies of one clock reading).
SAME_S = 1e-9

#: The time each topic's record is filed by (a stall by its end, added below).
_TIME_FIELD = {
    "/robot/state": "robot_s",
    "/robot/commands": "received_robot_s",
    "/robot/applied": "received_robot_s",
    "/robot/events": "robot_s",
    "/robot/control": "received_robot_s",
    "/robot/rejected": "received_robot_s",
    "/robot/config": "robot_s",
    "/robot/task": "robot_s",
}


def record_time(msg: RecordedMessage) -> float:
    """When ``msg`` happened on the robot's clock (s); a stall counts at the end of its period."""
    if msg.topic == TOPIC_STALLS:
        return msg.data["start_robot_s"] + msg.data["period_s"]
    return msg.data[_TIME_FIELD[msg.topic]]


@dataclass
class _Window:
    index: int
    start_s: float  # nominal; records before it still belong to the first window
    end_s: float
    slice_path: Path
    recorder: Recorder
    channels: dict[str, int]
    gaps_s: array = field(default_factory=lambda: array("d"))
    latencies_s: array = field(default_factory=lambda: array("d"))
    engaged: int = 0
    states: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    stalls: list[dict[str, Any]] = field(default_factory=list)
    missing: int = 0
    unexplained: int = 0
    complete: bool = False


@dataclass
class Completeness:
    """Whether every control period of the recording is in it (see the module docstring)."""

    states: int = 0
    #: Records whose gap to the previous one differs from their own live ``period_s``.
    missing: int = 0
    #: Gaps longer than the stall threshold with no ``/robot/stalls`` record.
    unexplained: int = 0

    @property
    def ok(self) -> bool:
        return self.states > 0 and self.missing == 0 and self.unexplained == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "states": self.states,
            "missing": self.missing,
            "unexplained_gaps": self.unexplained,
        }


class RecordingWindows:
    """See the module docstring. Windows are ``[start_s + k·window_s, start_s + (k+1)·window_s)``,
    the last one cut at ``end_s``; slices go to ``folder``."""

    def __init__(self, folder: Path, start_s: float, window_s: float, end_s: float) -> None:
        if window_s <= 0 or end_s <= start_s:
            raise ValueError("need window_s > 0 and end_s > start_s")
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.start_s, self.window_s, self.end_s = start_s, window_s, end_s
        self.windows = math.ceil((end_s - start_s) / window_s - 1e-9)
        self.completeness = Completeness()
        self._configs: list[RecordedMessage] = []
        self._grants: list[RecordedMessage] = []
        self._events: list[RecordedMessage] = []
        self._applied: deque[RecordedMessage] = deque()
        self._last_applied: RecordedMessage | None = None
        self._last_states: deque[RecordedMessage] = deque(maxlen=CONTEXT_STATES)
        self._prev_state: dict[str, Any] | None = None
        self._stall_starts: deque[float] = deque(maxlen=64)
        self._pending: list[RecordedMessage] = []
        self.nominal_s = math.nan
        self.current = self._open(1)

    # ------------------------------------------------------------------ filing
    def feed(self, messages: list[RecordedMessage]) -> None:
        """File messages in file order (as a ``RecordingTail`` returns them)."""
        for msg in messages:
            if record_time(msg) >= self.current.end_s:
                self._pending.append(msg)
                if msg.topic == TOPIC_STATE:
                    self.current.complete = True
            else:
                self._add(msg)

    @property
    def ready(self) -> bool:
        """The current window's records are all in (a later control period was read)."""
        return self.current.complete

    def _open(self, index: int) -> _Window:
        start = self.start_s + (index - 1) * self.window_s
        end = math.inf if index > self.windows else min(self.start_s + index * self.window_s, self.end_s)
        path = self.folder / f"window-{index:03d}.mcap"
        if path.exists():
            path.unlink()
        rec = Recorder(path, flush_interval_s=3600.0, compression="lz4")
        channels = {topic: rec.channel(topic, struct) for topic, struct in RECORD_TYPES.items()}
        w = _Window(index, start, end, path, rec, channels)
        context = [*self._configs, *self._grants, *self._events]
        applied = list(self._applied)
        if self._last_applied is not None and (not applied or applied[-1] is not self._last_applied):
            applied.append(self._last_applied)
        for msg in sorted(context + applied + list(self._last_states), key=record_time):
            self._write(w, msg)
        return w

    def _write(self, w: _Window, msg: RecordedMessage) -> None:
        w.recorder.write_encoded(w.channels[msg.topic], encode(msg.data), msg.log_time_ns, msg.publish_time_ns)

    def _add(self, msg: RecordedMessage) -> None:
        w = self.current
        self._write(w, msg)
        d = msg.data
        topic = msg.topic
        if topic == TOPIC_STATE:
            self._state(w, msg)
        elif topic == "/robot/applied":
            w.latencies_s.append(d["received_robot_s"] - d["sent_console_s"])
            self._applied.append(msg)
            self._last_applied = msg
            while self._applied and self._applied[0].data["received_robot_s"] < d["received_robot_s"] - CONTEXT_S:
                self._applied.popleft()
        elif topic == "/robot/commands":
            if not d["accepted"]:
                w.refused[d["code"] or "refused"] += 1
        elif topic == "/robot/rejected":
            w.rejected += 1
        elif topic == TOPIC_STALLS:
            w.stalls.append(dict(d))
            self._stall_starts.append(d["start_robot_s"])
        elif topic == "/robot/config":
            self._configs.append(msg)
            self.nominal_s = d["control_period_s"]
        elif topic == "/robot/control":
            if d["request"] == "engage" and d["ok"]:
                self._grants.append(msg)
        elif topic == "/robot/events":
            self._events.append(msg)

    def _state(self, w: _Window, msg: RecordedMessage) -> None:
        d = msg.data
        c = self.completeness
        c.states += 1
        w.states += 1
        w.engaged += d["state"] == "ENGAGED"
        prev = self._prev_state
        if prev is not None:
            gap = d["robot_s"] - prev["robot_s"]
            w.gaps_s.append(gap)
            if abs(gap - d["period_s"]) > SAME_S:
                c.missing += 1
                w.missing += 1
            if gap > STALL_FACTOR * self.nominal_s and not any(
                abs(s - prev["robot_s"]) <= SAME_S for s in self._stall_starts
            ):
                c.unexplained += 1
                w.unexplained += 1
        self._prev_state = d
        self._last_states.append(msg)

    # ------------------------------------------------------------------ closing
    def close(self, probe_gaps: list[Gap], partial: bool = False) -> dict[str, Any]:
        """Judge and measure the current window, open the next one; returns the window's figures."""
        w = self.current
        w.recorder.close()
        checks = check_recording(w.slice_path, (), host_gaps=probe_gaps)
        ok = all(c.ok for c in checks)
        if ok:
            w.slice_path.unlink()
        result = self._figures(w, probe_gaps)
        result["partial"] = partial
        result["invariants"] = {
            "ok": ok,
            "slice": None if ok else str(w.slice_path),
            "checks": [c.to_dict() for c in checks],
        }
        pending, self._pending = self._pending, []
        self.current = self._open(w.index + 1)
        self.feed(pending)
        return result

    def discard(self) -> None:
        """Close the open window's slice without judging it (nothing was filed in it)."""
        self.current.recorder.close()
        self.current.slice_path.unlink(missing_ok=True)

    def _figures(self, w: _Window, probe_gaps: list[Gap]) -> dict[str, Any]:
        nominal = self.nominal_s
        gaps = np.frombuffer(w.gaps_s, dtype=float) if len(w.gaps_s) else np.zeros(0)
        lat = np.frombuffer(w.latencies_s, dtype=float) if len(w.latencies_s) else np.zeros(0)
        for s in w.stalls:
            s["host"] = stall_is_hosts(
                s["kind"], s["start_robot_s"], s["period_s"], nominal, probe_gaps, unexecuted_work_s(s)
            )
        return {
            "index": w.index,
            "latency": {
                "samples": int(lat.size),
                "p50_ms": _ms(np.percentile(lat, 50)) if lat.size else None,
                "p99_ms": _ms(np.percentile(lat, 99)) if lat.size else None,
                "max_ms": _ms(lat.max()) if lat.size else None,
                "refused": dict(w.refused),
                "rejected": w.rejected,
                "source": "robot recording /robot/applied: received_robot_s - sent_console_s (same host clock)",
            },
            "periods": {
                "states": w.states,
                "count": int(gaps.size),
                "nominal_ms": _ms(nominal),
                "within_20pct": float(np.mean(np.abs(gaps - nominal) <= ON_TIME_SHARE * nominal))
                if gaps.size
                else None,
                "worst_ms": _ms(gaps.max()) if gaps.size else None,
                "p99_ms": _ms(np.percentile(gaps, 99)) if gaps.size else None,
                "over_5x": int(np.sum(gaps > STALL_FACTOR * nominal)) if gaps.size else 0,
                "engaged_share": w.engaged / w.states if w.states else 0.0,
                "missing": w.missing,
                "unexplained_gaps": w.unexplained,
            },
            "stalls": {
                "work": sum(s["kind"] == "work" for s in w.stalls),
                "wait": sum(s["kind"] == "wait" for s in w.stalls),
                "host": sum(s["host"] for s in w.stalls),
                "list": [
                    {
                        "start_robot_s": s["start_robot_s"],
                        "period_ms": _ms(s["period_s"]),
                        "kind": s["kind"],
                        "host": s["host"],
                        "work_ms": _ms(s["work_s"]),
                        "wait_ms": _ms(s["wait_s"]),
                        "not_run_ms": _ms(unexecuted_work_s(s)),
                    }
                    for s in w.stalls
                ],
            },
        }


def _ms(seconds: float) -> float:
    return float(seconds) * 1e3

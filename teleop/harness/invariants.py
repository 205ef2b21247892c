"""The safety invariants, judged on the robot's own MCAP recording of every control period.

1. ``force``: the contact force (the peak of every period) never crosses the hard limit.
2. ``hold``: while ENGAGED, the time since the last valid command never exceeds watchdog + 50 ms
   (robot clock): the arm is in HOLD by then.
3. ``commands``: every applied command is from the session engaged at the time, has a sequence above
   the previous applied one of its session, and is fresh: its *true* age (receive time − send time
   on the true clock; console and robot share the host clock, and a harness-injected console clock
   jump is undone) is at most the maximum command age plus the clock sync's own uncertainty at the
   time (half its round trip — the bound the NTP-style estimate guarantees) plus 5 ms.
4. ``speed``: while ENGAGED the supervisor's setpoint never moves faster than the limit (0.1% slack),
   and the measured tool tip, over 10 ms windows, never by more than ``SPEED_TOLERANCE`` above it
   (speeds per period of arm time: the simulated arm advances one nominal period per control period)
   (the servo follows the setpoint with a lag and small overshoot; a jump after an outage or a
   restart would be far above). Periods right after a task load (the arm is teleported home while
   idle) are excluded.
5. ``workspace``: setpoint and tip stay in the workspace box (the tip within ``TIP_MARGIN_M``: tissue
   may push it slightly) and never inside a forbidden box.
6. ``stall``: no control period is longer than 5× nominal — except one the host took: the host
   probe pinned beside the robot one real-time priority above it (``telesurg.teleop.harness.hostprobe``) was
   kept from running, at the same moment, for at least 80% of the robot's lateness (the period's
   length beyond nominal). The robot cannot hold up a higher-priority probe, so this holds for a
   stall in the wait for the period's start and for one in the period's own work alike. Such
   periods are reported per kind (count and longest), never hidden; a stall without a stall record,
   or one the probe did not share, fails.

Each check returns pass/fail with its measured figure, so a report can show how close a run came.
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from telesurg.teleop.harness.hostprobe import Gap, host_gap, stall_is_hosts, unexecuted_work_s
from telesurg.teleop.robot.reader import read

HOLD_SLACK_S = 0.05
SPEED_TOLERANCE = 0.25
SPEED_WINDOW_S = 0.01
TIP_MARGIN_M = 0.002
AGE_SLACK_S = 0.005
STALL_FACTOR = 5.0

NAMES = ("force", "hold", "commands", "speed", "workspace", "stall")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    figure: float
    limit: float
    unit: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClockJump:
    """A console clock jump injected by the harness: commands of ``session`` with ``seq`` at or above
    ``first_seq`` carry console times ``jump_s`` ahead of the true clock."""

    session: str
    first_seq: int
    jump_s: float


def load(path: Path) -> dict[str, list[dict[str, Any]]]:
    topics: dict[str, list[dict[str, Any]]] = {}
    for msg in read(path):
        topics.setdefault(msg.topic.rsplit("/", 1)[-1], []).append(msg.data)
    return topics


def check_recording(
    path: Path, jumps: tuple[ClockJump, ...] = (), host_gaps: tuple[Gap, ...] | list[Gap] = ()
) -> list[Check]:
    """All invariants on one recording (a truncated one from a killed server counts up to its end);
    ``host_gaps``: what the host probe beside the robot saw (the stall check sets the host's share apart)."""
    t = load(path)
    configs = t.get("config", [])
    if not configs:
        return [Check(n, False, float("nan"), float("nan"), "", "no /robot/config in the recording") for n in NAMES]
    cfg = configs[-1]
    states = t.get("state", [])
    applied = t.get("applied", [])
    return [
        _force(states, cfg),
        _hold(states, applied, t.get("events", []), cfg),
        _commands(applied, t.get("control", []), cfg, jumps),
        _speed(states, configs, cfg),
        _workspace(states, cfg),
        _stall(states, t.get("stalls", []), cfg, host_gaps),
    ]


def merge(checks: list[list[Check]]) -> list[Check]:
    """Combine the checks of several recordings of one cell (e.g. before and after a robot restart):
    each invariant passes only if it passed on all; the figure is the worst one."""
    out = []
    for i, name in enumerate(NAMES):
        group = [c[i] for c in checks]
        worst = max(group, key=lambda c: (not c.ok, c.figure if np.isfinite(c.figure) else np.inf))
        out.append(Check(name, all(c.ok for c in group), worst.figure, worst.limit, worst.unit, worst.detail))
    return out


# ---------------------------------------------------------------------- the checks
def _force(states: list[dict], cfg: dict) -> Check:
    peak = max((s["force_peak_N"] for s in states), default=0.0)
    limit = cfg["hard_force_N"]
    return Check("force", peak <= limit, peak, limit, "N", "largest contact force in any control period")


def _hold(states: list[dict], applied: list[dict], events: list[dict], cfg: dict) -> Check:
    limit = cfg["watchdog_s"] + HOLD_SLACK_S
    valid = sorted(
        [a["received_robot_s"] for a in applied]
        + [e["robot_s"] for e in events if e["state"] == "ENGAGED" and e["previous"] != "ENGAGED"]
    )
    worst, at = 0.0, 0.0
    period = cfg["control_period_s"]
    for s in states:
        if s["state"] != "ENGAGED":
            continue
        # A period's record carries its start time; a command judged during the period counts for it.
        i = bisect.bisect_right(valid, s["robot_s"] + period)
        if i == 0:
            continue
        gap = s["robot_s"] - valid[i - 1]
        if gap > worst:
            worst, at = gap, s["robot_s"]
    detail = "longest time ENGAGED without a valid command"
    if worst > limit:
        detail += f" (at robot time {at:.3f} s)"
    return Check("hold", worst <= limit, worst, limit, "s", detail)


def _commands(applied: list[dict], control: list[dict], cfg: dict, jumps: tuple[ClockJump, ...]) -> Check:
    grants = sorted((c["received_robot_s"], c["session"]) for c in control if c["request"] == "engage" and c["ok"])
    problems: list[str] = []
    worst_excess = -np.inf
    last_seq: dict[str, int] = {}
    for a in applied:
        i = bisect.bisect_right([g[0] for g in grants], a["received_robot_s"])
        current = grants[i - 1][1] if i else None
        if a["session"] != current:
            problems.append(f"seq {a['seq']} of session {a['session']} applied while {current} was engaged")
        if a["seq"] <= last_seq.get(a["session"], -1):
            problems.append(f"seq {a['seq']} applied after {last_seq[a['session']]}")
        last_seq[a["session"]] = a["seq"]
        sent = a["sent_console_s"]
        for j in jumps:
            if a["session"] == j.session and a["seq"] >= j.first_seq:
                sent -= j.jump_s
        true_age = a["received_robot_s"] - sent
        excess = true_age - (cfg["max_age_s"] + a.get("clock_uncertainty_s", 0.0) + AGE_SLACK_S)
        worst_excess = max(worst_excess, excess)
        if excess > 0:
            problems.append(f"seq {a['seq']} applied {true_age * 1000:.0f} ms old")
    figure = float(worst_excess) if applied else 0.0
    detail = "; ".join(problems[:3]) if problems else "largest true age above the allowed age (≤ 0 passes)"
    return Check("commands", not problems, figure, 0.0, "s", detail)


def _speed(states: list[dict], configs: list[dict], cfg: dict) -> Check:
    """Speeds per control period of arm time: the simulated arm advances exactly one nominal period
    per control period, whatever the wall-clock jitter of the loop (a real arm would use robot_s)."""
    limit = cfg["max_tip_speed_m_s"]
    period = cfg["control_period_s"]
    if len(states) < 3:
        return Check("speed", True, 0.0, limit, "m/s", "too short to measure")
    t = np.array([s["robot_s"] for s in states])
    tip = np.array([s["tip_m"] for s in states])
    sp = np.array([s["setpoint_m"] for s in states])
    keep = np.ones(len(t), dtype=bool)
    for t0 in (c["robot_s"] for c in configs):
        keep &= ~((t >= t0 - 0.01) & (t <= t0 + 0.3))  # a task load teleports the idle arm home
    sp_speed = np.linalg.norm(np.diff(sp, axis=0), axis=1) / period
    # Between two ENGAGED periods: entering HOLD re-targets the setpoint onto the measured tip (where
    # the arm already is, a servo lag away), which is not motion.
    engaged = np.array([s["state"] == "ENGAGED" for s in states])
    sp_speed = sp_speed[keep[1:] & keep[:-1] & engaged[1:] & engaged[:-1]]
    n = max(1, round(SPEED_WINDOW_S / period))  # tip speed over n periods averages out servo ripple
    win = np.linalg.norm(tip[n:] - tip[:-n], axis=1) / (n * period)
    win = win[keep[n:] & keep[:-n]]
    max_sp = float(sp_speed.max(initial=0.0))
    max_tip = float(win.max(initial=0.0))
    ok = max_sp <= limit * 1.001 and max_tip <= limit * (1 + SPEED_TOLERANCE)
    detail = f"setpoint max {max_sp:.4f} m/s; tip max {max_tip:.4f} m/s over {n * period * 1000:.0f} ms"
    return Check("speed", ok, max(max_tip, max_sp), limit * (1 + SPEED_TOLERANCE), "m/s", detail)


def _workspace(states: list[dict], cfg: dict) -> Check:
    if not states:
        return Check("workspace", True, 0.0, 0.0, "m", "no states")
    low, high = np.array(cfg["workspace_low_m"]), np.array(cfg["workspace_high_m"])
    tip = np.array([s["tip_m"] for s in states])
    sp = np.array([s["setpoint_m"] for s in states])
    out_sp = np.max(np.maximum(low - sp, sp - high).clip(min=0.0))
    out_tip = np.max(np.maximum(low - tip, tip - high).clip(min=0.0))
    inside = 0.0  # deepest penetration into a forbidden box (m)
    for lo, hi in cfg["forbidden_m"]:
        lo, hi = np.array(lo), np.array(hi)
        for p in (tip, sp):
            depth = np.min(np.minimum(p - lo, hi - p), axis=1)  # > 0 only when inside on every axis
            inside = max(inside, float(depth.max(initial=0.0)))
    ok = out_sp <= 1e-9 and out_tip <= TIP_MARGIN_M and inside <= 0.0
    figure = max(float(out_tip), inside)
    detail = (
        f"setpoint outside the workspace by {out_sp * 1000:.2f} mm, tip by {out_tip * 1000:.2f} mm "
        f"(allowed {TIP_MARGIN_M * 1000:.0f} mm); deepest inside a forbidden region {inside * 1000:.2f} mm"
    )
    return Check("workspace", bool(ok), figure, TIP_MARGIN_M, "m", detail)


def _stall(states: list[dict], stalls: list[dict], cfg: dict, host_gaps: tuple[Gap, ...] | list[Gap]) -> Check:
    """The longest control period that was not the host's (see the module docstring)."""
    nominal = cfg["control_period_s"]
    limit = STALL_FACTOR * nominal
    own, host = 0.0, []
    worst = ""  # what is known of the longest period that failed: the evidence a reader needs
    for s in states:
        length = s["period_s"]
        if length <= limit:
            own = max(own, length)
            continue
        start = s["robot_s"] - length  # a state's period is the one that ended at its robot_s
        record = next((st for st in stalls if abs(st["start_robot_s"] - start) < 1e-4), None)
        kind = record["kind"] if record is not None else ""
        unexecuted = unexecuted_work_s(record) if record is not None else 0.0
        if stall_is_hosts(kind, start, length, nominal, host_gaps, unexecuted):
            host.append((length, max(host_gap(start, length, host_gaps), unexecuted), kind))
        else:
            if length > own:
                worst = _stall_evidence(start, length, record, host_gaps, unexecuted)
            own = max(own, length)
    detail = "longest control period"
    if worst:
        detail += f"; the longest that failed: {worst}"
    if host:
        longest, seen, _ = max(host)
        kinds = ", ".join(f"{sum(k == kind for *_, k in host)} {kind}" for kind in ("wait", "work"))
        detail += (
            f"; {len(host)} longer period(s) ({kinds}) set apart as the host's (the host probe was held up, or "
            f"the loop with work to do did not run, ≥ 80% as long at the same moment): longest {longest * 1e3:.1f} "
            f"ms, host held it {seen * 1e3:.1f} ms"
        )
    return Check("stall", own <= limit, own, limit, "s", detail)


def _stall_evidence(
    start_s: float, length_s: float, record: dict | None, gaps: tuple[Gap, ...] | list[Gap], unexecuted_s: float
) -> str:
    """One line on a stall that was not set apart as the host's: its record's breakdown and what the
    probe saw around it, so a failure can be judged from the report alone."""
    text = f"{length_s * 1e3:.1f} ms from robot time {start_s:.4f} s"
    if record is None:
        text += ", no stall record"
    else:
        text += (
            f", {record['kind']}: control {record['control_s'] * 1e3:.2f}, command {record['command_s'] * 1e3:.2f}, "
            f"work {record['work_s'] * 1e3:.2f}, wait {record['wait_s'] * 1e3:.2f}, unaccounted "
            f"{record['unaccounted_s'] * 1e3:.2f} ms; work CPU {record.get('work_cpu_s', -1.0) * 1e3:.2f}, queued "
            f"{record.get('work_queued_s', 0.0) * 1e3:.2f} ms, blocked {record.get('work_blocked', False)}, "
            f"not run with work {unexecuted_s * 1e3:.2f} ms; page faults {record.get('page_faults', 0)}, gc "
            f"{record.get('gc_s', 0.0) * 1e3:.2f} ms; longest poll {record.get('longest_poll_s', 0.0) * 1e3:.2f}, "
            f"nap {record.get('longest_nap_s', 0.0) * 1e3:.2f}, "
            f"final sleep {record.get('final_sleep_s', 0.0) * 1e3:.2f} ms"
        )
    near = [g for g in gaps if g.end_s > start_s - 0.005 and g.start_s < start_s + length_s + 0.005]
    seen = ", ".join(
        f"{(g.start_s - start_s) * 1e3:+.1f} ms: {g.gap_s * 1e3:.2f} ({g.queued_s * 1e3:.2f} queued)" for g in near
    )
    share = host_gap(start_s, length_s, gaps)
    return text + f"; probe gaps within 5 ms: {seen or 'none'} (host share {share * 1e3:.2f} ms)"

"""The surgeon page's early warnings (``telesurg.teleop.console.alerts``): how long before the event
each one comes, and how often one comes on episodes where nothing happens.

The console computes the warnings at its 200 Hz tick from the newest telemetry it has. Here the
same ``Alerts`` object is fed as the browser console feeds it, from:

- **force** and **forbidden region**: the robot's own simulated arm (``SimulatedArm``: pybullet at
  500 Hz, the tissue's force law, the IK servo), driven by scripted hand motions through its target
  as the robot's loop drives it every 2 ms, telemetry sampled every 4 ms (250 Hz) and reaching the
  console ``--delay-ms`` later (default 5 ms: loopback; the table repeats at 100 ms). The supervisor
  is not in this loop: it acts at the stop limit, after the events measured here.
- **delay** and **video**: signal models, not the network: the one-way delay of each command
  (200 Hz) as a congesting link raises it (a ramp with 5 ms jitter), the console's estimate being
  the median of the last 50 (``Console.delay_estimate_s``); and the age of the newest displayed
  frame (30 fps, 50–80 ms sampled → displayed, occasional 150 ms gaps) until the video freezes.

Episodes that **cross** (the event happens): a press straight into the tissue at 5, 10 and 20 mm/s
until the force passes the warn limit (3 N), and presses that ease off as the palpations do but
toward 3.6 N; the tool driven into a forbidden region at 5, 10, 20
and 40 mm/s; the delay ramping at 100, 200 and 400 ms/s past 300 ms; the video freezing until the
console's stale-video hold (0.5 s). Lead time = event − the warning's onset; target ≥ 200 ms.

Episodes that **don't** (false warnings per minute; target ≤ 1): palpations (press at 10 and 20
mm/s, slowing as the force nears 2 N, hold 1.5 s, lift); point-to-point moves at up to 40 mm/s
that pass 8–15 mm from a forbidden region; a steady 60 ms and a steady 200 ms delay with 20 ms
jitter and 1% of commands 100 ms late; healthy video. A warning counts as false when its event
does not follow within 1 s of its onset.

    .venv/bin/python bench/early_warnings.py            # about 1 min
    .venv/bin/python bench/early_warnings.py --json /tmp/ew.json

prints a table and writes bench/early_warnings.json (``--json`` elsewhere).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from telesurg.teleop.console.alerts import AlertConfig, Alerts, box_distance_m
from telesurg.teleop.robot.arm import SimArmConfig, SimulatedArm

TICK_S = 0.005  # the browser console's loop (200 Hz)
PHYSICS_S = 0.002  # the robot's loop
TELEMETRY_S = 0.004  # 250 Hz
WARN_N = 3.0
HOLD_S = 0.5  # the console's stale-video hold threshold (max_age_s)
MAX_DELAY_S = 0.3
FALSE_AFTER_S = 1.0
#: A forbidden region (world frame, m): a vertical slab right of the tissue's centre.
FORBIDDEN_WORLD_M = ((0.02, -0.03, -0.01), (0.03, 0.03, 0.04))


# ---------------------------------------------------------------------------- robot-side episodes
class Episode:
    """Telemetry (robot time, tip in the base frame, force magnitude) of one scripted motion."""

    def __init__(self, arm: SimulatedArm) -> None:
        self.arm = arm
        env = arm.env
        assert env is not None
        self.to_base = env.arm.world_to_base
        self.t: list[float] = []
        self.tip: list[np.ndarray] = []
        self.force: list[float] = []

    def settle_at(self, world_m: np.ndarray, seconds: float = 0.6) -> None:
        """Move there and wait, unrecorded."""
        for _ in range(int(seconds / PHYSICS_S)):
            self.arm.command(self.to_base(world_m), 0.0)
            self.arm.update(PHYSICS_S)

    def run(self, step: Callable[[float, np.ndarray, float], np.ndarray | None], limit_s: float) -> None:
        """Each 2 ms: ``step(t, tip_world, force)`` gives the next world target (None: stop)."""
        env = self.arm.env
        assert env is not None
        t = 0.0
        while t < limit_s:
            reading = self.arm.read()
            tip_world = env.arm.base_to_world(reading.tip_m)
            force = float(np.linalg.norm(reading.force_N))
            if round(t / PHYSICS_S) % round(TELEMETRY_S / PHYSICS_S) == 0:
                self.t.append(t)
                self.tip.append(np.asarray(reading.tip_m, dtype=float).copy())
                self.force.append(force)
            target = step(t, tip_world, force)
            if target is None:
                break
            self.arm.command(self.to_base(target), 0.0)
            self.arm.update(PHYSICS_S)
            t += PHYSICS_S


def _console_onsets(
    episode: Episode, kind: str, delay_s: float, forbidden_base: list[tuple[np.ndarray, np.ndarray]]
) -> list[float]:
    """Onset times (robot clock) of ``kind`` warnings as the console, fed telemetry ``delay_s`` late
    at its 200 Hz tick, raises them."""
    alerts = Alerts(AlertConfig(max_delay_s=MAX_DELAY_S))
    times = np.asarray(episode.t)
    onsets, active = [], False
    for now in np.arange(delay_s, times[-1] + delay_s, TICK_S):
        i = int(np.searchsorted(times, now - delay_s, side="right")) - 1
        if i < 0:
            continue
        out = alerts.update(
            float(now),
            force_N=episode.force[i],
            warn_N=WARN_N,
            tool_m=episode.tip[i],
            forbidden_m=forbidden_base,
            delay_s=delay_s,
            video_age_s=0.06,
            video_hold_s=HOLD_S,
        )
        if kind in out and not active:
            onsets.append(float(now))
        active = kind in out
    return onsets


def _arm(task: str, forbidden: bool) -> SimulatedArm:
    arm = SimulatedArm(
        SimArmConfig(task=task, seed=0, preload=(task,), forbidden_m=(FORBIDDEN_WORLD_M,) if forbidden else ())
    )
    arm.connect()
    return arm


def force_press(arm: SimulatedArm, speed_m_s: float, target_N: float | None) -> Episode:
    """Straight down onto Palpate's spot at ``speed_m_s``; ``target_N`` None: until the warn limit is
    passed (and 0.2 s on); else slowing as the force nears ``target_N``, holding 1.5 s, lifting."""
    env = arm.env
    assert env is not None
    spot = env.arm.base_to_world(env.task.spot_m)
    start = np.array([spot[0], spot[1], 0.006])
    ep = Episode(arm)
    ep.settle_at(start)
    z = start[2]
    phase = {"crossed": None, "held": None, "lift": False}

    def step(t: float, tip: np.ndarray, force: float) -> np.ndarray | None:
        nonlocal z
        if target_N is None:
            if force >= WARN_N and phase["crossed"] is None:
                phase["crossed"] = t
            if phase["crossed"] is not None and t - phase["crossed"] > 0.2:
                return None
            z -= speed_m_s * PHYSICS_S
        elif not phase["lift"]:
            # A surgeon's press: full speed in free space, slowing in contact as the force nears the
            # target (speed ∝ the force still missing), then holding.
            missing = target_N - force
            v = speed_m_s if force < 0.05 else float(np.clip(speed_m_s * missing / target_N * 1.5, -0.004, speed_m_s))
            z -= v * PHYSICS_S
            if abs(missing) < 0.15 and phase["held"] is None:
                phase["held"] = t
            if phase["held"] is not None and t - phase["held"] > 1.5:
                phase["lift"] = True
        else:
            z += 0.01 * PHYSICS_S
            if z > start[2]:
                return None
        return np.array([start[0], start[1], z])

    ep.run(step, 10.0)
    return ep


def forbidden_approach(arm: SimulatedArm, speed_m_s: float) -> Episode:
    """From 25 mm left of the forbidden slab, straight at it (+x) at ``speed_m_s`` into it."""
    lo = np.asarray(FORBIDDEN_WORLD_M[0])
    start = np.array([lo[0] - 0.025, 0.0, 0.015])
    ep = Episode(arm)
    ep.settle_at(start)

    def step(t: float, tip: np.ndarray, force: float) -> np.ndarray | None:
        if tip[0] > lo[0] + 0.003:
            return None
        return start + np.array([min(speed_m_s * t, 0.04), 0.0, 0.0])

    ep.run(step, 10.0)
    return ep


def _min_jerk(a: np.ndarray, b: np.ndarray, duration_s: float) -> Callable[[float], np.ndarray]:
    def at(t: float) -> np.ndarray:
        s = min(max(t / duration_s, 0.0), 1.0)
        return a + (b - a) * (10 * s**3 - 15 * s**4 + 6 * s**5)

    return at


def forbidden_moves(arm: SimulatedArm, rng: np.random.Generator, count: int) -> Episode:
    """Point-to-point moves (minimum jerk, peak 20–40 mm/s) between points whose straight path passes
    8–15 mm from the forbidden slab at its nearest."""
    lo, hi = (np.asarray(v) for v in FORBIDDEN_WORLD_M)
    points = [np.array([-0.01, 0.0, 0.015])]
    while len(points) < count + 1:
        a = points[-1]
        b = np.array([rng.uniform(-0.05, lo[0] - 0.008), rng.uniform(-0.04, 0.04), rng.uniform(0.004, 0.03)])
        path = np.linspace(a, b, 50)
        nearest = min(box_distance_m(p, lo, hi) for p in path)
        if 0.008 <= nearest <= 0.015:
            points.append(b)
    ep = Episode(arm)
    ep.settle_at(points[0])
    segments = []
    for a, b in itertools.pairwise(points):
        peak = rng.uniform(0.02, 0.04)
        duration = max(1.875 * float(np.linalg.norm(b - a)) / peak, 0.2)  # min-jerk peak = 1.875 × mean
        segments.append((_min_jerk(a, b, duration), duration + 0.3))
    ends = np.cumsum([d for _, d in segments])

    def step(t: float, tip: np.ndarray, force: float) -> np.ndarray | None:
        k = int(np.searchsorted(ends, t, side="right"))
        if k >= len(segments):
            return None
        start = ends[k - 1] if k else 0.0
        return segments[k][0](t - start)

    ep.run(step, float(ends[-1]) + 1.0)
    return ep


# ---------------------------------------------------------------------------- signal models
def _signal_onsets(kind: str, duration_s: float, signals: Callable[[float], tuple[float, float | None]]) -> list[float]:
    """Onsets of ``kind`` warnings when, at each 200 Hz tick, ``signals(now)`` gives the console's
    delay estimate and the newest displayed frame's age (nothing else is happening)."""
    alerts = Alerts(AlertConfig(max_delay_s=MAX_DELAY_S))
    onsets, active = [], False
    for now in np.arange(0.0, duration_s, TICK_S):
        delay_s, age_s = signals(float(now))
        out = alerts.update(
            float(now),
            force_N=0.0,
            warn_N=WARN_N,
            tool_m=np.zeros(3),
            forbidden_m=[],
            delay_s=delay_s,
            video_age_s=age_s,
            video_hold_s=HOLD_S,
        )
        if kind in out and not active:
            onsets.append(float(now))
        active = kind in out
    return onsets


def delay_onsets(profile: Callable[[float], float], duration_s: float, rng: np.random.Generator) -> list[float]:
    """Onsets of delay warnings, the console estimating the delay as the median of the last 50."""
    recent: deque[float] = deque(maxlen=50)

    def signals(now: float) -> tuple[float, float | None]:
        recent.append(profile(now) + float(rng.normal(0.0, 0.005)))
        return float(np.median(recent)), 0.06

    return _signal_onsets("delay", duration_s, signals)


def video_onsets(freeze_at_s: float | None, duration_s: float, rng: np.random.Generator) -> list[float]:
    """Onsets of video warnings: frames every 33 ms showing a state 50–80 ms old (1% arriving 150 ms
    late), until ``freeze_at_s`` (None: never)."""
    shown, next_frame = -1.0, 0.0  # the state time the newest displayed frame shows; the next frame's

    def signals(now: float) -> tuple[float, float | None]:
        nonlocal shown, next_frame
        if now >= next_frame and (freeze_at_s is None or now < freeze_at_s):
            shown = now - rng.uniform(0.05, 0.08)
            next_frame += 1 / 30 + (0.15 if rng.random() < 0.01 else 0.0)
        return 0.01, (now - shown if shown >= 0 else None)

    return _signal_onsets("video", duration_s, signals)


# ---------------------------------------------------------------------------- scoring
def _lead(onsets: list[float], event_s: float | None) -> float | None:
    """Event − the first onset before it (s); None without one (no warning before the event)."""
    if event_s is None:
        return None
    before = [t for t in onsets if t <= event_s]
    return event_s - before[0] if before else None


def _false(onsets: list[float], events: list[float]) -> int:
    return sum(1 for t in onsets if not any(0.0 <= e - t <= FALSE_AFTER_S for e in events))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, default=Path(__file__).with_name("early_warnings.json"))
    ap.add_argument("--delay-ms", type=float, nargs="+", default=[5.0, 100.0])
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    false_rows: list[dict[str, Any]] = []

    palpate = _arm("Palpate", forbidden=False)
    reach = _arm("Reach", forbidden=True)
    forbidden_base = reach.forbidden_regions_m()
    try:
        for delay_ms in args.delay_ms:
            d = delay_ms / 1e3
            for v in (0.005, 0.01, 0.02):
                ep = force_press(palpate, v, None)
                event = next((t for t, f in zip(ep.t, ep.force, strict=True) if f >= WARN_N), None)
                lead = _lead(_console_onsets(ep, "force", d, []), event)
                rows.append(
                    {"kind": "force", "case": f"press at {v * 1e3:.0f} mm/s", "delay_ms": delay_ms, "lead_s": lead}
                )
            for v in (0.01, 0.02):  # easing off, but toward a target above the warn limit
                ep = force_press(palpate, v, 3.6)
                event = next((t for t, f in zip(ep.t, ep.force, strict=True) if f >= WARN_N), None)
                lead = _lead(_console_onsets(ep, "force", d, []), event)
                case = f"press easing to 3.6 N from {v * 1e3:.0f} mm/s"
                rows.append({"kind": "force", "case": case, "delay_ms": delay_ms, "lead_s": lead})
            for v in (0.005, 0.01, 0.02, 0.04):
                ep = forbidden_approach(reach, v)
                gaps = [min(box_distance_m(tip, lo, hi) for lo, hi in forbidden_base) for tip in ep.tip]
                event = next((t for t, g in zip(ep.t, gaps, strict=True) if g <= 0.0), None)
                lead = _lead(_console_onsets(ep, "forbidden", d, forbidden_base), event)
                rows.append(
                    {
                        "kind": "forbidden",
                        "case": f"into it at {v * 1e3:.0f} mm/s",
                        "delay_ms": delay_ms,
                        "lead_s": lead,
                    }
                )
            # Episodes that don't cross.
            seconds, onsets_false = 0.0, 0
            for v in (0.01, 0.02):
                for _ in range(10):
                    ep = force_press(palpate, v, 2.0)
                    events = [t for t, f in zip(ep.t, ep.force, strict=True) if f >= WARN_N]
                    onsets_false += _false(_console_onsets(ep, "force", d, []), events)
                    seconds += ep.t[-1]
            false_rows.append(
                {
                    "kind": "force",
                    "case": "palpations to 2 N",
                    "delay_ms": delay_ms,
                    "seconds": seconds,
                    "false": onsets_false,
                }
            )
            ep = forbidden_moves(reach, rng, 30)
            gaps = [min(box_distance_m(tip, lo, hi) for lo, hi in forbidden_base) for tip in ep.tip]
            events = [t for t, g in zip(ep.t, gaps, strict=True) if g <= 0.0]
            false_rows.append(
                {
                    "kind": "forbidden",
                    "case": "moves passing 8–15 mm away",
                    "delay_ms": delay_ms,
                    "seconds": ep.t[-1],
                    "false": _false(_console_onsets(ep, "forbidden", d, forbidden_base), events),
                }
            )
    finally:
        palpate.disconnect()
        reach.disconnect()

    for rate in (0.1, 0.2, 0.4):
        event = (MAX_DELAY_S - 0.06) / rate + 1.0
        onsets = delay_onsets(lambda t, r=rate: 0.06 + r * max(0.0, t - 1.0), event + 0.5, rng)
        rows.append(
            {"kind": "delay", "case": f"ramp {rate * 1e3:.0f} ms/s", "delay_ms": None, "lead_s": _lead(onsets, event)}
        )
    for base in (0.06, 0.2):
        duration = 120.0

        def steady(t: float, b: float = base) -> float:
            return b + float(rng.normal(0.0, 0.02)) + (0.1 if rng.random() < 0.01 else 0.0)

        onsets = delay_onsets(steady, duration, rng)
        false_rows.append(
            {
                "kind": "delay",
                "case": f"steady {base * 1e3:.0f} ms, 20 ms jitter, 1% +100 ms",
                "delay_ms": None,
                "seconds": duration,
                "false": len(onsets),
            }
        )
    for k in range(5):
        freeze = 2.0 + 0.37 * k
        onsets = video_onsets(freeze, freeze + 1.0, rng)
        shown_at_freeze = freeze - 0.08  # at most: the newest frame before it showed a state this old
        rows.append(
            {
                "kind": "video",
                "case": f"freeze {k + 1}",
                "delay_ms": None,
                "lead_s": _lead(onsets, shown_at_freeze + HOLD_S),
            }
        )
    onsets = video_onsets(None, 120.0, rng)
    false_rows.append(
        {"kind": "video", "case": "healthy video", "delay_ms": None, "seconds": 120.0, "false": len(onsets)}
    )

    def ms(v: float | None) -> str:
        return "no warning" if v is None else f"{v * 1e3:.0f}"

    print("\n| warning | episode that crosses | telemetry delay ms | lead time ms (≥ 200) |")
    print("| --- | --- | ---: | ---: |")
    for r in rows:
        d = "" if r["delay_ms"] is None else f"{r['delay_ms']:g}"
        print(f"| {r['kind']} | {r['case']} | {d} | {ms(r['lead_s'])} |")
    print(
        "\n| warning | episodes that don't cross | telemetry delay ms | minutes | false warnings | per minute (≤ 1) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for r in false_rows:
        minutes = r["seconds"] / 60
        d = "" if r["delay_ms"] is None else f"{r['delay_ms']:g}"
        print(f"| {r['kind']} | {r['case']} | {d} | {minutes:.1f} | {r['false']} | {r['false'] / minutes:.2f} |")
    out = {
        "host": platform.node(),
        "seconds": round(time.monotonic() - started, 1),
        "alert_config": {k: getattr(AlertConfig(), k) for k in AlertConfig.__dataclass_fields__},
        "crossing": rows,
        "not_crossing": false_rows,
    }
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(f"\nwrote {args.json} ({out['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

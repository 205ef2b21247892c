"""A host-jitter probe: a tiny fixed-rate loop beside the robot that records its own wake-up lateness.

It runs pinned to the robot's CPU, one real-time priority above the robot's (so the robot's own
work never delays it), and does nothing but sleep to absolute deadlines (default every 1 ms, about
1% of the CPU). When it wakes late it also reads how long it sat runnable in the guest's run queue
(``/proc/thread-self/schedstat``): that part is the guest's own doing — another task's
non-preemptible kernel work on the CPU (this kernel is built without full preemption), a
higher-priority task — and the rest is the host's: the virtual CPU was not running at all. A robot
stall counts as the host's only when the host held the probe up, at the same moment, for at least
``HOST_SHARE`` of the robot's lateness (``is_host_stall``); a stall of the robot's own making (its
work, its interpreter lock, its page faults, another process on its CPU) does not qualify.

The probe cannot tell every host stall: when the hypervisor takes the CPU while the probe is
already runnable (woken, waiting for the robot's work to be preempted), its wait counts as queued,
i.e. the guest's. A work stall carries its own evidence instead: the loop thread's CPU clock, which
on a paravirtualised guest (steal-time accounting) leaves out the time the hypervisor held the CPU.
When the robot, with work to do and nothing of higher priority but the probe on its CPU, did not
run for ``HOST_SHARE`` of its lateness, that time was the host's (``stall_is_hosts``).

Every gap longer than ``min_gap_s`` is appended to ``out`` at once, one JSON object per line
(``{"start_s": …, "gap_s": …, "queued_s": …}``, CLOCK_MONOTONIC seconds, the clock the robot's
records use), so a killed probe loses nothing; the last line, written on SIGINT/SIGTERM, holds the
totals.

    python -c "import sys; from telesurg.teleop.harness.hostprobe import main; sys.exit(main())" \
        --out probe.jsonl --cpu 1 --priority 11
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telesurg.teleop.robot.realtime import SchedClock

log = logging.getLogger("telesurg.hostprobe")

#: A robot stall is the host's when the probe was held up for at least this share of its lateness.
HOST_SHARE = 0.8
#: The probe's period: how much of a host stall it can miss at either end (s).
PROBE_SLACK_S = 0.001


@dataclass(frozen=True)
class ProbeConfig:
    """``period_s``: how often the probe wakes; ``min_gap_s``: lateness worth recording (s);
    ``cpu``: the CPU to pin to (None: any); ``priority``: SCHED_RR priority (0: normal scheduling)."""

    out: Path
    period_s: float = 0.001
    min_gap_s: float = 0.0005
    cpu: int | None = None
    priority: int = 0


@dataclass(frozen=True)
class Gap:
    """The probe's deadline was ``start_s`` and it ran ``gap_s`` late (CLOCK_MONOTONIC, s), of which
    it spent ``queued_s`` runnable in the guest's run queue (its ``schedstat`` run delay): held up
    by the guest itself — another task's non-preemptible kernel work on the CPU, say — not by the
    host. The rest, ``host_s``, is the time its virtual CPU was not running at all."""

    start_s: float
    gap_s: float
    queued_s: float = 0.0

    @property
    def end_s(self) -> float:
        return self.start_s + self.gap_s

    @property
    def host_s(self) -> float:
        return max(0.0, self.gap_s - self.queued_s)


def run(config: ProbeConfig, stop: Any = None) -> dict[str, float]:
    """Run until SIGINT/SIGTERM (or ``stop()`` returns true); returns the totals."""
    if config.cpu is not None:
        os.sched_setaffinity(0, {config.cpu})
    granted = False
    if config.priority > 0:
        try:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(config.priority))
            granted = True
        except OSError as exc:
            log.warning("hostprobe: real-time priority not granted (%s)", exc)
    stopping = [False]

    def _stop(signum: int, _frame: Any) -> None:
        stopping[0] = True

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _stop)
    gc.disable()  # the loop allocates almost nothing; a collection would be the probe's own gap
    clock, period, min_gap = time.monotonic, config.period_s, config.min_gap_s
    out = config.out.open("a", buffering=1)
    schedstat = SchedClock()
    queued = schedstat.read()[1]
    wakes = gaps = 0
    worst = 0.0
    started = deadline = clock()
    try:
        while not stopping[0] and not (stop is not None and stop()):
            deadline += period
            remaining = deadline - clock()
            if remaining > 0:
                time.sleep(remaining)
            now = clock()
            queued_before, queued = queued, schedstat.read()[1]
            wakes += 1
            late = now - deadline
            if late > min_gap:
                gaps += 1
                worst = max(worst, late)
                out.write(
                    f'{{"start_s": {deadline:.6f}, "gap_s": {late:.6f}, "queued_s": {queued - queued_before:.6f}}}\n'
                )
            if late > period:
                deadline = now
        totals = {
            "seconds": clock() - started,
            "wakes": wakes,
            "gaps": gaps,
            "worst_gap_s": worst,
            "cpu": -1 if config.cpu is None else config.cpu,
            "realtime_granted": granted,
        }
        out.write(json.dumps({"totals": totals}) + "\n")
        return totals
    finally:
        out.close()
        schedstat.close()


def read_gaps(path: Path) -> tuple[list[Gap], dict[str, Any]]:
    """The gaps a probe wrote, and its totals (empty if it was killed before writing them)."""
    gaps: list[Gap] = []
    totals: dict[str, Any] = {}
    if not path.exists():
        return gaps, totals
    for line in path.read_text().splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        if "totals" in item:
            totals = item["totals"]
        else:
            gaps.append(Gap(float(item["start_s"]), float(item["gap_s"]), float(item.get("queued_s", 0.0))))
    return gaps, totals


def host_gap(start_s: float, length_s: float, gaps: Iterable[Gap]) -> float:
    """How long the host held the probe up within [start_s, start_s + length_s] (s): the overlapping
    parts of its gaps, each counted for its host share (not the time it sat in the guest's run
    queue), added up (a long host stall can show as several gaps in a row)."""
    end_s = start_s + length_s
    total = 0.0
    for g in gaps:
        overlap = min(end_s, g.end_s) - max(start_s, g.start_s)
        if overlap > 0 and g.gap_s > 0:
            total += overlap * g.host_s / g.gap_s
    return total


def is_host_stall(start_s: float, length_s: float, nominal_s: float, gaps: Iterable[Gap]) -> bool:
    """Whether the host took this robot stall: the host held the probe up, at the same moment, for at
    least ``HOST_SHARE`` of the stall's lateness (its length beyond the nominal period, the quantity
    the probe measures of itself). Time the probe spent queued in the guest does not count: that is
    the guest's own doing (e.g. another process's non-preemptible kernel work on the robot's CPU,
    which a CPU of its own avoids), not the host's. The probe wakes every millisecond, so it can see up to one of
    its periods less than the robot lost; the window is widened by that much on each side."""
    lateness_s = length_s - nominal_s
    seen = host_gap(start_s - PROBE_SLACK_S, length_s + 2 * PROBE_SLACK_S, gaps)
    return seen >= HOST_SHARE * lateness_s


def stall_is_hosts(
    kind: str, start_s: float, length_s: float, nominal_s: float, gaps: Iterable[Gap], unexecuted_s: float = 0.0
) -> bool:
    """Whether a recorded robot stall (``kind`` ``"work"`` or ``"wait"``, see ``StallRecord``) was the
    host's: ``is_host_stall``. Both kinds can be: the probe runs one priority *above* the robot, so the
    robot's own work never holds it up — when the probe was held up through the robot's work, the
    CPU was taken from both. A work stall is the host's too when the loop did not run for
    ``HOST_SHARE`` of its lateness while it had work to do (``unexecuted_s``, see
    ``unexecuted_work_s``). An unknown kind (no stall record) is never the host's."""
    if kind not in ("work", "wait"):
        return False
    if kind == "work" and unexecuted_s >= HOST_SHARE * (length_s - nominal_s):
        return True
    return is_host_stall(start_s, length_s, nominal_s, gaps)


def unexecuted_work_s(stall: dict[str, Any]) -> float:
    """Of a recorded stall (``StallRecord`` as a dict), the time the loop thread was on its CPU with
    work to do and did not run (control + command + work, wall clock, less its CPU time and its
    run-queue wait); 0 when it slept meanwhile (a lock, a blocking call: its own doing) or the record
    has no CPU time (older recordings)."""
    cpu = stall.get("work_cpu_s", -1.0)
    if cpu is None or cpu < 0 or stall.get("work_blocked", False):
        return 0.0
    wall = stall["control_s"] + stall["command_s"] + stall["work_s"]
    return max(0.0, wall - cpu - stall.get("work_queued_s", 0.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hostprobe", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="JSON-lines file the gaps are appended to")
    parser.add_argument("--period", type=float, default=0.001, help="wake-up period (s, default 0.001)")
    parser.add_argument("--min-gap", type=float, default=0.0005, help="record lateness above this (s, default 0.0005)")
    parser.add_argument("--cpu", type=int, help="pin to this CPU")
    parser.add_argument("--priority", type=int, default=0, help="SCHED_RR priority (default 0: normal)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    cfg = ProbeConfig(Path(args.out), args.period, args.min_gap, args.cpu, args.priority)
    print(f"hostprobe: running (cpu {args.cpu}, priority {args.priority})", flush=True)
    totals = run(cfg)
    print(
        f"hostprobe: {totals['gaps']} gaps over {totals['seconds']:.1f} s, worst {totals['worst_gap_s'] * 1e3:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

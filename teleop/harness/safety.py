"""`telesurg safety`: the matrix of cells run in parallel (robots pinned), the report written."""

from __future__ import annotations

import os
import platform
import queue
import re
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from telesurg.teleop.harness.cells import Cell, full_matrix, quick_matrix, spec_cells
from telesurg.teleop.harness.report import cell_line, verdict, write_report
from telesurg.teleop.harness.runner import CellResult, run_cell

NEGATIVE_CONTROLS = {"watchdog": "test_disable_watchdog", "speed": "test_disable_speed_limit"}


def default_jobs() -> int:
    """Cells in parallel: each cell is a robot (a real-time loop that must keep its 2 ms period) and a
    console, so one cell per two cores, leaving one core spare."""
    return max(1, ((os.cpu_count() or 1) - 1) // 2)


def robot_cpus(jobs: int) -> list[int | None]:
    """The CPU each of ``jobs`` parallel robots is pinned to: the highest ones this process may use
    (None for all when there are not more CPUs than robots: then nothing is pinned)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) <= jobs:
        return [None] * jobs
    return list(cpus[-jobs:])


def select_cells(
    quick: bool = False,
    only: list[str] | None = None,
    links: list[str] | None = None,
    tasks: list[str] | None = None,
) -> list[Cell]:
    """The cells of a run: ``links`` (link specs, one cell per spec and task, default Reach) instead
    of the matrix, else the quick or full matrix; narrowed to names matching ``only`` (regexes)."""
    if links:
        cells = [cell for spec in links for cell in spec_cells(spec, tuple(tasks or ("Reach",)))]
    else:
        cells = quick_matrix() if quick else full_matrix()
        if tasks:
            cells = [c for c in cells if c.task in tasks]
    if only:
        patterns = [re.compile(p) for p in only]
        cells = [c for c in cells if any(p.search(c.name) for p in patterns)]
    if not cells:
        raise ValueError(f"no cell matches {only or tasks}")
    return cells


def run_safety(
    out: Path,
    quick: bool = False,
    jobs: int | None = None,
    only: list[str] | None = None,
    negative: list[str] | None = None,
    log=print,
    links: list[str] | None = None,
    tasks: list[str] | None = None,
) -> int:
    """Run the matrix (or the cells of ``links``), write the report into ``out``; returns 0 when
    every invariant held."""
    cells = select_cells(quick, only, links, tasks)
    controls = tuple(NEGATIVE_CONTROLS[n] for n in (negative or []))
    jobs = jobs or default_jobs()
    started = time.monotonic()
    started_at = time.strftime("%Y-%m-%d %H:%M:%S")
    results: list[CellResult] = []
    log(f"safety: {len(cells)} cells, {jobs} at a time, report in {out}")
    # Each cell's robot (and the host probe beside it) gets a CPU of its own, the highest ones.
    # Everything else (consoles, media processes, this process) runs on the remaining CPUs.
    cpus: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    pinned = robot_cpus(jobs)
    for cpu in pinned:
        cpus.put(cpu)
    affinity = os.sched_getaffinity(0)
    # Isolated where two CPUs or more are left for the rest, or where no cell runs the video: on a
    # two-core machine a cell's console, media process and renderer squeezed onto one CPU ran the
    # video at 4–6 fps (measured with `telesurg soak --pinning isolate`); there the robot's
    # real-time priority keeps it first. Isolated, no other process's kernel work (process start
    # and exit, large mappings), which this PREEMPT_NONE kernel does not preempt, runs on the
    # robot's CPU.
    isolate = None not in pinned and (len(affinity) - len(pinned) >= 2 or not any(c.video for c in cells))
    if isolate:
        os.sched_setaffinity(0, affinity - set(pinned))

    def run(cell: Cell) -> CellResult:
        cpu = cpus.get()
        try:
            return run_cell(cell, out / "cells" / cell.name.replace("/", "_"), controls, robot_cpu=cpu)
        finally:
            cpus.put(cpu)

    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(run, c): c for c in cells}
            for done, fut in enumerate(as_completed(futures), start=1):
                result = fut.result()
                results.append(result)
                elapsed = time.monotonic() - started
                eta = elapsed / done * (len(cells) - done)
                line = cell_line(result.to_dict())
                log(f"[{done:3d}/{len(cells)}] {line}  elapsed {elapsed / 60:.1f} min, ETA {eta / 60:.1f} min")
    finally:
        os.sched_setaffinity(0, affinity)
    order = {c.name: i for i, c in enumerate(cells)}
    results.sort(key=lambda r: order[r.cell.name])
    meta = {
        "matrix": "quick" if quick else "full",
        "cells": len(cells),
        "jobs": jobs,
        "wall_s": time.monotonic() - started,
        "started": started_at,
        "negative_controls": list(negative or []),
        "robot_cpus": [c for c in pinned if c is not None],
        "isolated": isolate,
        "machine": f"{os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}",
    }
    summary = write_report(out, results, meta)
    ok = verdict(results)
    failed = [r.cell.name for r in results if not r.ok]
    log(f"safety: {'every invariant held' if ok else 'FAILED: ' + ', '.join(failed)}; report {summary}")
    return 0 if ok else 1

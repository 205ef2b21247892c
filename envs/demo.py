"""The headless demo: each task's scripted expert solves it once; a table and one PNG per task.

telesurg demo --out demo_out
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
from PIL import Image

from telesurg.envs import env_id
from telesurg.envs.experts import make_expert, run_episode
from telesurg.envs.tasks import TASKS


@dataclass
class DemoRow:
    task: str
    success: bool
    steps: int
    sim_time_s: float
    max_force_N: float
    image: Path


def run_demo(
    out_dir: Path, seed: int = 0, width: int = 640, height: int = 480, tasks: list[str] | None = None, log=print
) -> list[DemoRow]:
    """Run every task (or ``tasks``) once with its expert; save the final endoscope view of each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = tasks or [t.name for t in TASKS]
    rows = []
    for i, name in enumerate(names, 1):
        t0 = time.perf_counter()
        env = gym.make(env_id(name), render_mode="rgb_array", render_width=width, render_height=height)
        try:
            result = run_episode(env, make_expert(env), seed=seed)
            image = out_dir / f"{name.lower()}.png"
            Image.fromarray(env.render()).save(image)
            period = env.unwrapped.control_period_s
        finally:
            env.close()
        row = DemoRow(name, result["success"], result["steps"], result["steps"] * period, result["max_force_N"], image)
        rows.append(row)
        outcome = "solved" if row.success else "NOT solved"
        log(f"[{i}/{len(names)}] {name}: {outcome} in {row.steps} steps ({time.perf_counter() - t0:.1f} s)")
    return rows


def format_table(rows: list[DemoRow]) -> str:
    lines = [f"{'task':<10}{'success':>9}{'steps':>7}{'sim time s':>12}{'max force N':>13}  image", "-" * 72]
    for r in rows:
        ok = "yes" if r.success else "no"
        lines.append(f"{r.task:<10}{ok:>9}{r.steps:>7}{r.sim_time_s:>12.2f}{r.max_force_N:>13.2f}  {r.image}")
    return "\n".join(lines)

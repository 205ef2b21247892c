"""Where a control step's time goes: each task under its scripted expert, profiled with cProfile.

For each task: warm up, then profile ``--steps`` env steps (resetting when an episode ends, as
training does) and print the functions with the most time of their own, as microseconds per control
step, with call counts per control step; ``--json`` writes the same. cProfile adds its own cost to
every Python call, so the figures overstate Python against pybullet's C calls: compare profiles
with each other, and take throughput from ``bench/env_throughput.py``.

    .venv/bin/python bench/env_profile.py                       # every task, about 1 min
    .venv/bin/python bench/env_profile.py --tasks Retract --top 20
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
from pathlib import Path

TASKS = ("Reach", "Palpate", "Retract", "Transfer", "Trace")


def profile(task: str, steps: int, warmup: int, top: int) -> dict:
    import gymnasium as gym

    from telesurg.envs import env_id
    from telesurg.envs.experts import make_expert

    env = gym.make(env_id(task))
    expert = make_expert(env)
    obs, _ = env.reset(seed=0)
    expert.reset()

    def run(n: int) -> None:
        nonlocal obs
        for _ in range(n):
            obs, _, terminated, truncated, _ = env.step(expert.action(obs))
            if terminated or truncated:
                obs, _ = env.reset()
                expert.reset()

    run(warmup)
    prof = cProfile.Profile()
    prof.enable()
    run(steps)
    prof.disable()
    env.close()
    stats = pstats.Stats(prof)
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    rows = []
    for (file, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        where = name if file == "~" else f"{Path(file).name}:{line}({name})"
        rows.append({"function": where, "calls_per_step": calls / steps, "own_us_per_step": own / steps * 1e6,
                     "cumulative_us_per_step": cumulative / steps * 1e6})  # fmt: skip
    rows.sort(key=lambda r: -r["own_us_per_step"])
    return {"task": task, "steps": steps, "total_us_per_step": total / steps * 1e6, "top": rows[:top]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument("--steps", type=int, default=1500, help="profiled control steps per task")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--top", type=int, default=10, help="functions shown per task")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    out = []
    for task in args.tasks:
        result = profile(task, args.steps, args.warmup, args.top)
        out.append(result)
        print(f"\n{task}: {result['total_us_per_step']:.0f} µs per control step (under cProfile)")
        print(f"{'own µs/step':>12s} {'cum µs/step':>12s} {'calls/step':>11s}  function")
        for r in result["top"]:
            print(
                f"{r['own_us_per_step']:12.1f} {r['cumulative_us_per_step']:12.1f} {r['calls_per_step']:11.1f}  "
                f"{r['function']}"
            )
    if args.json:
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "tasks": out}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

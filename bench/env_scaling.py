"""Env throughput against the number of worker processes: gymnasium's ``AsyncVectorEnv`` (one
subprocess per env) with 1 and 2 workers, uniformly random actions, next to one env stepped in this
process. Reported per task: env steps per wall second (all workers together) and the per-worker
efficiency, throughput(n) / (n × throughput of one worker). A worker's step also pays the pipe to
it (actions out; observations, rewards and the info dict back), so one worker is slower than the
same env in-process; that column is beside it. Scaling stops at the core count: on the
2-core machine, 2 workers is the most that can scale (and the parent process that steps them shares
those cores).

    .venv/bin/python bench/env_scaling.py                      # Reach and Trace, about 1 min
    .venv/bin/python bench/env_scaling.py --tasks Palpate --workers 1 2 4

prints a table and writes bench/env_scaling.json (``--json`` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _make(env_id: str):
    def make():
        import gymnasium as gym

        from telesurg import envs  # noqa: F401  (registers the ids)

        return gym.make(env_id)

    return make


def measure(env_id: str, workers: int, steps: int, seed: int = 0) -> float:
    """Env steps per wall second with ``workers`` subprocess envs (0: one env in this process)."""
    import gymnasium as gym
    import numpy as np

    if workers == 0:
        env = _make(env_id)()
        env.reset(seed=seed)
        env.action_space.seed(seed)
        actions = [env.action_space.sample() for _ in range(steps)]
        t0 = time.perf_counter()
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
        rate = steps / (time.perf_counter() - t0)
        env.close()
        return rate
    venv = gym.vector.AsyncVectorEnv([_make(env_id) for _ in range(workers)])
    try:
        venv.reset(seed=seed)
        venv.action_space.seed(seed)
        batches = max(1, steps // workers)
        actions = [venv.action_space.sample() for _ in range(batches)]
        for a in actions[:20]:  # warm up (autoreset, pipes)
            venv.step(a)
        t0 = time.perf_counter()
        for a in actions:
            venv.step(np.asarray(a))
        return batches * workers / (time.perf_counter() - t0)
    finally:
        venv.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="+", default=["Reach", "Trace"])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=3000, help="env steps per measurement (all workers)")
    ap.add_argument("--json", type=Path, default=HERE / "env_scaling.json")
    args = ap.parse_args(argv)
    rows = []
    for task in args.tasks:
        env_id = f"telesurg/{task}-v0"
        single = measure(env_id, 0, args.steps)
        rates = {n: measure(env_id, n, args.steps) for n in args.workers}
        one = rates.get(1, single)
        for n, rate in rates.items():
            rows.append({"task": task, "workers": n, "steps_per_s": rate, "in_process_steps_per_s": single,
                         "per_worker_efficiency": rate / (n * one)})  # fmt: skip
    print(f"{'task':<10}{'workers':>8}{'env steps/s':>13}{'per-worker efficiency':>23}{'in-process':>12}")
    for r in rows:
        print(f"{r['task']:<10}{r['workers']:>8}{r['steps_per_s']:>13.0f}{r['per_worker_efficiency']:>23.2f}"
              f"{r['in_process_steps_per_s']:>12.0f}")  # fmt: skip
    out = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
        "steps": args.steps,
        "rows": rows,
        "command": "bench/env_scaling.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

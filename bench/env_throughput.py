"""Environment throughput: every telesurg task next to panda-gym's PandaReach-v3.

Each environment runs in its own process, in interleaved rounds, stepping a fixed sequence of
uniformly random actions (resetting when an episode ends, as training does). Reported per env:
env steps per wall-clock second and simulated seconds per wall-clock second (steps × control
period / wall time), medians over rounds, and the ratio of the latter to PandaReach-v3 in the same
run. Both simulate physics at 2 ms steps; telesurg's control period is 40 ms, panda-gym's too.

    make bench        # = baseline venv + python bench/env_throughput.py --baseline-python .venv-bench/bin/python

prints a table and writes bench/env_throughput.json. panda-gym lives in its own virtual environment
(.venv-bench, same pinned pybullet/numpy/gymnasium) because it is not a telesurg dependency.

Targets (issue 2): Reach at least 2× PandaReach-v3 in simulated seconds per wall second, every task
at least 1×.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

BASELINE = "PandaReach-v3"
TASKS = ("Reach", "Palpate", "Retract", "Transfer", "Trace")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def worker(env_id: str, steps: int, warmup: int, seed: int, policy: str) -> dict[str, float]:
    """Run one measurement in this process; returns steps/s and simulated s per wall s."""
    import gymnasium as gym
    import numpy as np

    if env_id == BASELINE:
        import panda_gym  # noqa: F401  (registers the baseline)
    else:
        sys.path.insert(0, str(ROOT))
        from telesurg import envs  # noqa: F401  (registers telesurg ids)

    env = gym.make(env_id)
    base = env.unwrapped
    period = base.sim.dt if env_id == BASELINE else base.control_period_s
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    actions = rng.uniform(low, high, size=(warmup + steps, *env.action_space.shape)).astype(np.float32)

    expert = None
    if policy == "expert" and env_id != BASELINE:
        from telesurg.envs.experts import make_expert

        expert = make_expert(env)
    obs, _ = env.reset(seed=seed)

    def run(start: int, count: int) -> None:
        nonlocal obs
        for i in range(start, start + count):
            obs, _, terminated, truncated, _ = env.step(actions[i] if expert is None else expert.action(obs))
            if terminated or truncated:
                obs, _ = env.reset()
                if expert is not None:
                    expert.reset()

    run(0, warmup)
    t0 = time.perf_counter()
    run(warmup, steps)
    wall = time.perf_counter() - t0
    env.close()
    return {"steps_per_s": steps / wall, "sim_s_per_wall_s": steps * period / wall, "control_period_s": period}


def baseline_available(python: str) -> bool:
    probe = subprocess.run([python, "-c", "import panda_gym"], capture_output=True, check=False)
    return probe.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3000, help="measured env steps per env and round")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured steps first")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians are reported)")
    parser.add_argument("--out", type=Path, help="JSON output path (default: bench/env_throughput[_expert].json)")
    parser.add_argument(
        "--baseline-python",
        default=str(ROOT / ".venv-bench" / "bin" / "python"),
        help="interpreter with panda-gym installed (default: .venv-bench/bin/python, made by `make bench`)",
    )
    parser.add_argument(
        "--policy",
        choices=("random", "expert"),
        default="random",
        help="telesurg actions: uniform random (default; the comparison with the baseline) or each task's "
        "scripted expert (contact-heavy; the baseline stays random)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.warmup, args.seed, args.policy)))
        return 0

    if args.out is None:
        args.out = HERE / ("env_throughput.json" if args.policy == "random" else "env_throughput_expert.json")
    env_ids = [f"telesurg/{t}-v0" for t in TASKS]
    if Path(args.baseline_python).exists() and baseline_available(args.baseline_python):
        env_ids.insert(0, BASELINE)
    else:
        print(
            f"note: no panda-gym at {args.baseline_python}, so {BASELINE} is skipped and no ratios are computed.\n"
            "      `make bench` sets it up in .venv-bench.",
            file=sys.stderr,
        )
    samples: dict[str, list[dict[str, float]]] = {e: [] for e in env_ids}
    total = args.rounds * len(env_ids)
    done = 0
    for rnd in range(args.rounds):
        for env_id in env_ids:
            python = args.baseline_python if env_id == BASELINE else sys.executable
            cmd = [python, __file__, "--worker", env_id]
            cmd += [
                "--steps",
                str(args.steps),
                "--warmup",
                str(args.warmup),
                "--seed",
                str(rnd),
                "--policy",
                args.policy,
            ]
            out = subprocess.run(
                cmd, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONHASHSEED": "0"}
            )
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
                raise SystemExit(f"worker for {env_id} failed (exit {out.returncode})")
            samples[env_id].append(json.loads(out.stdout.strip().splitlines()[-1]))
            done += 1
            print(
                f"[{done}/{total}] round {rnd + 1} {env_id}: {samples[env_id][-1]['sim_s_per_wall_s']:.1f} sim s/s",
                file=sys.stderr,
            )

    rows = []
    base_sim = statistics.median(s["sim_s_per_wall_s"] for s in samples[BASELINE]) if BASELINE in samples else None
    for env_id in env_ids:
        sims = [s["sim_s_per_wall_s"] for s in samples[env_id]]
        row = {
            "env": env_id,
            "control_period_s": samples[env_id][0]["control_period_s"],
            "steps_per_s": statistics.median(s["steps_per_s"] for s in samples[env_id]),
            "sim_s_per_wall_s": statistics.median(sims),
            "sim_s_per_wall_s_min": min(sims),
            "sim_s_per_wall_s_max": max(sims),
        }
        if base_sim is not None:
            # Per-round ratios pair each run with the baseline measured next to it.
            ratios = [
                s["sim_s_per_wall_s"] / b["sim_s_per_wall_s"]
                for s, b in zip(samples[env_id], samples[BASELINE], strict=True)
            ]
            row["ratio_vs_baseline"] = statistics.median(ratios)
            row["target"] = None if env_id == BASELINE else (2.0 if env_id.endswith("/Reach-v0") else 1.0)
            row["meets_target"] = None if row["target"] is None else row["ratio_vs_baseline"] >= row["target"]
        rows.append(row)

    header = f"{'env':<26}{'period ms':>10}{'steps/s':>10}{'sim s/s':>10}{'min–max':>14}{'× Panda':>9}{'target':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        ratio = f"{r['ratio_vs_baseline']:.2f}" if "ratio_vs_baseline" in r else "-"
        target = f"≥{r['target']:.0f}×" if r.get("target") else "-"
        spread = f"{r['sim_s_per_wall_s_min']:.1f}–{r['sim_s_per_wall_s_max']:.1f}"
        print(
            f"{r['env']:<26}{r['control_period_s'] * 1000:>10.0f}{r['steps_per_s']:>10.0f}"
            f"{r['sim_s_per_wall_s']:>10.1f}{spread:>14}{ratio:>9}{target:>8}"
        )
    result = {
        "benchmark": "env_throughput",
        "command": "python bench/env_throughput.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "steps": args.steps,
        "rounds": args.rounds,
        "policy": "uniform random actions" if args.policy == "random" else "scripted experts (baseline: random)",
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

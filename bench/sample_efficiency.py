"""Sample efficiency of pretraining: environment steps to 90% evaluation success with a policy
pretrained on scripted-expert demonstrations and from scratch, same training configuration
otherwise, three seeds each, on Palpate and Retract (issue 20's study; target ≥ 5× fewer steps).

Per task: one demonstration dataset (``telesurg dataset build``, 300 expert episodes with the
noise of the task's shipped config), per seed a clone (``telesurg pretrain``) and two runs of
``telesurg train`` with the task's PPO config: ``--init`` the clone, and from scratch. Every run
evaluates 20 episodes every 5,000 steps and stops at the first evaluation at ≥ 90% success
(``eval.stop_at_success``). Pretrained runs get 100,000 steps; from-scratch runs get at least 10× the
slowest pretrained run's steps to 90% (``--budget-factor``), and one that does not get there reports
"> budget", which makes the ratio a lower bound.

Resumable: each run writes ``result.json`` in its folder when it ends and is skipped next time; an
interrupted run is continued with ``telesurg train --resume``. Two runs go at once (``--jobs``).

    .venv/bin/python bench/sample_efficiency.py                 # about an hour on two cores
    .venv/bin/python bench/sample_efficiency.py --tasks retract --seeds 0

prints a table and writes bench/sample_efficiency.json and bench/sample_efficiency.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TELESURG = [sys.executable, "-m", "telesurg.teleop.cli"]
NOISE = {"palpate": 0.05, "retract": 0.1}
THRESHOLD = 0.9
PRETRAINED_BUDGET = 100_000
MIN_SCRATCH_BUDGET = 200_000


def run(cmd: list[str], log: Path) -> None:
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=True)


def config_of(task: str) -> str:
    return f"launch/train/{task}_ppo.toml"


def dataset(task: str, work: Path) -> Path:
    out = work / f"demos_{task}"
    if not (out / "meta/info.json").is_file():
        run([*TELESURG, "dataset", "build", str(out), "--experts", "300", "--expert-noise", str(NOISE[task]),
             "--tasks", task.capitalize(), "--overwrite"], work / f"demos_{task}.log")  # fmt: skip
    return out


def train_run(task: str, seed: int, mode: str, budget: int, work: Path) -> dict:
    """One training run to 90% (or the budget); its result.json, written when it ends."""
    out = work / f"{task}_{mode}_s{seed}"
    result_path = out / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    log = work / f"{task}_{mode}_s{seed}.log"
    overrides = [
        f"seed={seed}",
        f'out="{out}"',
        f"total_timesteps={budget}",
        "eval.every_steps=5000",
        "eval.episodes=20",
        "eval.final_episodes=0",
        f"eval.stop_at_success={THRESHOLD}",
        "checkpoint.every_steps=10000",
    ]
    start = time.monotonic()
    if (out / "config.toml").is_file():
        run([*TELESURG, "train", "--resume", str(out)], log)
    else:
        if mode == "pretrained":
            clone = work / f"{task}_clone_s{seed}"
            if not (clone / "card.json").is_file():
                run([*TELESURG, "pretrain", config_of(task), "--dataset", str(dataset(task, work)), "--out", str(clone),
                     "--set", f"seed={seed}"], log)  # fmt: skip
            overrides.append(f'init="{clone}"')
        sets = [arg for o in overrides for arg in ("--set", o)]
        run([*TELESURG, "train", config_of(task), *sets], log)
    curve = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    first = next((r for r in curve if r["success_rate"] >= THRESHOLD), None)
    result = {
        "task": task,
        "mode": mode,
        "seed": seed,
        "budget": budget,
        "steps_to_90": first["timesteps"] if first else None,
        "wall_s_to_90": first["wall_s"] if first else None,
        "run_wall_s": round(time.monotonic() - start, 1),
        "curve": [[r["timesteps"], r["success_rate"]] for r in curve],
    }
    result_path.write_text(json.dumps(result, indent=1) + "\n")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=["palpate", "retract"], choices=sorted(NOISE))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--budget-factor", type=float, default=10.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--work", default=str(ROOT / "runs" / "sample_efficiency"))
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for task in args.tasks:
        dataset(task, work)
    with ThreadPoolExecutor(args.jobs) as pool:
        pre = list(pool.map(lambda ts: train_run(*ts, "pretrained", PRETRAINED_BUDGET, work),
                            [(t, s) for t in args.tasks for s in args.seeds]))  # fmt: skip
        budgets = {}
        for task in args.tasks:
            steps = [r["steps_to_90"] for r in pre if r["task"] == task]
            slowest = max((s if s is not None else PRETRAINED_BUDGET) for s in steps)
            budgets[task] = max(MIN_SCRATCH_BUDGET, int(args.budget_factor * max(slowest, 5000)))
        scratch = list(pool.map(lambda ts: train_run(*ts, "scratch", budgets[ts[0]], work),
                                [(t, s) for t in args.tasks for s in args.seeds]))  # fmt: skip
    rows = []
    print(f"{'task':<9}{'seed':>5}{'pretrained steps to 90%':>25}{'scratch steps to 90%':>22}{'ratio':>14}")
    for task in args.tasks:
        for seed in args.seeds:
            p = next(r for r in pre if (r["task"], r["seed"]) == (task, seed))
            s = next(r for r in scratch if (r["task"], r["seed"]) == (task, seed))
            p_steps, s_steps = p["steps_to_90"], s["steps_to_90"]
            scratch_steps = s_steps if s_steps is not None else s["budget"]
            # A clone already at 90% before any fine-tuning needs no env steps: the ratio is unbounded.
            ratio = None if p_steps is None or p_steps == 0 else scratch_steps / p_steps
            lower = s_steps is None
            if p_steps == 0:
                shown = "inf (clone)"
            elif ratio is None:
                shown = "-"
            else:
                shown = (">" if lower else "") + f"{ratio:.1f}"
            rows.append({"task": task, "seed": seed, "pretrained": p, "scratch": s, "ratio": ratio,
                         "ratio_is_lower_bound": lower, "clone_alone_reached": p_steps == 0})  # fmt: skip
            print(f"{task:<9}{seed:>5}{p_steps if p_steps is not None else '> budget':>25}"
                  f"{s_steps if s_steps is not None else '> ' + format(s['budget'], ','):>22}{shown:>14}")  # fmt: skip
    out = {
        "benchmark": "sample_efficiency",
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "threshold": THRESHOLD,
        "budgets": budgets,
        "rows": rows,
    }
    (HERE / "sample_efficiency.json").write_text(json.dumps(out, indent=1) + "\n")
    plot(rows, HERE / "sample_efficiency.png")
    return 0


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in rows})
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for r in (r for r in rows if r["task"] == task):
            for mode, color in (("pretrained", "tab:blue"), ("scratch", "tab:orange")):
                curve = r[mode]["curve"]
                ax.plot([c[0] for c in curve], [c[1] for c in curve], color=color, alpha=0.8,
                        label=mode if r["seed"] == rows[0]["seed"] else None)  # fmt: skip
        ax.axhline(THRESHOLD, color="grey", linestyle=":")
        ax.set_title(f"{task.capitalize()}: evaluation success (20 episodes) vs env steps")
        ax.set_xlabel("environment steps")
        ax.set_ylabel("success rate")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    raise SystemExit(main())

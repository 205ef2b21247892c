"""Training throughput: SB3 PPO steps per second on telesurg Reach with 1 and 2 envs and on two
contact tasks (Palpate, Trace) with 1 env, next to SB3 PPO on CartPole-v1 with the same network and
hyperparameters (the framework-overhead reference), plus the wall time to 95% Reach success of the
shipped PPO policy. (Issue 19's target: ≥ 0.75× CartPole on ReachDense and on a contact task.)

Each configuration trains in its own process, in interleaved rounds (noise on these machines is
±15%); each round builds the model, warms up one rollout, then times ``learn(steps)``. Reported:
median training steps per wall second and its ratio to CartPole in the same run.

    .venv/bin/python bench/train_throughput.py                  # about 5 minutes
    .venv/bin/python bench/train_throughput.py --time-to-success  # also retrains Reach PPO from scratch

prints a table and writes bench/train_throughput.json. The time to 95% success comes from the
shipped policy's model card (its training curve records the wall time of every evaluation), and
with ``--time-to-success`` from a fresh run of ``telesurg train launch/train/reach_ppo.toml``.
Target (issue 3): at most 15 minutes on the 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONFIG = ROOT / "launch" / "train" / "reach_ppo.toml"
SHIPPED = ROOT / "assets" / "policies" / "reach_ppo"
CASES = {
    "Reach, 1 env": ("telesurg/ReachDense-v0", 1),
    "Reach, 2 envs (subprocesses)": ("telesurg/ReachDense-v0", 2),
    "Palpate (contact), 1 env": ("telesurg/PalpateDense-v0", 1),
    "Trace (contact), 1 env": ("telesurg/TraceDense-v0", 1),
    "CartPole-v1, 1 env (reference)": ("CartPole-v1", 1),
}
THRESHOLD = 0.95


def worker(env_id: str, n_envs: int, steps: int) -> float:
    """Train PPO for ``steps`` after a one-rollout warm-up; returns training steps per second."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    sys.path.insert(0, str(ROOT))
    from telesurg.policies.config import load_config
    from telesurg.policies.train import make_vec_env as make_telesurg_vec_env

    torch.set_num_threads(1)
    cfg = tomllib.loads(CONFIG.read_text())
    hyper = dict(cfg["hyperparams"])
    hyper["n_steps"] = hyper["n_steps"] // n_envs  # the same rollout size in total
    if env_id.startswith("telesurg/"):
        # The real training stack: telesurg's env factory, SubprocVecEnv when n_envs > 1, VecNormalize.
        train_cfg = load_config(CONFIG, [f"n_envs={n_envs}", f'env_id="{env_id}"'])
        venv, policy = make_telesurg_vec_env(train_cfg), "MultiInputPolicy"
    else:
        venv, policy = VecNormalize(make_vec_env(env_id, n_envs=n_envs, seed=0), gamma=hyper["gamma"]), "MlpPolicy"
    model = PPO(policy, venv, policy_kwargs={"net_arch": cfg["net_arch"]}, seed=0, device="cpu", **hyper)
    model.learn(hyper["n_steps"] * n_envs)  # warm-up: one rollout and one update
    t0 = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    rate = (model.num_timesteps - hyper["n_steps"] * n_envs) / (time.perf_counter() - t0)
    venv.close()
    return rate


def run_case(name: str, steps: int) -> float:
    env_id, n = CASES[name]
    out = subprocess.run(
        [sys.executable, __file__, "--worker", env_id, str(n), str(steps)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return float(out.stdout.strip().splitlines()[-1])


def time_to_success_from_card(card_path: Path) -> dict | None:
    """First evaluation at or above the threshold in a shipped card's training curve."""
    if not card_path.is_file():
        return None
    card = json.loads(card_path.read_text())
    for point in card["curve"]:
        steps, success = point[0], point[1]
        if success >= THRESHOLD:
            wall = point[2] if len(point) > 2 else None
            return {"timesteps": steps, "wall_s": wall, "source": str(card_path.relative_to(ROOT))}
    return None


def time_to_success_fresh() -> dict:
    """Retrain the shipped configuration from scratch and report when evaluation first hits 95%."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "telesurg.teleop.cli",
                "train",
                str(CONFIG),
                "--out",
                str(out),
                "--set",
                "eval.final_episodes=0",
            ],
            check=True,
            cwd=ROOT,
        )
        total = time.perf_counter() - t0
        summary = json.loads((out / "summary.json").read_text())
    first = summary["first_reached"]
    return {
        "timesteps": first["timesteps"] if first else None,
        "wall_s": first["wall_s"] if first else None,
        "train_wall_s": first["train_wall_s"] if first else None,
        "run_wall_s": round(total, 1),
        "source": "fresh run of launch/train/reach_ppo.toml",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8192, help="timed training steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--time-to-success", action="store_true", help="also retrain Reach PPO and time it")
    parser.add_argument("--out", default=str(HERE / "train_throughput.json"))
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        env_id, n, steps = args.worker
        print(worker(env_id, int(n), int(steps)))
        return

    rates: dict[str, list[float]] = {name: [] for name in CASES}
    for r in range(args.rounds):
        for name in CASES:
            rates[name].append(run_case(name, args.steps))
            print(f"round {r + 1}/{args.rounds}: {name}: {rates[name][-1]:.0f} steps/s", flush=True)
    ref = "CartPole-v1, 1 env (reference)"
    ratios = {name: statistics.median(a / b for a, b in zip(rates[name], rates[ref], strict=True)) for name in CASES}
    medians = {name: statistics.median(v) for name, v in rates.items()}
    card = time_to_success_from_card(SHIPPED / "card.json")
    fresh = time_to_success_fresh() if args.time_to_success else None

    print()
    print(f"{'configuration':<34}{'train steps/s':>15}{'× CartPole':>12}")
    for name in CASES:
        print(f"{name:<34}{medians[name]:>15.0f}{ratios[name]:>12.2f}")
    print()
    for label, t in (("shipped reach_ppo card", card), ("fresh run", fresh)):
        if t:
            wall = f"{t['wall_s'] / 60:.1f} min" if t.get("wall_s") is not None else "?"
            print(f"time to {THRESHOLD:.0%} Reach success ({label}): {wall} at {t['timesteps']:,} steps")

    result = {
        "benchmark": "train_throughput",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "settings": {"steps": args.steps, "rounds": args.rounds, "config": str(CONFIG.relative_to(ROOT))},
        "steps_per_s": {name: {"median": medians[name], "rounds": rates[name]} for name in CASES},
        "ratio_to_cartpole": ratios,
        "time_to_95pct_reach": {"shipped_card": card, "fresh_run": fresh},
        "target_minutes": 15,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()

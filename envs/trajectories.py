"""Reference trajectories: what each task's scripted expert does, step by step, recorded once and
compared against later, so a change meant to make the simulation faster is shown to leave its
physics alone (issue 19: contact force within 1 mN, the same terminations and successes).

A trajectory is one seeded episode of the task's scripted expert (``telesurg.envs.experts``), its
actions kept; the check replays those actions on today's physics (open loop). Not the expert again
(closed loop): its force controller amplifies any difference — a 1e-10 m change in where a contact
point is computed (pybullet's own query is that noisy) became 80 mN within 36 periods — so only a
bit-for-bit change could pass, while a faithful closed-form contact could not. Per control period it
keeps the tool tip (m, base frame, as observed: float32), the contact force after the period and the
largest one within it (N), the jaw opening, whether the episode terminated, and success.

    python -m telesurg.envs.trajectories --record tests/envs/data/expert_trajectories.npz
    python -m telesurg.envs.trajectories --check tests/envs/data/expert_trajectories.npz

``--check`` prints one line per difference beyond the tolerances and exits non-zero if any."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The tasks and seeds recorded by default: every task, three seeds each.
TASKS = ("Reach", "Palpate", "Retract", "Transfer", "Trace")
TASK_SEEDS: tuple[tuple[str, int], ...] = tuple((t, s) for t in TASKS for s in (0, 1, 2))
#: Control periods per trajectory: past success too (the expert holds its result: more contact);
#: the episode ends earlier only when it terminates or is truncated.
MAX_STEPS = 150

FIELDS = ("action", "tip_m", "force_N", "force_max_N", "jaw", "terminated", "success")


@dataclass(frozen=True)
class Tolerances:
    """Allowed differences: force (N, after the period and the largest within it), tip (m), jaw."""

    force_N: float = 1e-3
    tip_m: float = 1e-5
    jaw: float = 1e-4


def expert_trajectory(
    task: str, seed: int, max_steps: int = MAX_STEPS, actions: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """One seeded episode of ``task``'s scripted expert: ``max_steps`` periods, or fewer when it
    terminates or is truncated. With ``actions`` (a recorded trajectory's), those are replayed
    instead of asking the expert (open loop)."""
    import gymnasium as gym

    from telesurg.envs import env_id
    from telesurg.envs.experts import make_expert

    env = gym.make(env_id(task))
    try:
        expert = make_expert(env)
        layout = env.unwrapped.obs_layout
        obs, _ = env.reset(seed=seed)
        expert.reset()
        rows: dict[str, list] = {name: [] for name in FIELDS}
        for i in range(max_steps if actions is None else len(actions)):
            action = expert.action(obs) if actions is None else actions[i]
            rows["action"].append(np.asarray(action, dtype=np.float32))
            obs, _, terminated, truncated, info = env.step(action)
            rows["tip_m"].append(layout.get(obs["observation"], "tip_pos_m").astype(np.float64))
            rows["force_N"].append(float(info["contact_force_N"]))
            rows["force_max_N"].append(float(info["contact_force_max_N"]))
            rows["jaw"].append(float(layout.get(obs["observation"], "jaw_opening")[0]))
            rows["terminated"].append(bool(terminated))
            rows["success"].append(bool(info["is_success"]))
            if terminated or truncated:
                break
        return {name: np.asarray(values) for name, values in rows.items()}
    finally:
        env.close()


def record(path: Path, task_seeds: tuple[tuple[str, int], ...] = TASK_SEEDS) -> None:
    """Record every (task, seed) into one ``.npz`` (keys ``TASK/SEED/FIELD``), written atomically."""
    arrays: dict[str, np.ndarray] = {}
    for task, seed in task_seeds:
        print(f"recording {task} seed {seed}…", flush=True)
        for name, values in expert_trajectory(task, seed).items():
            arrays[f"{task}/{seed}/{name}"] = values
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        np.savez_compressed(f, **arrays)
    tmp.replace(path)


def load(path: Path) -> dict[tuple[str, int], dict[str, np.ndarray]]:
    """The recorded trajectories by (task, seed)."""
    out: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    with np.load(path) as data:
        for key in data.files:
            task, seed, name = key.split("/")
            out.setdefault((task, int(seed)), {})[name] = data[key]
    return out


def replay(task: str, seed: int, reference: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``reference``'s actions replayed on today's physics (open loop)."""
    return expert_trajectory(task, seed, actions=reference["action"])


def differences(
    reference: dict[str, np.ndarray], now: dict[str, np.ndarray], tol: Tolerances = Tolerances()
) -> list[str]:
    """How ``now`` departs from ``reference`` beyond ``tol`` (empty when it does not)."""
    out: list[str] = []
    n_ref, n_now = len(reference["force_N"]), len(now["force_N"])
    if n_ref != n_now:
        out.append(f"episode length {n_now} periods, recorded {n_ref}")
    n = min(n_ref, n_now)
    for name in ("terminated", "success"):
        changed = np.nonzero(reference[name][:n] != now[name][:n])[0]
        if len(changed):
            out.append(f"{name} differs first at period {changed[0]}")
    for name, limit in (("force_N", tol.force_N), ("force_max_N", tol.force_N), ("jaw", tol.jaw)):
        err = np.abs(reference[name][:n] - now[name][:n])
        if n and err.max() > limit:
            i = int(err.argmax())
            out.append(f"{name} off by {err[i]:.3g} at period {i} (allowed {limit:g})")
    if n:
        err = np.linalg.norm(reference["tip_m"][:n] - now["tip_m"][:n], axis=1)
        if err.max() > tol.tip_m:
            i = int(err.argmax())
            out.append(f"tip off by {err[i] * 1e3:.4f} mm at period {i} (allowed {tol.tip_m * 1e3:g} mm)")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m telesurg.envs.trajectories", description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--record", type=Path, metavar="NPZ", help="record the reference trajectories here")
    group.add_argument("--check", type=Path, metavar="NPZ", help="compare today's physics with these")
    args = parser.parse_args(argv)
    if args.record:
        record(args.record)
        print(f"wrote {args.record}")
        return 0
    if not args.check.exists():
        print(f"trajectories: no such file: {args.check}", file=sys.stderr)
        return 2
    bad = 0
    for (task, seed), reference in sorted(load(args.check).items()):
        diffs = differences(reference, replay(task, seed, reference))
        for line in diffs:
            print(f"{task} seed {seed}: {line}")
        bad += bool(diffs)
        if not diffs:
            print(f"{task} seed {seed}: same ({len(reference['force_N'])} periods)")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())

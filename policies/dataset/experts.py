"""Demonstrations from the scripted experts (``telesurg.envs.experts``) run directly in the env.

Each episode runs the whole time limit (as evaluation does, which judges success at the last step),
so the demonstrations include holding the result after success."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

from telesurg import envs
from telesurg.envs.experts import make_expert
from telesurg.policies.dataset.episode import Episode


def expert_episode(env: gym.Env, seed: int) -> Episode:
    """One seeded episode of ``env``'s task driven by its scripted expert."""
    expert = make_expert(env)
    obs, info = env.reset(seed=seed)
    expert.reset()
    rows: dict[str, list] = {k: [] for k in ("obs", "ach", "des", "act", "succ", "force")}
    violated = False
    done = False
    while not done:
        action = expert.action(obs)
        rows["obs"].append(obs["observation"])
        rows["ach"].append(obs["achieved_goal"])
        rows["des"].append(obs["desired_goal"])
        rows["act"].append(action)
        obs, _, terminated, truncated, info = env.step(action)
        rows["succ"].append(bool(info["is_success"]))
        rows["force"].append(float(info["contact_force_max_N"]))
        violated |= bool(info["force_limit_exceeded"])
        done = terminated or truncated
    task = env.unwrapped.task.name
    return Episode(
        task=task,
        seed=seed,
        source="expert",
        origin=f"expert:{task}:seed={seed}",
        observation=np.asarray(rows["obs"], dtype=np.float32),
        achieved_goal=np.asarray(rows["ach"], dtype=np.float32),
        desired_goal=np.asarray(rows["des"], dtype=np.float32),
        action=np.asarray(rows["act"], dtype=np.float32),
        next_success=np.asarray(rows["succ"], dtype=bool),
        force_max_N=np.asarray(rows["force"], dtype=np.float32),
        success=bool(info["is_success"]),
        hard_limit_exceeded=violated,
    )


def expert_episodes(
    task: str, count: int, seed: int = 0, progress: Callable[[int, Episode], None] | None = None
) -> list[Episode]:
    """``count`` expert episodes of ``task`` with seeds ``seed`` … ``seed + count - 1``."""
    env = gym.make(envs.env_id(task))
    try:
        out = []
        for i in range(count):
            out.append(expert_episode(env, seed + i))
            if progress is not None:
                progress(i, out[-1])
        return out
    finally:
        env.close()

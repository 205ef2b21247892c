"""Demonstrations from the scripted experts (``telesurg.envs.experts``) run directly in the env.

Each episode runs the whole time limit (as evaluation does, which judges success at the last step),
so the demonstrations include holding the result after success.

With ``noise`` > 0 the env executes the expert's action plus Gaussian noise (standard deviation
``noise`` in the action's units: fractions of the maximum tool step; the jaw is left alone) while
the dataset records what the expert commanded in each state visited (DART, Laskey et al. 2017): a
policy cloned from noiseless runs has only seen the expert's own path and drifts off it for good
after the first small error; the noise shows the expert recovering. The recorded actions then do
not replay the episode (the executed ones differed); ``success`` and forces are those of the run.

On a Discrete id (``discrete=True``) the expert picks ``DiscreteActions`` entries itself
(``Expert.discrete_action``) and the dataset records each chosen entry as the continuous action it
stands for, so a DQN pretrained on it maps every action back to its entry exactly; the noise is then
the probability of executing a uniformly random entry instead (ε-greedy) in the periods that are not
pauses, and a pause executes the no-op."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

from telesurg import envs
from telesurg.envs.experts import make_expert
from telesurg.policies.dataset.episode import Episode

#: With noise, the share of periods in which the tool is held still instead (the expert's command
#: is recorded): otherwise a resting tool is only ever seen at the goal, and a clone learns that
#: resting means done.
PAUSE_PROBABILITY = 0.15
#: Tasks whose experts are checked to work on the Discrete table (tests/envs/test_experts.py). The
#: others wait on phase tolerances tighter than the table's 0.5 mm per axis (Retract stalled 0.63 mm
#: short of its grip point), and for jaw tasks a recorded jaw-restoring action cannot be told from a
#: no-op once the noise has moved the jaw (the dataset keeps actions, not the wrapper's jaw state).
DISCRETE_TASKS = ("Reach", "Palpate")


def expert_episode(env: gym.Env, seed: int, noise: float = 0.0) -> Episode:
    """One seeded episode of ``env``'s task driven by its scripted expert (``noise``: see above;
    seeded by ``seed`` too). ``env`` may be a continuous or a Discrete id."""
    expert = make_expert(env)
    discrete = isinstance(env.action_space, gym.spaces.Discrete)
    table = env.get_wrapper_attr("table") if discrete else None
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    expert.reset()
    rows: dict[str, list] = {k: [] for k in ("obs", "ach", "des", "act", "succ", "force")}
    violated = False
    done = False
    while not done:
        if discrete:
            choice = expert.discrete_action(obs, table, env.get_wrapper_attr("jaw_command"))
            action = env.get_wrapper_attr("continuous")(choice)
        else:
            action = expert.action(obs)
        rows["obs"].append(obs["observation"])
        rows["ach"].append(obs["achieved_goal"])
        rows["des"].append(obs["desired_goal"])
        rows["act"].append(action)
        if discrete:
            executed = choice
            if noise > 0:
                if rng.random() < PAUSE_PROBABILITY:
                    executed = 0  # the no-op
                elif rng.random() < noise:
                    executed = int(rng.integers(len(table)))
        else:
            executed = action
            if noise > 0:
                executed = action.copy()
                if rng.random() < PAUSE_PROBABILITY:
                    executed[:3] = 0.0
                else:
                    executed[:3] = np.clip(action[:3] + rng.normal(0.0, noise, 3), -1.0, 1.0)
        obs, _, terminated, truncated, info = env.step(executed)
        rows["succ"].append(bool(info["is_success"]))
        rows["force"].append(float(info["contact_force_max_N"]))
        violated |= bool(info["force_limit_exceeded"])
        done = terminated or truncated
    task = env.unwrapped.task.name
    return Episode(
        task=task,
        seed=seed,
        source="expert",
        origin=f"expert:{task}:seed={seed}"
        + (":discrete" if discrete else "")
        + (f":noise={noise:g}" if noise > 0 else ""),
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
    task: str,
    count: int,
    seed: int = 0,
    progress: Callable[[int, Episode], None] | None = None,
    noise: float = 0.0,
    discrete: bool = False,
) -> list[Episode]:
    """``count`` expert episodes of ``task`` with seeds ``seed`` … ``seed + count - 1`` (on the
    task's Discrete id with ``discrete``)."""
    if discrete and task not in DISCRETE_TASKS:
        raise ValueError(f"discrete experts are available for {', '.join(DISCRETE_TASKS)}, not {task}")
    env = gym.make(envs.env_id(task, discrete=discrete))
    try:
        out = []
        for i in range(count):
            out.append(expert_episode(env, seed + i, noise))
            if progress is not None:
                progress(i, out[-1])
        return out
    finally:
        env.close()

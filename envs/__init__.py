"""telesurg environments: a simulated patient-side surgical arm and surgical tasks for Gymnasium.

Importing this package registers every environment id, built in a loop and listed in ``ENV_IDS``::

    import gymnasium as gym
    from telesurg import envs

    env = gym.make("telesurg/Reach-v0", render_mode="rgb_array")

Ids are ``telesurg/<Task>[Dense][Discrete]-v0``: ``Dense`` selects the shaped reward (sparse
otherwise) and ``Discrete`` wraps the continuous actions in ``DiscreteActions`` for DQN. Any id
takes ``shield=True`` to apply the force shield, and ``EnvConfig`` overrides such as
``trocar_m=(0.01, 0.0, 0.11)`` or ``hard_N=5.0``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from telesurg.envs.core import EnvConfig, SurgicalEnv
from telesurg.envs.layout import OBS_LAYOUT_VERSION
from telesurg.envs.tasks import TASKS, TASKS_BY_NAME
from telesurg.envs.wrappers import DiscreteActions, ForceShieldWrapper

NAMESPACE = "telesurg"
ENV_IDS: list[str] = []


def make_env(
    task: str,
    reward_type: str = "sparse",
    discrete: bool = False,
    shield: bool = False,
    **kwargs: Any,
) -> gym.Env:
    """Entry point behind every registered id (``gym.make`` adds the time limit)."""
    env: gym.Env = SurgicalEnv(TASKS_BY_NAME[task], reward_type=reward_type, **kwargs)
    if shield:
        env = ForceShieldWrapper(env)
    if discrete:
        env = DiscreteActions(env)
    return env


def env_id(task: str, dense: bool = False, discrete: bool = False) -> str:
    return f"{NAMESPACE}/{task}{'Dense' if dense else ''}{'Discrete' if discrete else ''}-v0"


for _task in TASKS:
    for _dense in (False, True):
        for _discrete in (False, True):
            _id = env_id(_task.name, _dense, _discrete)
            if _id not in gym.registry:
                gym.register(
                    id=_id,
                    entry_point=make_env,
                    kwargs={
                        "task": _task.name,
                        "reward_type": "dense" if _dense else "sparse",
                        "discrete": _discrete,
                    },
                    max_episode_steps=_task.max_episode_steps,
                )
            ENV_IDS.append(_id)

__all__ = [
    "ENV_IDS",
    "OBS_LAYOUT_VERSION",
    "EnvConfig",
    "SurgicalEnv",
    "env_id",
    "make_env",
]

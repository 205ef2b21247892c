"""Wrappers: discrete actions for DQN, the force shield and the cost penalty for training.

Every wrapper here keeps the goal-env contract: ``compute_reward(achieved_goal, desired_goal, info)``
returns exactly the reward its ``step`` returns. Gymnasium 1.x wrappers no longer forward attribute
access, so each one defines ``compute_reward`` itself (SB3's ``check_env`` and HER call it on the
env they are given; HER's ``env_method`` finds the outermost one with ``get_wrapper_attr``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from telesurg.envs.safety import ForceShield


def _inner_compute_reward(env: gym.Env, achieved_goal: Any, desired_goal: Any, info: Any) -> Any:
    """The reward of the nearest layer below ``env`` that defines ``compute_reward``."""
    return env.get_wrapper_attr("compute_reward")(achieved_goal, desired_goal, info)


class DiscreteActions(gym.ActionWrapper):
    """``Discrete`` actions from a lookup table of tool-tip steps.

    Action 0 is a no-op; then, for each base-frame axis x, y, z, a coarse and a fine step in each
    direction (``coarse`` and ``fine`` are fractions of the env's ``max_step_m``: by default 4 mm
    and 1 mm, so a 3 mm tolerance is reachable); for tasks that use the jaw, two more actions
    open and close it. The jaw keeps its last command (closed at reset). ``labels[i]`` names
    action ``i``.
    """

    def __init__(self, env: gym.Env, coarse: float = 1.0, fine: float = 0.25) -> None:
        super().__init__(env)
        if not (0 < fine < coarse <= 1.0):
            raise ValueError(f"need 0 < fine < coarse <= 1, got fine={fine}, coarse={coarse}")
        table: list[tuple[np.ndarray, float | None]] = [(np.zeros(3), None)]
        labels = ["no-op"]
        for axis, name in enumerate("xyz"):
            for size, size_name in ((coarse, "coarse"), (fine, "fine")):
                for sign, sign_name in ((1.0, "+"), (-1.0, "-")):
                    step = np.zeros(3)
                    step[axis] = sign * size
                    table.append((step, None))
                    labels.append(f"{sign_name}{name} {size_name}")
        if env.unwrapped.task.uses_jaw:
            table += [(np.zeros(3), 1.0), (np.zeros(3), -1.0)]
            labels += ["jaw open", "jaw close"]
        self.table = table
        self.labels = labels
        self.action_space = spaces.Discrete(len(table))
        self._jaw = -1.0

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        self._jaw = -1.0
        return self.env.reset(**kwargs)

    @property
    def jaw_command(self) -> float:
        """The jaw command every step sends until a jaw action changes it (-1 closed, 1 open)."""
        return self._jaw

    def continuous(self, index: int) -> np.ndarray:
        """The continuous action table entry ``index`` stands for now, without taking it."""
        step, jaw = self.table[index]
        return np.array([*step, self._jaw if jaw is None else jaw], dtype=np.float32)

    def action(self, action: Any) -> np.ndarray:
        try:
            index = int(action)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"discrete action must be an integer in [0, {len(self.table)}), got {action!r}") from exc
        if not 0 <= index < len(self.table) or index != action:
            raise ValueError(f"discrete action must be an integer in [0, {len(self.table)}), got {action!r}")
        out = self.continuous(index)
        self._jaw = float(out[3])
        return out

    def compute_reward(self, achieved_goal: Any, desired_goal: Any, info: Any) -> Any:
        """The wrapped env's reward: which table entry was chosen changes neither goals nor reward."""
        return _inner_compute_reward(self.env, achieved_goal, desired_goal, info)


class ForceShieldWrapper(gym.Wrapper):
    """Passes every continuous action through a ``ForceShield`` using the contact force in the
    latest observation, so motion into tissue is scaled or removed before the hard limit.
    ``info["shield_active"]`` says whether the shield changed the action."""

    def __init__(self, env: gym.Env, shield: ForceShield | None = None) -> None:
        super().__init__(env)
        base = env.unwrapped
        self.shield = shield or ForceShield(base.limits)
        self._layout = base.obs_layout
        self._max_step = base.max_step_m
        self._period_s = base.config.control_period_s
        self._force = np.zeros(3)
        self._peak_N: float | None = None

    def _read_force(self, obs: dict, info: dict) -> None:
        self._force = self._layout.get(obs["observation"], "contact_force_N").astype(np.float64)
        self._peak_N = info.get("contact_force_max_N")

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        self.shield.reset()
        self._read_force(obs, info)
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        active = False
        try:
            a = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            a = None
        if a is not None and a.shape == (4,) and np.all(np.isfinite(a)):
            a = np.clip(a, -1.0, 1.0)
            wanted = a[:3] * self._max_step
            allowed = self.shield.filter(wanted, self._force, self._peak_N, self._period_s)
            active = not np.allclose(wanted, allowed, atol=1e-9)
            a[:3] = np.clip(allowed / self._max_step, -1.0, 1.0)
            action = a.astype(np.float32)
        # Anything invalid passes through untouched so the env rejects it with its own clear error.
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._read_force(obs, info)
        info["shield_active"] = active
        return obs, reward, terminated, truncated, info

    def compute_reward(self, achieved_goal: Any, desired_goal: Any, info: Any) -> Any:
        """The wrapped env's reward: the shield changes the action, never the reward."""
        return _inner_compute_reward(self.env, achieved_goal, desired_goal, info)


class CostPenalty(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Subtracts ``weight`` × ``info["cost"]`` from every reward: the constraint-cost term for
    training under force limits (cost is 1 on a hard-limit violation, else the fraction of the
    warn→hard band used). ``info["reward_without_cost"]`` keeps the task reward. The cost is read
    from ``info``, so ``compute_reward`` subtracts it too and relabelled rewards carry it."""

    def __init__(self, env: gym.Env, weight: float) -> None:
        # Recorded in env.spec, so gym.make(env.spec) rebuilds the penalised env (as Gymnasium's own wrappers do).
        gym.utils.RecordConstructorArgs.__init__(self, weight=weight)
        gym.Wrapper.__init__(self, env)
        if not (np.isfinite(weight) and weight >= 0.0):
            raise ValueError(f"cost weight must be finite and >= 0, got {weight}")
        self.weight = float(weight)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["reward_without_cost"] = reward
        return obs, float(reward) - self.weight * float(info["cost"]), terminated, truncated, info

    def compute_reward(self, achieved_goal: Any, desired_goal: Any, info: Any) -> Any:
        """The wrapped env's reward minus ``weight`` × ``cost`` (vectorised like the wrapped one)."""
        reward = _inner_compute_reward(self.env, achieved_goal, desired_goal, info)
        cost = float(info["cost"]) if isinstance(info, dict) else np.array([i["cost"] for i in info], dtype=np.float64)
        return reward - self.weight * cost

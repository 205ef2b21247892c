"""Policy blending: a shipped policy proposes where the tool should go next; an arbitration weight
blends its proposal with the surgeon's target; the surgeon can always override.

Per console period, with the task's observation from telemetry (``Telemetry.task``: the same
observation dict the policy was trained on):

- **proposal**: the policy's action (deterministic) as the env applies it: tip + a[:3] × the env's
  ``max_step_m`` (base frame), i.e. where the policy would put the tool one env step (40 ms) on;
- **confidence** (0–1), from the state, not from PPO's state-independent action noise: how far the
  spatial state (tool position and velocity, and the goal) lies from the states the policy was
  trained on, measured in standard deviations of the training statistics the policy ships with
  (``normalization.json``: VecNormalize's running mean and variance). Within ``z_ok`` standard
  deviations in every coordinate the confidence is 1; beyond it falls as exp(−½ (|z|max − z_ok)²),
  so a state the policy never saw gets no authority;
- **weight** = ``max_weight`` × confidence, and 0 when the surgeon's target is more than
  ``override_m`` from the proposal (the surgeon is going elsewhere: the surgeon wins);
- **output** = surgeon target + weight × (proposal − surgeon target). ``max_weight`` < 1, so the
  surgeon's motion always carries at least 1 − ``max_weight`` of the command.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from telesurg.teleop.correction.stage import Context, Motion

#: Shipped policies per task (the issue asks for Reach and Palpate at least).
DEFAULT_POLICIES = {"Reach": "assets/policies/reach_ppo", "Palpate": "assets/policies/palpate_ppo"}
#: Observation fields that describe the spatial state the confidence is judged on.
SPATIAL_FIELDS = ("tip_pos_m", "tip_vel_m_s")


@dataclass(frozen=True)
class BlendingConfig:
    """``policies``: task → policy folder; ``max_weight`` (0–1), ``override_m`` (m), ``z_ok`` (standard
    deviations)."""

    policies: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_POLICIES))
    max_weight: float = 0.5
    override_m: float = 0.01
    z_ok: float = 3.0

    def __post_init__(self) -> None:
        if not 0 <= self.max_weight < 1:
            raise ValueError(f"max_weight must be in [0, 1) (the surgeon always keeps a share), got {self.max_weight}")
        if self.override_m <= 0 or self.z_ok <= 0:
            raise ValueError("override_m and z_ok must be positive")


class TaskPolicy:
    """One shipped policy with what blending needs: proposal and confidence for an observation."""

    def __init__(self, folder: str | Path, z_ok: float = 3.0) -> None:
        from telesurg.policies.bundle import Policy

        self.policy = Policy.load(folder)
        card = self.policy.card
        normalizer = self.policy.normalizer
        if card is None or normalizer is None:
            raise ValueError(f"{folder}: blending needs the policy's card and normalisation statistics")
        self.z_ok = z_ok
        self.max_step_m = float(card.env_options.get("max_step_m", 0.004)) if card.env_options else 0.004
        # Indices of the spatial fields in the observation vector, from the card's layout string.
        self._obs_idx: list[int] = []
        offset = 0
        for item in card.obs_layout.split(":", 1)[1].split(","):
            name, size = item.split("[")
            n = int(size.rstrip("]"))
            if name in SPATIAL_FIELDS:
                self._obs_idx += list(range(offset, offset + n))
            offset += n
        self._mean = {k: np.asarray(v, dtype=float) for k, v in normalizer.mean.items()}
        self._std = {k: np.sqrt(np.asarray(v, dtype=float) + normalizer.epsilon) for k, v in normalizer.var.items()}

    def z_max(self, obs: Mapping[str, np.ndarray]) -> float:
        """The largest |z| over the spatial coordinates and the goal (training standard deviations)."""
        o = np.asarray(obs["observation"], dtype=float)[self._obs_idx]
        zo = (o - self._mean["observation"][self._obs_idx]) / self._std["observation"][self._obs_idx]
        g = np.asarray(obs["desired_goal"], dtype=float)
        zg = (g - self._mean["desired_goal"]) / self._std["desired_goal"]
        return float(np.max(np.abs(np.concatenate([zo, zg]))))

    def confidence(self, obs: Mapping[str, np.ndarray]) -> float:
        excess = max(0.0, self.z_max(obs) - self.z_ok)
        return math.exp(-0.5 * excess**2)

    def step_m(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The tip displacement (m, base frame) the policy takes from this observation in one env step."""
        batch = {k: np.asarray(v, dtype=np.float32) for k, v in obs.items()}
        action = np.asarray(self.policy.predict(batch, deterministic=True), dtype=float).reshape(-1)
        return np.clip(action[:3], -1.0, 1.0) * self.max_step_m

    def proposal(self, obs: Mapping[str, np.ndarray], tip_m: np.ndarray) -> np.ndarray:
        return np.asarray(tip_m, dtype=float) + self.step_m(obs)


def blend(surgeon_m: np.ndarray, proposal_m: np.ndarray, weight: float) -> np.ndarray:
    """surgeon + weight × (proposal − surgeon)."""
    s = np.asarray(surgeon_m, dtype=float)
    return s + weight * (np.asarray(proposal_m, dtype=float) - s)


@dataclass
class PolicyBlending:
    """The blending stage on the tool target. ``observe(task_state, tip_m)`` (the console calls it with
    each telemetry) sets the state the policy sees; without a policy for the task, or without a
    state yet, the surgeon's target passes unchanged."""

    config: BlendingConfig = field(default_factory=BlendingConfig)
    enabled: bool = True
    name: str = "blending"

    def __post_init__(self) -> None:
        self._policies: dict[str, TaskPolicy] = {}
        self._obs: dict[str, np.ndarray] | None = None
        self._task = ""
        self._tip: np.ndarray | None = None
        self._proposal: np.ndarray | None = None
        self._step: np.ndarray | None = None
        self.weight = 0.0
        self.last_confidence = 0.0

    def policy_for(self, task: str) -> TaskPolicy | None:
        if task not in self._policies and task in self.config.policies:
            self._policies[task] = TaskPolicy(self.config.policies[task], self.config.z_ok)
        return self._policies.get(task)

    def reset(self) -> None:
        self._proposal = self._step = None

    def observe(self, task: str, obs: Mapping[str, Any], tip_m: np.ndarray) -> None:
        """A new observation of ``task`` (the dict of ``Telemetry.task``) with the tool tip (m, base frame).
        The task's observation changes once per env step (40 ms) while telemetry comes at 250 Hz:
        the policy runs only when it changed; the proposal follows the newest tip."""
        new = {k: np.asarray(v, dtype=float) for k, v in obs.items()}
        if task != self._task or self._obs is None or any(not np.array_equal(new[k], self._obs.get(k)) for k in new):
            self._step = None
        self._task, self._obs = task, new
        self._tip = np.asarray(tip_m, dtype=float)
        self._proposal = None

    def arbitrate(self, surgeon_m: np.ndarray) -> tuple[np.ndarray, float]:
        """(blended target, weight) for the surgeon's target now."""
        policy = self.policy_for(self._task) if self._task else None
        if policy is None or self._obs is None or self._tip is None:
            return np.asarray(surgeon_m, dtype=float), 0.0
        if self._step is None:
            self._step = policy.step_m(self._obs)
            self.last_confidence = policy.confidence(self._obs)
        if self._proposal is None:
            self._proposal = self._tip + self._step
        weight = self.config.max_weight * self.last_confidence
        if np.linalg.norm(np.asarray(surgeon_m, dtype=float) - self._proposal) > self.config.override_m:
            weight = 0.0
        return blend(surgeon_m, self._proposal, weight), weight

    def apply(self, motion: Motion, ctx: Context) -> Motion:
        if motion.target_m is None:
            return motion
        target, self.weight = self.arbitrate(motion.target_m)
        return Motion(motion.t_s, motion.hand_m, target)

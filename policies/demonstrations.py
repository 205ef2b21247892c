"""Demonstrations in a policy's terms, and the behaviour-cloning loss on them.

``telesurg pretrain`` clones a dataset with ``clone_loss``; ``telesurg train --init`` can keep
applying it while fine-tuning (``DemonstrationLoss``, config key ``demo_loss_weight``): fine-tuning
a clone with the RL loss alone pulled it away from what it did well (Transfer PPO 100% → 34% and
PalpateDiscrete DQN 100% → 0% within 10,000–20,000 steps, though each clone alone succeeded in 100%):

- **PPO**: after each PPO update, as many demonstration minibatches as the update had (epochs ×
  minibatches) of the actor's mean-squared error to the demonstrated actions, scaled by the
  weight: a regulariser toward the demonstrations.
- **DQN** (DQfD, Hester et al. 2018): with each gradient step on the replay buffer, one on a
  demonstration minibatch with DQfD's loss, a one-step temporal-difference term on the demonstrated
  transitions plus the large margin ``max_a [Q(s, a) + 0.8 · (a ≠ a_E)] − Q(s, a_E)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from telesurg.policies.dataset.episode import Episode

#: DQfD's margin between the demonstrated action's Q-value and any other's.
DQN_MARGIN = 0.8
#: VecNormalize's reward clip.
REWARD_CLIP = 10.0


def frames_of(episodes: list[Episode]) -> dict[str, np.ndarray]:
    return {
        "observation": np.concatenate([e.observation for e in episodes]).astype(np.float32),
        "achieved_goal": np.concatenate([e.achieved_goal for e in episodes]).astype(np.float32),
        "desired_goal": np.concatenate([e.desired_goal for e in episodes]).astype(np.float32),
    }


def demonstration_rewards(env: gym.Env, episodes: list[Episode], cost_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Per frame (in ``frames_of`` order): the reward training would have given for the demonstrated
    transition, and whether the next frame belongs to the same episode (the last frame of each
    episode has no recorded successor and is left out of the temporal-difference loss). The reward
    is ``env``'s ``compute_reward`` on the next frame's achieved goal, with the force terms from the
    recorded largest force, minus ``cost_weight`` × the training cost (as ``CostPenalty``)."""
    base = env.unwrapped
    limits = base.config.limits
    rewards, has_next = [], []
    for e in episodes:
        fmax = e.force_max_N.astype(np.float64)
        exceeded = fmax > limits.hard_N
        cost = np.where(exceeded, 1.0, np.clip((fmax - limits.warn_N) / (limits.hard_N - limits.warn_N), 0.0, 1.0))
        infos = [
            {"force_limit_exceeded": bool(x), "contact_force_max_N": float(f), "cost": float(c)}
            for x, f, c in zip(exceeded, fmax, cost, strict=True)
        ]
        achieved_next = np.concatenate([e.achieved_goal[1:], e.achieved_goal[-1:]]).astype(np.float64)
        r = np.asarray(base.compute_reward(achieved_next, e.desired_goal.astype(np.float64), infos), dtype=np.float64)
        rewards.append(r - cost_weight * cost)
        has_next.append(np.arange(e.length) < e.length - 1)
    return np.concatenate(rewards).astype(np.float32), np.concatenate(has_next)


def return_statistics(rewards: np.ndarray, has_next: np.ndarray, gamma: float) -> tuple[float, float, float]:
    """Mean, variance and count of the discounted returns ``VecNormalize`` would track over these
    transitions (its ``ret_rms``), so normalised demonstration rewards match fine-tuning's."""
    from stable_baselines3.common.running_mean_std import RunningMeanStd

    rms = RunningMeanStd(shape=())
    ret = 0.0
    returns = np.empty(len(rewards))
    for i, (r, more) in enumerate(zip(rewards, has_next, strict=True)):
        ret = ret * gamma + float(r)
        returns[i] = ret
        if not more:
            ret = 0.0
    rms.update(returns)
    return float(rms.mean), float(rms.var), float(rms.count)


def discrete_targets(env: gym.Env, episodes: list[Episode]) -> tuple[list[np.ndarray], float, float]:
    """Each episode's actions mapped to the nearest ``DiscreteActions`` entry of ``env`` (a Discrete
    id), and the tool-step error this introduces (m per control period: mean and largest), the
    distance between the demonstrated step and the mapped one. The table's steps move along one axis
    at a time, so a diagonal step loses its other components for that period; in closed loop a
    policy makes them up in later periods."""
    table = env.get_wrapper_attr("table")
    max_step_m = env.unwrapped.max_step_m
    steps = np.array([step for step, _ in table])
    jaw_open = next((i for i, (_, jaw) in enumerate(table) if jaw == 1.0), None)
    jaw_close = next((i for i, (_, jaw) in enumerate(table) if jaw == -1.0), None)
    mapped = []
    errors = []
    for e in episodes:
        jaw = -1.0  # DiscreteActions starts with the jaw closed
        out = np.empty(e.length, dtype=np.int64)
        for k, a in enumerate(e.action):
            if jaw_open is not None and np.sign(a[3]) != np.sign(jaw) and abs(a[3]) > 0.5:
                out[k] = jaw_open if a[3] > 0 else jaw_close
                jaw = 1.0 if a[3] > 0 else -1.0
            else:
                out[k] = int(np.argmin(np.linalg.norm(steps - a[:3], axis=1)))
            errors.append(float(np.linalg.norm(steps[out[k]] - a[:3])) * max_step_m)
        mapped.append(out)
    return mapped, float(np.mean(errors)), float(np.max(errors))


@dataclass
class Demonstrations:
    """One task's demonstrated frames (raw observations), their targets (PPO: actions; DQN:
    ``DiscreteActions`` indices) and, for DQN, the raw rewards and which frames have a successor
    (the next frame, ``index + 1``)."""

    frames: dict[str, np.ndarray]
    targets: np.ndarray
    rewards: np.ndarray | None = None
    has_next: np.ndarray | None = None
    mapping_error_m: float | None = None
    mapping_max_m: float | None = None

    @classmethod
    def of(cls, env: gym.Env, algo: str, episodes: list[Episode], cost_weight: float) -> Demonstrations:
        """``episodes`` as training targets for ``algo`` on ``env`` (the training env id)."""
        frames = frames_of(episodes)
        if algo == "ppo":
            return cls(frames, np.concatenate([e.action for e in episodes]).astype(np.float32))
        targets, error, largest = discrete_targets(env, episodes)
        rewards, has_next = demonstration_rewards(env, episodes, cost_weight)
        return cls(frames, np.concatenate(targets), rewards, has_next, error, largest)

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def next_index(self) -> np.ndarray:
        return np.minimum(np.arange(len(self)) + 1, len(self) - 1)


def clone_loss(
    model: Any, algo: str, obs: dict[str, Any], target: np.ndarray, transition: tuple | None = None
) -> tuple[Any, float]:
    """The cloning loss of ``model`` (an SB3 PPO or DQN) on one batch of normalised observations
    (tensors) and their ``target``s, and for DQN the share whose greedy action is the demonstrated
    one (NaN for PPO). PPO: the actor mean's squared error to the demonstrated actions. DQN: the
    large-margin loss, plus with ``transition`` = (next observations, rewards, has-next mask) the
    one-step TD loss against the target network."""
    import torch
    from torch import nn

    policy = model.policy
    if algo == "ppo":
        features = policy.extract_features(obs, policy.pi_features_extractor)
        mean = policy.action_net(policy.mlp_extractor.forward_actor(features))
        return nn.functional.mse_loss(mean, torch.as_tensor(target)), math.nan
    q = policy.q_net(obs)
    a = torch.as_tensor(target)
    q_demo = q.gather(1, a[:, None]).squeeze(1)
    margins = torch.full_like(q, DQN_MARGIN).scatter(1, a[:, None], 0.0)
    margin_loss = ((q + margins).max(dim=1).values - q_demo).mean()
    agreement = float((q.argmax(dim=1) == a).float().mean())
    if transition is None:
        return margin_loss, agreement
    next_obs, reward, valid = transition
    with torch.no_grad():
        bootstrap = policy.q_net_target(next_obs).max(dim=1).values
        target_q = torch.as_tensor(reward) + model.gamma * bootstrap
    mask = torch.as_tensor(valid, dtype=torch.float32)
    td_error = nn.functional.smooth_l1_loss(q_demo, target_q, reduction="none")
    return (td_error * mask).sum() / mask.sum().clamp(min=1.0) + margin_loss, agreement


class DemonstrationLoss(BaseCallback):
    """Keeps the cloning loss on ``demos`` (weighted by ``weight``) in fine-tuning; see the module
    docstring. Observations are normalised with the training env's (fixed) statistics and, for DQN,
    rewards with its current return statistics, as the replay buffer's are."""

    def __init__(
        self, demos: Demonstrations, weight: float, batch_size: int, seed: int, log: Callable[[str], None]
    ) -> None:
        super().__init__()
        self.demos = demos
        self.weight = weight
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.log = log
        self.updates = 0
        self._last_train_calls = 0
        self._algo = ""

    def _on_training_start(self) -> None:
        from stable_baselines3 import DQN

        self._algo = "dqn" if isinstance(self.model, DQN) else "ppo"  # decided once, not every env step
        # A resumed model has its update count: count demonstration steps from there, not from 0.
        self._last_train_calls = self.model._n_updates
        self.log(
            f"demonstration loss: {len(self.demos):,} demonstrated frames stay in training at weight {self.weight:g}"
        )

    def _batch(self, idx: np.ndarray) -> tuple[dict[str, Any], tuple | None]:
        import torch

        venv = self.model.get_vec_normalize_env()

        def normalised(rows: np.ndarray) -> dict[str, Any]:
            raw = {k: v[rows] for k, v in self.demos.frames.items()}
            obs = venv.normalize_obs(raw) if venv is not None else raw
            return {k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in obs.items()}

        transition = None
        if self.demos.rewards is not None:
            rewards = self.demos.rewards[idx]
            if venv is not None and venv.norm_reward:
                clip = venv.clip_reward
                rewards = np.clip(rewards / math.sqrt(venv.ret_rms.var + venv.epsilon), -clip, clip)
            transition = (normalised(self.demos.next_index[idx]), rewards.astype(np.float32), self.demos.has_next[idx])
        return normalised(idx), transition

    def _step(self, algo: str) -> None:
        import torch

        idx = self.rng.integers(len(self.demos), size=self.batch_size)
        obs, transition = self._batch(idx)
        policy = self.model.policy
        policy.set_training_mode(True)
        try:
            loss, _ = clone_loss(self.model, algo, obs, self.demos.targets[idx], transition)
            if not loss.requires_grad:  # the actor is frozen (critic warm-up)
                return
            policy.optimizer.zero_grad()
            (self.weight * loss).backward()
            # Clipped as the algorithm clips its own updates (PPO 0.5, DQN 10 by default).
            torch.nn.utils.clip_grad_norm_(policy.parameters(), self.model.max_grad_norm)
            policy.optimizer.step()
            self.updates += 1
        finally:
            policy.set_training_mode(False)

    def _on_rollout_start(self) -> None:
        # PPO: after each update (SB3 calls train() between on_rollout_end and the next start).
        self._after_ppo_update()

    def _on_training_end(self) -> None:
        self._after_ppo_update()
        self._on_step()  # DQN: the gradient step after the last collected one
        self.log(f"demonstration loss: {self.updates:,} demonstration steps in this run")

    def _after_ppo_update(self) -> None:
        if self._algo == "ppo" and self.model._n_updates > self._last_train_calls:
            self._last_train_calls = self.model._n_updates
            minibatches = math.ceil(self.model.n_steps * self.model.n_envs / self.model.batch_size)
            for _ in range(self.model.n_epochs * minibatches):
                self._step("ppo")

    def _on_step(self) -> bool:
        # DQN: one demonstration step per gradient step on the replay buffer.
        if self._algo == "dqn" and self.model._n_updates > self._last_train_calls:
            for _ in range(self.model._n_updates - self._last_train_calls):
                self._step("dqn")
            self._last_train_calls = self.model._n_updates
        return True

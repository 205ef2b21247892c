"""Behaviour cloning: a stable-baselines3 policy network pretrained on a demonstration dataset, saved
as a policy bundle that ``telesurg eval`` runs as is and ``telesurg train --init`` fine-tunes.

The network is the very one the training configuration builds (same algorithm, ``net_arch`` and
observation normalisation), so fine-tuning starts from it without any translation:

- **PPO** (Box ids): the actor's mean is regressed onto the demonstrated actions (mean squared
  error). The log standard deviation is not learnt by cloning; it is set to ``log_std`` (default
  ln 0.2: exploration small enough not to wreck the cloned behaviour, which SB3's default std of 1 on
  actions in [-1, 1] would). The critic is not trained either (the dataset has no rewards); warm it
  up in fine-tuning with ``critic_warmup_steps``, during which the actor stays frozen.
- **DQN** (Discrete ids): each continuous demonstrated action is mapped to the nearest entry of the
  env's ``DiscreteActions`` table (the tool step closest in Euclidean distance; for tasks with a jaw,
  a change of the jaw's sign becomes the jaw action and that period's motion is lost), and the
  Q-network is trained as DQfD pretrains it: a one-step temporal-difference loss on the
  demonstrated transitions (the rewards recomputed from the dataset's goals and forces with the
  training env's own ``compute_reward`` and cost weight; target network refreshed every epoch) plus
  the large-margin loss (``max_a [Q(s, a) + 0.8 · (a ≠ a_E)] − Q(s, a_E)``), so the Q-values are
  returns and the demonstrated action is the greedy one by a margin. Without the TD term (a
  cross-entropy on the Q-values instead, as first built) the clone acted as well but its Q-values
  were logits: the first TD updates of fine-tuning tore them apart (PalpateDiscrete 100% → 0% within
  10,000–20,000 steps). With ``normalize_reward`` the rewards are scaled as ``VecNormalize`` will scale
  them, by the demonstrations' discounted-return statistics, which the bundle carries into
  fine-tuning. The tool-step error the mapping introduces is measured per period (the
  distance between the demonstrated tool step and the mapped one) and written to the card; with
  ``dataset build --discrete-experts`` it is zero.
- **Normalisation**: the observation statistics (mean, variance per key) are the training split's,
  stored in the bundle and carried into fine-tuning, where they stay fixed
  (``telesurg.policies.train.freeze_obs_statistics``).

Episodes that crossed the hard force limit are left out unless ``include_flagged``. The validation
split's loss (and, for DQN, the share of frames whose greedy action is the demonstrated one) is
reported every epoch.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from telesurg.policies.bundle import Policy
from telesurg.policies.card import ModelCard, library_versions
from telesurg.policies.config import TrainConfig
from telesurg.policies.dataset.lerobot import DatasetError, read_dataset
from telesurg.policies.demonstrations import REWARD_CLIP, Demonstrations, clone_loss, return_statistics
from telesurg.policies.normalization import ObsNormalizer

OBS_KEYS = ("observation", "achieved_goal", "desired_goal")


@dataclass
class PretrainSettings:
    """Behaviour-cloning settings: passes over the training split, minibatch size, Adam's learning
    rate, PPO's log standard deviation after cloning, and whether hard-limit episodes are used."""

    epochs: int = 100
    batch_size: int = 256
    learning_rate: float = 1e-3
    log_std: float = math.log(0.2)
    include_flagged: bool = False
    #: Translation augmentation (m): each training frame's position fields (3-vectors in metres:
    #: the tool tip, object and goal positions) are shifted together by one offset drawn uniformly
    #: from ±``augment_shift_m`` per axis, actions unchanged. Valid where the task looks the same
    #: when everything moves together (Reach: free space); wrong where a fixed surface matters. 0: off.
    augment_shift_m: float = 0.0
    #: Observation fields (names in the task's layout) whose values in each training frame are taken
    #: from another, random frame: the clone cannot read the action off them, while they keep their
    #: range, so at run time the network sees nothing unusual. For recorded demonstrations: a smooth
    #: demonstrator's next move is about its current velocity (and the jaw wobbles as the arm
    #: accelerates), so a clone learns "keep doing what you are doing" (causal confusion) and stands
    #: still at rest or stops short.
    shuffle_fields: tuple[str, ...] = ()

    def validate(self) -> PretrainSettings:
        if self.epochs < 1 or self.batch_size < 1 or not self.learning_rate > 0:
            raise DatasetError("epochs and batch_size must be >= 1 and learning_rate > 0")
        if not 0.0 <= self.augment_shift_m <= 0.2:
            raise DatasetError(f"augment_shift_m must be in [0, 0.2] m, got {self.augment_shift_m}")
        return self


@dataclass
class PretrainResult:
    out: Path
    episodes: int
    frames: int
    train_loss: float
    val_loss: float | None
    val_agreement: float | None
    mapping_step_error_m: float | None
    wall_time_s: float


def dataset_normalizer(obs: dict[str, np.ndarray], clip_obs: float = 10.0, epsilon: float = 1e-8) -> ObsNormalizer:
    """Observation statistics of the demonstration frames (VecNormalize's clip and epsilon)."""
    return ObsNormalizer(
        mean={k: obs[k].astype(np.float64).mean(axis=0) for k in OBS_KEYS},
        var={k: obs[k].astype(np.float64).var(axis=0) for k in OBS_KEYS},
        clip_obs=clip_obs,
        epsilon=epsilon,
        count=float(len(obs["observation"])),
    )


def _position_slices(env: gym.Env) -> dict[str, list[slice]]:
    """Where the positions (3-vectors in metres) sit in the observation and goal vectors."""
    base = env.unwrapped
    out: dict[str, list[slice]] = {}
    for key, layout in (("observation", base.obs_layout), ("achieved_goal", base.goal_layout)):
        out[key] = [layout.slice(f.name) for f in layout.fields if f.unit == "m" and f.size == 3]
    out["desired_goal"] = out["achieved_goal"]
    return out


def pretrain(
    cfg: TrainConfig,
    dataset: str | Path,
    out: str | Path,
    settings: PretrainSettings | None = None,
    command: str = "",
    log: Callable[[str], None] = print,
) -> PretrainResult:
    """Clone the demonstrations of ``cfg``'s task in ``dataset`` into the policy ``cfg`` builds and
    save the bundle at ``out`` (atomically)."""
    import torch

    from telesurg.policies.train import EnvSignature, _new_model, card_identity, make_vec_env

    settings = (settings or PretrainSettings()).validate()
    cfg.validate()
    if not cfg.normalize_obs:
        raise DatasetError(
            "pretraining normalises observations with the dataset's statistics: set normalize_obs = true"
        )
    out = Path(out)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.torch_threads)
    rng = np.random.default_rng(cfg.seed)
    t0 = time.monotonic()
    ds = read_dataset(dataset)
    task = cfg.task
    env = gym.make(cfg.env_id, **cfg.env)
    try:
        ds.check_env(task, env)
        shifted = _position_slices(env)
        layout = env.unwrapped.obs_layout
        unknown = [f for f in settings.shuffle_fields if f not in layout.names]
        if unknown:
            raise DatasetError(f"no field {unknown} in {cfg.env_id}'s observation; it has {list(layout.names)}")
        shuffled = [layout.slice(f) for f in settings.shuffle_fields]
        train_eps, val_eps = (
            [e for e in ds.episodes(tasks=[task], split=split) if settings.include_flagged or not e.hard_limit_exceeded]
            for split in ("train", "val")
        )
        if not train_eps:
            raise DatasetError(f"{dataset} has no {task} training episodes to clone")
        train_demos = Demonstrations.of(env, cfg.algo, train_eps, cfg.cost_weight)
        val_demos = Demonstrations.of(env, cfg.algo, val_eps, cfg.cost_weight) if val_eps else None
        if cfg.algo == "dqn":
            log(
                f"pretrain: demonstrated actions mapped to the nearest of {env.action_space.n} discrete ones: the tool "
                f"step differs by {train_demos.mapping_error_m * 1e3:.2f} mm per period on average "
                f"({train_demos.mapping_max_m * 1e3:.2f} max)"
            )
    finally:
        env.close()
    mapping_error, mapping_max = train_demos.mapping_error_m, train_demos.mapping_max_m
    frames = train_demos.frames
    td = cfg.algo == "dqn"
    normalizer = dataset_normalizer(frames)
    if td:
        rewards, has_next, next_index = train_demos.rewards, train_demos.has_next, train_demos.next_index
        if val_demos is not None:
            val_rewards, val_has_next = val_demos.rewards, val_demos.has_next
        if cfg.normalize_reward:
            # Scaled as VecNormalize will scale them in fine-tuning, which starts from these statistics.
            gamma = float(cfg.hyperparams.get("gamma", 0.99))
            normalizer.return_mean, normalizer.return_var, normalizer.return_count = return_statistics(
                rewards, has_next, gamma
            )
            scale = 1.0 / math.sqrt(normalizer.return_var + normalizer.epsilon)
            rewards = np.clip(rewards * scale, -REWARD_CLIP, REWARD_CLIP).astype(np.float32)
            if val_demos is not None:
                val_rewards = np.clip(val_rewards * scale, -REWARD_CLIP, REWARD_CLIP).astype(np.float32)
    x_train = normalizer.normalize(frames)
    if settings.augment_shift_m > 0:
        log(f"pretrain: positions shifted by up to ±{settings.augment_shift_m * 1e3:.0f} mm: {shifted}")
    if settings.shuffle_fields:
        log(f"pretrain: {', '.join(settings.shuffle_fields)} taken from random other frames")
    y_train = train_demos.targets
    x_val = normalizer.normalize(val_demos.frames) if val_demos is not None else None
    y_val = val_demos.targets if val_demos is not None else None
    n = len(y_train)
    log(
        f"pretrain: {cfg.algo.upper()} on {cfg.env_id} from {dataset}: {len(train_eps)} training episodes "
        f"({n} frames), {len(val_eps)} validation; {settings.epochs} epochs"
    )

    venv = make_vec_env(dataclasses.replace(cfg, n_envs=1))
    try:
        model = _new_model(cfg, venv, out.parent / f".{out.name}.tb")
    finally:
        venv.close()
    policy = model.policy
    policy.set_training_mode(True)
    if cfg.algo == "ppo":
        params = [
            *policy.features_extractor.parameters(),
            *policy.mlp_extractor.policy_net.parameters(),
            *policy.action_net.parameters(),
        ]
    else:
        params = list(policy.q_net.parameters())
    optimizer = torch.optim.Adam(params, lr=settings.learning_rate)
    # The rate falls linearly to zero: the clone ends converged, not wherever the last noisy steps
    # left it (with a constant rate, closed-loop success varied from 14% to 100% between seeds).
    batches = settings.epochs * math.ceil(n / settings.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: max(0.0, 1.0 - i / batches))

    def tensors(x: dict[str, np.ndarray], idx: np.ndarray | slice) -> dict[str, Any]:
        return {k: torch.as_tensor(v[idx]) for k, v in x.items()}

    train_loss = val_loss = math.nan
    val_agreement = None

    def augmented_batch(idx: np.ndarray, offset: np.ndarray | None) -> dict[str, np.ndarray]:
        batch = {k: v[idx].copy() for k, v in frames.items()}
        if offset is not None:
            for key, slices in shifted.items():
                for sl in slices:
                    batch[key][:, sl] += offset.astype(np.float32)
        for sl in shuffled:
            batch["observation"][:, sl] = frames["observation"][rng.integers(n, size=len(idx)), sl]
        return normalizer.normalize(batch)

    for epoch in range(settings.epochs):
        if td:
            with torch.no_grad():
                policy.q_net_target.load_state_dict(policy.q_net.state_dict())
        order = rng.permutation(n)
        total = 0.0
        for start in range(0, n, settings.batch_size):
            idx = order[start : start + settings.batch_size]
            transition = None
            if settings.augment_shift_m > 0 or shuffled:
                offset = None
                if settings.augment_shift_m > 0:
                    offset = rng.uniform(-settings.augment_shift_m, settings.augment_shift_m, (len(idx), 3))
                x = augmented_batch(idx, offset)
                if td:
                    transition = (
                        tensors(augmented_batch(next_index[idx], offset), slice(None)),
                        rewards[idx],
                        has_next[idx],
                    )
            else:
                x = {k: v[idx] for k, v in x_train.items()}
                if td:
                    transition = (tensors(x_train, next_index[idx]), rewards[idx], has_next[idx])
            loss, _ = clone_loss(model, cfg.algo, tensors(x, slice(None)), y_train[idx], transition)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(idx)
        train_loss = total / n
        if x_val is not None and y_val is not None:
            with torch.no_grad():
                val_transition = None
                if td:
                    val_next = np.minimum(np.arange(len(y_val)) + 1, len(y_val) - 1)
                    val_transition = (tensors(x_val, val_next), val_rewards, val_has_next)
                loss, agree = clone_loss(model, cfg.algo, tensors(x_val, slice(None)), y_val, val_transition)
            val_loss = float(loss)
            val_agreement = None if math.isnan(agree) else agree
        if epoch == 0 or (epoch + 1) % 5 == 0 or epoch + 1 == settings.epochs:
            extra = f", validation {val_loss:.4f}" if x_val is not None else ""
            extra += f" (greedy = demonstrated on {val_agreement:.0%})" if val_agreement is not None else ""
            log(f"pretrain: epoch {epoch + 1}/{settings.epochs}: loss {train_loss:.4f}{extra}")
    with torch.no_grad():
        if cfg.algo == "ppo":
            policy.log_std.fill_(settings.log_std)
        else:
            policy.q_net_target.load_state_dict(policy.q_net.state_dict())
    policy.set_training_mode(False)
    wall = time.monotonic() - t0
    signature = EnvSignature.of(cfg)
    card = ModelCard(
        **card_identity(cfg, signature),
        training={
            "total_timesteps": 0,
            "timesteps_done": 0,
            "seed": cfg.seed,
            "normalize_obs": True,
            "normalize_reward": cfg.normalize_reward,
            "shield": cfg.shield,
            "wall_time_s": round(wall, 1),
            "pretrain": {
                "dataset": str(dataset),
                "dataset_command": ds.info["telesurg"].get("command", ""),
                "dataset_episodes": ds.info["total_episodes"],
                "dataset_frames": ds.info["total_frames"],
                "episodes": len(train_eps),
                "frames": n,
                "validation_episodes": len(val_eps),
                "sources": sorted({e.source for e in train_eps}),
                "epochs": settings.epochs,
                "batch_size": settings.batch_size,
                "learning_rate": settings.learning_rate,
                "log_std": settings.log_std if cfg.algo == "ppo" else None,
                "train_loss": train_loss,
                "val_loss": None if math.isnan(val_loss) else val_loss,
                "val_agreement": val_agreement,
                "mapping_step_error_mean_m": mapping_error,
                "mapping_step_error_max_m": mapping_max,
                "include_flagged": settings.include_flagged,
                "augment_shift_m": settings.augment_shift_m,
                "shuffle_fields": list(settings.shuffle_fields),
                "wall_time_s": round(wall, 1),
            },
        },
        command=command,
        config=cfg.to_dict(),
        status="pretrained",
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        versions=library_versions(),
    )
    Policy(model, card, normalizer).save(out)
    log(f"pretrain: saved {out} in {wall:.0f} s (evaluate it: telesurg eval {out})")
    return PretrainResult(
        out,
        len(train_eps),
        n,
        train_loss,
        None if math.isnan(val_loss) else val_loss,
        val_agreement,
        mapping_error,
        wall,
    )

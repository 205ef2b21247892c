"""Helpers for policy tests: tiny training configs that finish in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from telesurg.policies.config import TrainConfig, from_dict


def tiny_config(env_id: str, out: Path, **extra: object) -> TrainConfig:
    """A training run of a few hundred steps with a tiny network."""
    algo = "dqn" if "Discrete" in env_id else "ppo"
    hyper = (
        {"learning_starts": 64, "buffer_size": 2000, "train_freq": 4, "target_update_interval": 100}
        if algo == "dqn"
        else {"n_steps": 64, "batch_size": 32, "n_epochs": 2}
    )
    data: dict = {
        "env_id": env_id,
        "algo": algo,
        "total_timesteps": 256,
        "out": str(out),
        "net_arch": [8],
        "progress_every_s": 0.0,
        "hyperparams": hyper,
        "eval": {"every_steps": 128, "episodes": 2, "final_episodes": 2},
        "checkpoint": {"every_steps": 128, "keep": 2},
    }
    for key, value in extra.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    return from_dict(data).validate()


@pytest.fixture
def tiny() -> object:
    return tiny_config

"""A saved policy: a folder holding ``model.zip`` (stable-baselines3), ``card.json`` (the model card)
and, when training normalised observations, ``normalization.json``.

    policy = Policy.load("assets/policies/reach_ppo")
    env = gym.make(policy.card.env_id)
    policy.check_env(env)                  # raises PolicyMismatch on a different layout
    action = policy.predict(obs)           # deterministic by default
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from telesurg.policies.atomic import replace_atomically
from telesurg.policies.card import ModelCard
from telesurg.policies.config import algorithm_class
from telesurg.policies.normalization import ObsNormalizer

MODEL_FILE = "model.zip"
CARD_FILE = "card.json"
NORMALIZATION_FILE = "normalization.json"


class PolicyMismatch(ValueError):
    """A policy was loaded into an env whose observations or actions differ from its training env."""


def action_space_name(space: gym.Space) -> str:
    if isinstance(space, gym.spaces.Discrete):
        return f"discrete({int(space.n)})"
    if isinstance(space, gym.spaces.Box):
        return f"box({','.join(str(n) for n in space.shape)})"
    return type(space).__name__


def resolve_bundle(path: str | Path) -> Path:
    """The bundle folder for ``path`` (the folder itself or its ``model.zip``); clear errors if absent."""
    p = Path(path)
    if p.is_file() and p.name == MODEL_FILE:
        p = p.parent
    if not p.exists():
        raise FileNotFoundError(f"model {str(path)!r} not found")
    if not (p / MODEL_FILE).is_file():
        raise FileNotFoundError(f"{str(path)!r} holds no {MODEL_FILE} (expected a policy folder or its model.zip)")
    if not (p / CARD_FILE).is_file():
        raise FileNotFoundError(f"{str(path)!r} has no {CARD_FILE} beside its model")
    return p


class Policy:
    """A trained model with its card and observation normalisation."""

    def __init__(self, model: Any, card: ModelCard | None, normalizer: ObsNormalizer | None) -> None:
        self.model = model
        self.card = card
        self.normalizer = normalizer

    # ------------------------------------------------------------------ io
    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Policy:
        folder = resolve_bundle(path)
        card = ModelCard.load(folder / CARD_FILE)
        try:
            model = algorithm_class(card.algo).load(folder / MODEL_FILE, device=device)
        except (ValueError, zipfile.BadZipFile, KeyError, RuntimeError) as exc:
            reason = str(exc).removeprefix("Error: ")
            raise ValueError(f"cannot read {folder / MODEL_FILE}: {reason}") from None
        norm_path = folder / NORMALIZATION_FILE
        normalizer = ObsNormalizer.load(norm_path) if norm_path.is_file() else None
        if normalizer is None and card.training.get("normalize_obs", False):
            raise ValueError(
                f"{folder} lacks {NORMALIZATION_FILE}: the policy was trained on normalised observations "
                "and acts wrongly without their statistics"
            )
        return cls(model, card, normalizer)

    def save(self, folder: str | Path, card: ModelCard | None = None) -> Path:
        """Write the bundle atomically: into a temporary sibling folder, then renamed into place, so
        an interrupted save never leaves a half-written policy."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        card = card or self.card
        if card is None:
            raise ValueError("a policy needs a model card to be saved")
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            self.model.save(tmp / MODEL_FILE)
            card.save(tmp / CARD_FILE)
            if self.normalizer is not None:
                self.normalizer.save(tmp / NORMALIZATION_FILE)
            replace_atomically(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.card = card
        return folder

    # ------------------------------------------------------------------ use
    def check_env(self, env: gym.Env) -> None:
        """Raise ``PolicyMismatch`` unless ``env`` has the observation layout and action space this
        policy was trained on."""
        if self.card is None:
            return
        base = env.unwrapped
        name = self.card.env_id
        version = base.obs_layout.version
        if version != self.card.obs_layout_version:
            raise PolicyMismatch(
                f"policy for {name} was trained on observation layout version {self.card.obs_layout_version}, "
                f"but this env has version {version}; retrain it (see the command in its card.json)"
            )
        got = base.obs_layout.signature()
        if got != self.card.obs_layout:
            raise PolicyMismatch(
                f"policy for {name} expects observation layout {self.card.obs_layout}, but this env has {got}"
            )
        goal = base.goal_layout.signature()
        if goal != self.card.goal_layout:
            raise PolicyMismatch(
                f"policy for {name} expects goal layout {self.card.goal_layout}, but this env has {goal}"
            )
        if self.normalizer is not None:
            try:
                self.normalizer.check_matches(env.observation_space)
            except ValueError as exc:
                raise PolicyMismatch(f"policy for {name}: {exc}") from None
        actions = action_space_name(env.action_space)
        if actions != self.card.action_space:
            raise PolicyMismatch(
                f"policy for {name} outputs {self.card.action_space} actions, but this env takes {actions}"
            )

    def normalize(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.normalizer.normalize(obs) if self.normalizer is not None else obs

    def predict(self, obs: dict[str, np.ndarray], deterministic: bool = True) -> np.ndarray:
        """Action for one observation dict (or a batch with a leading axis)."""
        action, _ = self.model.predict(self.normalize(obs), deterministic=deterministic)
        return action

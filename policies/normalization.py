"""Observation normalisation statistics stored as JSON next to a model (no pickles in shipped files).

Training wraps the envs in stable-baselines3's ``VecNormalize``; a policy trained that way only
works on observations normalised with the same running mean and variance, so those statistics are
saved with every model and applied again at evaluation and deployment.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class ObsNormalizer:
    """Per-key running mean and variance: ``clip((x - mean) / sqrt(var + epsilon), ±clip_obs)``.

    ``norm_obs`` False: training normalised only rewards; observations pass through unchanged (the
    statistics are still kept so a resumed run continues its reward normalisation)."""

    mean: dict[str, np.ndarray]
    var: dict[str, np.ndarray]
    clip_obs: float
    epsilon: float
    #: Samples behind the statistics; with the return statistics, kept so training can resume.
    count: float = 1.0
    return_var: float = 1.0
    return_count: float = 1.0
    return_mean: float = 0.0
    norm_obs: bool = True

    @classmethod
    def from_vec_normalize(cls, vec_normalize: Any) -> ObsNormalizer:
        rms = vec_normalize.obs_rms
        if not isinstance(rms, dict):
            raise TypeError("telesurg policies use Dict observations; VecNormalize.obs_rms should be a dict")
        return cls(
            mean={k: np.array(v.mean, dtype=np.float64) for k, v in rms.items()},
            var={k: np.array(v.var, dtype=np.float64) for k, v in rms.items()},
            clip_obs=float(vec_normalize.clip_obs),
            epsilon=float(vec_normalize.epsilon),
            count=float(next(iter(rms.values())).count),
            return_var=float(np.asarray(vec_normalize.ret_rms.var).reshape(-1)[0]),
            return_count=float(vec_normalize.ret_rms.count),
            return_mean=float(np.asarray(vec_normalize.ret_rms.mean).reshape(-1)[0]),
            norm_obs=bool(vec_normalize.norm_obs),
        )

    def apply_to(self, vec_normalize: Any) -> None:
        """Copy these statistics into a ``VecNormalize`` (e.g. when resuming training)."""
        for key, rms in vec_normalize.obs_rms.items():
            if key not in self.mean or rms.mean.shape != self.mean[key].shape:
                raise ValueError(f"normalisation statistics do not match observation key {key!r}")
            rms.mean = self.mean[key].copy()
            rms.var = self.var[key].copy()
            rms.count = self.count
        self.apply_returns_to(vec_normalize)
        vec_normalize.clip_obs = self.clip_obs
        vec_normalize.epsilon = self.epsilon

    def apply_returns_to(self, vec_normalize: Any) -> None:
        """Copy the return statistics (mean, variance, count) into a ``VecNormalize``."""
        vec_normalize.ret_rms.mean = np.full_like(vec_normalize.ret_rms.mean, self.return_mean)
        vec_normalize.ret_rms.var = np.full_like(vec_normalize.ret_rms.var, self.return_var)
        vec_normalize.ret_rms.count = self.return_count

    def normalize(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Normalise one observation dict or a batch (leading axis)."""
        if not self.norm_obs:
            return obs
        out = {}
        for key, value in obs.items():
            if key in self.mean:
                scaled = (np.asarray(value, dtype=np.float64) - self.mean[key]) / np.sqrt(self.var[key] + self.epsilon)
                out[key] = np.clip(scaled, -self.clip_obs, self.clip_obs).astype(np.float32)
            else:
                out[key] = value
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "clip_obs": self.clip_obs,
            "epsilon": self.epsilon,
            "count": self.count,
            "return_var": self.return_var,
            "return_count": self.return_count,
            "return_mean": self.return_mean,
            "norm_obs": self.norm_obs,
            "mean": {k: v.tolist() for k, v in self.mean.items()},
            "var": {k: v.tolist() for k, v in self.var.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ObsNormalizer:
        try:
            return cls(
                mean={k: np.array(v, dtype=np.float64) for k, v in data["mean"].items()},
                var={k: np.array(v, dtype=np.float64) for k, v in data["var"].items()},
                clip_obs=float(data["clip_obs"]),
                epsilon=float(data["epsilon"]),
                count=float(data.get("count", 1.0)),
                return_var=float(data.get("return_var", 1.0)),
                return_count=float(data.get("return_count", 1.0)),
                return_mean=float(data.get("return_mean", 0.0)),
                norm_obs=bool(data.get("norm_obs", True)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed normalisation statistics: {exc}") from None

    def check_matches(self, observation_space: Any) -> None:
        """Raise ``ValueError`` unless the statistics cover every observation key with its shape."""
        for key, space in observation_space.spaces.items():
            if key not in self.mean or self.mean[key].shape != space.shape or self.var[key].shape != space.shape:
                got = self.mean[key].shape if key in self.mean else "missing"
                raise ValueError(f"normalisation statistics for {key!r} are {got}, the env gives shape {space.shape}")

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> ObsNormalizer:
        return cls.from_json(json.loads(path.read_text()))

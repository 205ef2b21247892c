"""A learned operator-motion predictor: a small multilayer perceptron that maps the last
``history_s`` of the tool target to its displacement ``horizon_s`` ahead.

The network sees one axis at a time (the same weights for x, y and z, so it cannot learn a
direction the training surgeon happened to favour): ``history_samples`` past positions every
``step_s`` relative to the newest, in units of ``scale_m``, and the horizon as a fraction of
``max_horizon_s``, and the past positions again multiplied by that fraction (so that extrapolating
a velocity over the horizon is linear in the inputs); the displacement it predicts is its output
times that fraction, in units of ``scale_m`` (so a zero horizon predicts no motion, whatever the
weights: without the delay there is nothing to predict, and nothing is added). Past positions are linearly
interpolated from whatever rate the samples come at; before a stroke has ``history_s`` of samples,
the oldest one stands in for the missing past (the hand was at rest there, as far as we know).

Training (``telesurg.teleop.harness.train_predictor``, ``telesurg train-predictor``: tremor in the
inputs, the tremor-free intent as the target, so it predicts voluntary motion only) uses torch; inference
here is plain numpy on the shipped weights (``assets/predictor/learned.npz``), so the console never
imports torch in its command loop. ``features`` is shared by both, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

ASSET = Path(__file__).resolve().parents[2] / "assets" / "predictor" / "learned.npz"


@dataclass(frozen=True)
class LearnedPredictorConfig:
    """Window and units of the network's inputs: ``history_samples`` past positions every
    ``step_s`` (s); displacements in units of ``scale_m`` (m); horizons up to ``max_horizon_s`` (s);
    ``hidden`` units in each of the two hidden layers."""

    history_samples: int = 20
    step_s: float = 0.01
    scale_m: float = 0.01
    max_horizon_s: float = 0.5
    hidden: int = 64
    #: Trained with tremor in its inputs and the tremor-free intent as its target: it predicts the
    #: voluntary motion itself, so the prediction stage gives it the raw target (no band limit).
    rejects_tremor: bool = False

    def __post_init__(self) -> None:
        if self.history_samples < 2 or self.step_s <= 0 or self.scale_m <= 0 or self.max_horizon_s <= 0:
            raise ValueError("history_samples ≥ 2 and positive step_s, scale_m, max_horizon_s needed")

    @property
    def history_s(self) -> float:
        return self.history_samples * self.step_s

    @property
    def inputs(self) -> int:
        return 2 * self.history_samples + 1


def features(t_s: np.ndarray, x_m: np.ndarray, index: np.ndarray, horizon_s: np.ndarray, cfg: LearnedPredictorConfig):
    """Network inputs (len(index) × 3 axes, cfg.inputs) for predicting from sample ``index`` (each
    with its own ``horizon_s``) of the path ``x_m`` (n × 3) sampled at increasing times ``t_s``."""
    index = np.asarray(index)
    now = t_s[index]
    lags = now[:, None] - cfg.step_s * np.arange(1, cfg.history_samples + 1)[None, :]  # (m, K)
    k_n = cfg.history_samples
    frac = np.asarray(horizon_s, dtype=float) / cfg.max_horizon_s
    out = np.empty((len(index), 3, cfg.inputs))
    for k in range(3):
        past = np.interp(lags, t_s, x_m[:, k])  # clamps to the first sample before the path starts
        rel = (past - x_m[index, k][:, None]) / cfg.scale_m
        out[:, k, :k_n] = rel
        out[:, k, k_n : 2 * k_n] = rel * frac[:, None]
    out[:, :, -1] = frac[:, None]
    return out


class Mlp:
    """The network's forward pass in numpy: tanh hidden layers, linear output."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.layers = layers

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for i, (w, b) in enumerate(self.layers):
            x = x @ w.T + b
            if i < len(self.layers) - 1:
                x = np.tanh(x)
        return x


def load(path: str | Path = ASSET) -> tuple[LearnedPredictorConfig, Mlp]:
    """The configuration and network saved by ``save``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no learned predictor; train one with `telesurg train-predictor`")
    with np.load(path) as data:
        cfg = LearnedPredictorConfig(
            history_samples=int(data["history_samples"]),
            step_s=float(data["step_s"]),
            scale_m=float(data["scale_m"]),
            max_horizon_s=float(data["max_horizon_s"]),
            hidden=int(data["hidden"]),
            rejects_tremor=bool(data["rejects_tremor"]) if "rejects_tremor" in data else False,
        )
        n = int(data["layers"])
        layers = [(data[f"w{i}"].astype(float), data[f"b{i}"].astype(float)) for i in range(n)]
    if layers[0][0].shape[1] != cfg.inputs or layers[-1][0].shape[0] != 1:
        raise ValueError(f"{path}: network shape does not match its configuration")
    return cfg, Mlp(layers)


def save(path: str | Path, cfg: LearnedPredictorConfig, layers: list[tuple[np.ndarray, np.ndarray]]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"w{i}": w.astype(np.float32) for i, (w, _) in enumerate(layers)}
    arrays |= {f"b{i}": b.astype(np.float32) for i, (_, b) in enumerate(layers)}
    np.savez(
        path,
        layers=len(layers),
        history_samples=cfg.history_samples,
        step_s=cfg.step_s,
        scale_m=cfg.scale_m,
        max_horizon_s=cfg.max_horizon_s,
        hidden=cfg.hidden,
        rejects_tremor=cfg.rejects_tremor,
        **arrays,
    )


class LearnedPredictor:
    """The ``Predictor`` interface (``reset``, ``update``, ``predict``) on a trained network."""

    name = "learned"

    def __init__(self, path: str | Path = ASSET) -> None:
        self.cfg, self.net = load(path)
        self.rejects_tremor = self.cfg.rejects_tremor
        self.reset()

    def reset(self) -> None:
        self._t: list[float] = []
        self._x: list[np.ndarray] = []

    def update(self, t_s: float, position_m: np.ndarray) -> None:
        if self._t and t_s <= self._t[-1]:
            self._x[-1] = np.asarray(position_m, dtype=float).copy()
            return
        self._t.append(float(t_s))
        self._x.append(np.asarray(position_m, dtype=float).copy())
        keep = self._t[-1] - self.cfg.history_s - 2 * self.cfg.step_s
        while len(self._t) > 2 and self._t[1] < keep:
            del self._t[0], self._x[0]

    def predict(self, horizon_s: float) -> np.ndarray:
        if not self._t:
            raise RuntimeError("no sample yet")
        x = np.asarray(self._x)
        h = min(max(float(horizon_s), 0.0), self.cfg.max_horizon_s)
        feats = features(np.asarray(self._t), x, np.array([len(x) - 1]), np.array([h]), self.cfg)[0]
        return x[-1] + self.net(feats)[:, 0] * (h / self.cfg.max_horizon_s) * self.cfg.scale_m

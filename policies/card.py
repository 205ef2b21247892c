"""Model cards: a small JSON file beside every saved policy saying what it is and how it was made.

A card records the env id, algorithm, hyperparameters, the observation layout the policy was
trained on (version and signature: loading into a different layout fails with a clear error),
training budget and wall time, evaluation results with and without the force shield, the training
curve, and the exact command that reproduces it.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CARD_FORMAT = 1


@dataclass
class ModelCard:
    env_id: str
    algo: str
    action_space: str
    obs_layout_version: int
    obs_layout: str
    goal_layout: str
    hyperparams: dict[str, Any] = field(default_factory=dict)
    env_options: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    #: Training curve: [timesteps, evaluation success rate, wall time (s)] per periodic evaluation.
    curve: list[list[float]] = field(default_factory=list)
    #: The command that started the run, then any that resumed it.
    command: str = ""
    resumed_with: list[str] = field(default_factory=list)
    #: The full resolved training configuration (eval settings included: they decide which model is "best").
    config: dict[str, Any] = field(default_factory=dict)
    status: str = ""
    created: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    format: int = CARD_FORMAT

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=1, sort_keys=False) + "\n")

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: model card is not valid JSON ({exc})") from None
        known = {f.name for f in dataclasses.fields(cls)}
        required = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [name for name in required if name not in data]
        if missing:
            raise ValueError(f"{path}: model card lacks {missing}")
        if data.get("format", CARD_FORMAT) > CARD_FORMAT:
            raise ValueError(f"{path}: model card format {data['format']} is newer than this telesurg understands")
        return cls(**{k: v for k, v in data.items() if k in known})


def source_revision() -> str:
    """The git commit of the telesurg source tree ("+dirty" when it has uncommitted changes), or
    "unknown" outside a git checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "telesurg_source": source_revision()}
    for dist in ("telesurg", "stable-baselines3", "torch", "gymnasium", "pybullet", "numpy"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out

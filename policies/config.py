"""Training configuration: typed settings loaded from a TOML file in ``launch/train/`` plus overrides.

A file looks like this (every key optional except ``env_id``)::

    env_id = "telesurg/ReachDense-v0"
    algo = "ppo"                 # "ppo" (Box ids), "dqn" (Discrete ids) or "auto"
    total_timesteps = 300_000
    n_envs = 2
    seed = 0
    out = "runs/reach_ppo"

    [hyperparams]                # keyword arguments of the stable-baselines3 algorithm
    gamma = 0.95

    [env]                        # EnvConfig overrides, e.g. hard_N = 5.0

    [eval]
    every_steps = 20_000

Overrides use dotted keys with TOML values: ``hyperparams.gamma=0.98``, ``eval.episodes=50``.
Unknown keys, wrong types and impossible combinations raise ``ConfigError`` with one line naming
the problem.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telesurg.policies.tomlconfig import ConfigError, build, parse_override, read_toml, set_dotted, toml_value

__all__ = [
    "ConfigError",
    "TrainConfig",
    "from_dict",
    "load_config",
    "parse_override",
    "read_toml",
    "set_dotted",
    "toml_value",
]

ALGORITHMS: dict[str, str] = {"ppo": "box", "dqn": "discrete"}
VEC_ENV_KINDS = ("auto", "dummy", "subproc")


@dataclass
class EvalSettings:
    """Periodic evaluation during training: ``episodes`` deterministic episodes every
    ``every_steps`` environment steps (total over all parallel envs); ``final_episodes`` for the
    evaluation written to the model card, run once without and once with the force shield."""

    every_steps: int = 20_000
    episodes: int = 20
    final_episodes: int = 100
    seed: int = 1_000_000
    #: End the run at the first periodic evaluation with at least this success rate (0: never).
    stop_at_success: float = 0.0


@dataclass
class CheckpointSettings:
    """A checkpoint (model, normalisation, replay buffer for DQN) every ``every_steps``; the newest
    ``keep`` are kept."""

    every_steps: int = 50_000
    keep: int = 2


@dataclass
class TrainConfig:
    """Everything a training run needs. ``shield`` applies the force shield to the training envs;
    ``cost_weight`` subtracts weight × ``info["cost"]`` from every reward (the constraint-cost term);
    ``normalize_obs``/``normalize_reward`` wrap the envs in ``VecNormalize`` (statistics are saved
    with every model). ``init``: a pretrained policy bundle (``telesurg pretrain``) to start from
    (its network and observation statistics; evaluated before the first step); with PPO,
    ``critic_warmup_steps`` keeps its actor frozen for that many steps while the critic learns
    (ignored without ``init``: an untrained actor has nothing to keep). ``demo_loss_weight`` > 0
    keeps the cloning loss on the pretrained bundle's training demonstrations in fine-tuning, at
    that weight (``telesurg.policies.demonstrations``; needs ``init`` and its dataset).
    ``eval.stop_at_success`` ends the run at the first evaluation at that success rate (with
    ``init``, the one before the first step counts)."""

    env_id: str = ""
    algo: str = "auto"
    total_timesteps: int = 100_000
    n_envs: int = 1
    vec_env: str = "auto"
    seed: int = 0
    out: str = ""
    normalize_obs: bool = True
    normalize_reward: bool = True
    shield: bool = False
    cost_weight: float = 0.0
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    torch_threads: int = 1
    progress_every_s: float = 10.0
    init: str = ""
    critic_warmup_steps: int = 0
    demo_loss_weight: float = 0.0
    hyperparams: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    eval: EvalSettings = field(default_factory=EvalSettings)
    checkpoint: CheckpointSettings = field(default_factory=CheckpointSettings)

    # ------------------------------------------------------------------ derived
    @property
    def action_kind(self) -> str:
        """ "box" or "discrete", from the registered id."""
        import gymnasium as gym

        return "discrete" if gym.spec(self.env_id).kwargs.get("discrete") else "box"

    @property
    def task(self) -> str:
        import gymnasium as gym

        return str(gym.spec(self.env_id).kwargs["task"])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        """The resolved configuration as TOML (written into every run folder)."""
        d = self.to_dict()
        lines = [f"{k} = {toml_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
        for k, v in d.items():
            if isinstance(v, dict):
                lines.append(f"\n[{k}]")
                lines += [f"{kk} = {toml_value(vv)}" for kk, vv in v.items()]
        return "\n".join(lines) + "\n"

    def validate(self) -> TrainConfig:
        """Check every field; fills in ``algo`` ("auto") and ``out`` (empty). Returns self."""
        from telesurg import envs

        if not self.env_id:
            raise ConfigError("no env_id given (set env_id in the config file or pass --env ID)")
        if self.env_id not in envs.ENV_IDS:
            raise ConfigError(f"unknown env id {self.env_id!r}; run 'telesurg envs' for the list")
        kind = self.action_kind
        if self.algo == "auto":
            self.algo = "dqn" if kind == "discrete" else "ppo"
        if self.algo not in ALGORITHMS:
            raise ConfigError(f"unknown algorithm {self.algo!r}; choose from {sorted(ALGORITHMS)} or 'auto'")
        if ALGORITHMS[self.algo] != kind:
            hint = "a Discrete id (…Discrete-v0)" if self.algo == "dqn" else "a Box id (without 'Discrete')"
            raise ConfigError(f"{self.algo.upper()} needs {hint}, but {self.env_id} has {kind} actions")
        if self.critic_warmup_steps and self.algo != "ppo":
            raise ConfigError("critic_warmup_steps is for PPO (it freezes the actor while the critic learns)")
        for name, low in (("total_timesteps", 1), ("n_envs", 1), ("torch_threads", 1), ("critic_warmup_steps", 0)):
            if getattr(self, name) < low:
                raise ConfigError(f"{name} must be at least {low}, got {getattr(self, name)}")
        if self.vec_env not in VEC_ENV_KINDS:
            raise ConfigError(f"vec_env must be one of {list(VEC_ENV_KINDS)}, got {self.vec_env!r}")
        if self.cost_weight < 0:
            raise ConfigError(f"cost_weight must be >= 0, got {self.cost_weight}")
        if not (self.demo_loss_weight >= 0 and math.isfinite(self.demo_loss_weight)):
            raise ConfigError(f"demo_loss_weight must be finite and >= 0, got {self.demo_loss_weight}")
        if not self.net_arch or any(type(n) is not int or n < 1 for n in self.net_arch):
            raise ConfigError(f"net_arch must be a list of positive layer sizes, got {self.net_arch}")
        if not 0.0 <= self.eval.stop_at_success <= 1.0:
            raise ConfigError(f"eval.stop_at_success must be in [0, 1], got {self.eval.stop_at_success}")
        if self.eval.every_steps < 1 or self.eval.episodes < 1 or self.eval.final_episodes < 0:
            raise ConfigError("eval.every_steps and eval.episodes must be >= 1 and eval.final_episodes >= 0")
        if self.checkpoint.every_steps < 1 or self.checkpoint.keep < 1:
            raise ConfigError("checkpoint.every_steps and checkpoint.keep must be >= 1")
        self._check_hyperparams()
        self._check_env_options()
        if not self.out:
            self.out = f"runs/{self.task.lower()}_{self.algo}_s{self.seed}"
        return self

    def _check_hyperparams(self) -> None:
        cls = algorithm_class(self.algo)
        params = inspect.signature(cls.__init__).parameters
        reserved = {
            "policy",
            "env",
            "seed",
            "tensorboard_log",
            "verbose",
            "device",
            "policy_kwargs",
            "_init_setup_model",
        }
        known = sorted(set(params) - reserved - {"self"})
        for key, value in self.hyperparams.items():
            if key in reserved:
                raise ConfigError(f"hyperparams.{key} is set by telesurg itself and cannot be given")
            if key not in params:
                raise ConfigError(f"unknown hyperparameter {key!r} for {self.algo.upper()}; known: {', '.join(known)}")
            default = params[key].default
            number = (int, float)
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = type(value) is int
            elif isinstance(default, float):
                ok = isinstance(value, number) and not isinstance(value, bool)
            else:
                ok = True  # None or schedule defaults: SB3 checks these when the model is built
            if not ok:
                kind = "true/false" if isinstance(default, bool) else type(default).__name__
                raise ConfigError(f"hyperparams.{key} must be {kind} (like its default {default!r}), got {value!r}")

    def _check_env_options(self) -> None:
        from telesurg.envs.core import EnvConfig

        try:
            EnvConfig().with_overrides(**dict(self.env))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad [env] option: {exc}") from None


def algorithm_class(algo: str) -> type:
    """The stable-baselines3 class for ``algo`` ("ppo" or "dqn")."""
    from stable_baselines3 import DQN, PPO

    try:
        return {"ppo": PPO, "dqn": DQN}[algo]
    except KeyError:
        raise ConfigError(f"unknown algorithm {algo!r}; choose from {sorted(ALGORITHMS)}") from None


# ---------------------------------------------------------------------- loading
def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a TOML file (or start from defaults when ``path`` is None), apply ``key=value``
    overrides, and validate."""
    data = read_toml(path, "config file") if path is not None else {}
    for item in overrides or []:
        key, value = parse_override(item)
        set_dotted(data, key, value)
    return from_dict(data, f"{path}:" if path is not None else "<defaults>:").validate()


def from_dict(data: dict[str, Any], where: str = "config:") -> TrainConfig:
    """Build a ``TrainConfig`` from parsed TOML, rejecting unknown keys and wrong types (``build``)."""
    return build(TrainConfig, data, where)

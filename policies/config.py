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
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ALGORITHMS: dict[str, str] = {"ppo": "box", "dqn": "discrete"}
VEC_ENV_KINDS = ("auto", "dummy", "subproc")


class ConfigError(ValueError):
    """A bad training configuration (reported to the user as one line)."""


@dataclass
class EvalSettings:
    """Periodic evaluation during training: ``episodes`` deterministic episodes every
    ``every_steps`` environment steps (total over all parallel envs); ``final_episodes`` for the
    evaluation written to the model card, run once without and once with the force shield."""

    every_steps: int = 20_000
    episodes: int = 20
    final_episodes: int = 100
    seed: int = 1_000_000


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
    with every model)."""

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
        for name, low in (("total_timesteps", 1), ("n_envs", 1), ("torch_threads", 1)):
            if getattr(self, name) < low:
                raise ConfigError(f"{name} must be at least {low}, got {getattr(self, name)}")
        if self.vec_env not in VEC_ENV_KINDS:
            raise ConfigError(f"vec_env must be one of {list(VEC_ENV_KINDS)}, got {self.vec_env!r}")
        if self.cost_weight < 0:
            raise ConfigError(f"cost_weight must be >= 0, got {self.cost_weight}")
        if not self.net_arch or any(type(n) is not int or n < 1 for n in self.net_arch):
            raise ConfigError(f"net_arch must be a list of positive layer sizes, got {self.net_arch}")
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
def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """Parse a TOML file; a missing or malformed file is a ``ConfigError`` naming ``what`` it is."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {str(p)!r} not found")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: malformed TOML: {exc}") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a TOML file (or start from defaults when ``path`` is None), apply ``key=value``
    overrides, and validate."""
    data = read_toml(path, "config file") if path is not None else {}
    for item in overrides or []:
        key, value = parse_override(item)
        set_dotted(data, key, value)
    return from_dict(data).validate()


def parse_override(item: str) -> tuple[str, Any]:
    """``"hyperparams.gamma=0.98"`` → ("hyperparams.gamma", 0.98). Values are TOML; a bare word
    that is not valid TOML is taken as a string."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {item!r} must look like key=value (e.g. hyperparams.gamma=0.98)")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a table")
        node = nxt
    node[parts[-1]] = value


_SECTIONS: dict[str, type] = {"eval": EvalSettings, "checkpoint": CheckpointSettings}
_FREE_TABLES = ("hyperparams", "env")


def from_dict(data: dict[str, Any]) -> TrainConfig:
    """Build a ``TrainConfig`` from parsed TOML, rejecting unknown keys and wrong types."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"unknown config key {key!r}; known: {', '.join(sorted(fields))}")
        if key in _SECTIONS:
            kwargs[key] = _section(key, value, _SECTIONS[key])
        elif key in _FREE_TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"{key} must be a table ([{key}]), got {value!r}")
            kwargs[key] = dict(value)
        else:
            kwargs[key] = _typed(key, value, type(getattr(TrainConfig(), key)))
    return TrainConfig(**kwargs)


def _section(name: str, value: Any, cls: type) -> Any:
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a table ([{name}]), got {value!r}")
    defaults = cls()
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, v in value.items():
        if key not in known:
            raise ConfigError(f"unknown config key '{name}.{key}'; known: {', '.join(sorted(known))}")
        kwargs[key] = _typed(f"{name}.{key}", v, type(getattr(defaults, key)))
    return cls(**kwargs)


def _typed(key: str, value: Any, expected: type) -> Any:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, bool):
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if not isinstance(value, expected):
        raise ConfigError(f"{key} must be of type {expected.__name__}, got {value!r}")
    return value


def toml_value(v: Any) -> str:
    """A value as TOML text: booleans, numbers, strings and paths (a JSON string literal is a valid
    TOML basic string), arrays and inline tables of them. The one TOML writer of the project."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str | Path):
        return json.dumps(str(v))
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, float):
        return repr(v)
    return str(v)

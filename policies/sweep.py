"""Hyperparameter sweeps on Ray Tune: each trial is a headless ``train`` run reporting its periodic
evaluation (success rate first) to Tune.

Needs the optional extra: ``pip install 'telesurg[distributed]'``. With no address (and no
``RAY_ADDRESS``), Ray starts locally on this machine; on a Ray cluster, run the same command on the
head node (or pass ``--address``) and trials are scheduled across the cluster unchanged. Every node
needs telesurg installed, and ``out`` must be on storage that all nodes share.

A sweep file (``launch/sweep/*.toml``)::

    train = "../train/reach_ppo.toml"   # base training config, relative to this file
    trials = 8
    metric = "success_rate"             # maximised; reported at every evaluation
    out = "runs/sweep_reach_ppo"

    [overrides]                         # applied to every trial (dotted keys allowed)
    total_timesteps = 60_000

    [space]                             # sampled per trial
    "hyperparams.learning_rate" = { loguniform = [1e-4, 1e-3] }
    "hyperparams.gamma" = { choice = [0.9, 0.95, 0.98] }
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telesurg.policies.config import ConfigError, TrainConfig, from_dict, parse_override, read_toml, set_dotted

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "randint")
#: Metrics a sweep may optimise, with the direction that is better.
METRICS = {
    "success_rate": "max",
    "mean_return": "max",
    "violation_rate": "min",
    "mean_episode_length": "min",
    "mean_contact_force_N": "min",
}


@dataclass
class SweepSpec:
    base: dict[str, Any]
    space: dict[str, dict[str, list[Any]]]
    trials: int = 4
    metric: str = "success_rate"
    out: str = "runs/sweep"
    seed: int = 0
    max_concurrent: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)

    def trial_config(self, params: dict[str, Any], out: str) -> TrainConfig:
        data = json.loads(json.dumps(self.base))
        for key, value in {**self.overrides, **params}.items():
            set_dotted(data, key, value)
        set_dotted(data, "out", out)
        return from_dict(data).validate()


def load_sweep(
    path: str | Path, trials: int | None = None, out: str | None = None, overrides: list[str] | None = None
) -> SweepSpec:
    """Read and check a sweep file; every sampled value is validated against the training config
    before any trial starts."""
    p = Path(path)
    data = read_toml(p, "sweep file")
    known = {f.name for f in dataclasses.fields(SweepSpec)} - {"base"} | {"train"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown sweep key(s) {unknown}; known: {', '.join(sorted(known))}")
    if "train" not in data:
        raise ConfigError(f"{p}: 'train' (the base training config file) is required")
    base = read_toml((p.parent / data.pop("train")).resolve(), f"{p}: training config")
    space = data.pop("space", {})
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{p}: [space] must name at least one parameter to sweep")
    for key, dist in space.items():
        if not (isinstance(dist, dict) and len(dist) == 1 and next(iter(dist)) in DISTRIBUTIONS):
            raise ConfigError(f"space.{key} must be one of {{{', '.join(f'{d} = [...]' for d in DISTRIBUTIONS)}}}")
        kind, args = next(iter(dist.items()))
        if not isinstance(args, list) or not args or (kind != "choice" and len(args) != 2):
            raise ConfigError(f"space.{key}: {kind} needs {'a non-empty list' if kind == 'choice' else '[low, high]'}")
    for key, kind in (("trials", int), ("metric", str), ("out", str), ("seed", int), ("max_concurrent", int)):
        if key in data and (type(data[key]) is not kind):
            raise ConfigError(f"{p}: {key} must be of type {kind.__name__}, got {data[key]!r}")
    if not isinstance(data.get("overrides", {}), dict):
        raise ConfigError(f"{p}: overrides must be a table ([overrides]), got {data['overrides']!r}")
    spec = SweepSpec(base=base, space=space, **data)
    spec.overrides = dict(spec.overrides)
    for item in overrides or []:
        key, value = parse_override(item)
        spec.overrides[key] = value
    if trials is not None:
        spec.trials = trials
    if out is not None:
        spec.out = out
    if spec.trials < 1:
        raise ConfigError(f"trials must be at least 1, got {spec.trials}")
    if spec.metric not in METRICS:
        raise ConfigError(f"metric must be one of {sorted(METRICS)}, got {spec.metric!r}")
    # Validate the extremes of every dimension now rather than in a trial on another node.
    for key, dist in space.items():
        kind, args = next(iter(dist.items()))
        for value in args if kind == "choice" else args[:2]:
            spec.trial_config({key: value}, "runs/_check")
    return spec


def _search_space(spec: SweepSpec) -> dict[str, Any]:
    from ray import tune

    out = {}
    for key, dist in spec.space.items():
        kind, args = next(iter(dist.items()))
        out[key] = tune.choice(args) if kind == "choice" else getattr(tune, kind)(*args)
    return out


def _trial(params: dict[str, Any], spec: SweepSpec, out_root: str) -> None:
    """One Tune trial: a full training run whose evaluations are reported to Tune."""
    from ray import tune

    from telesurg.policies.train import train

    name = tune.get_context().get_trial_name() or "trial"
    cfg = spec.trial_config(params, os.path.join(out_root, name))

    def report(record: dict[str, Any]) -> None:
        tune.report({k: v for k, v in record.items() if isinstance(v, int | float)})

    train(cfg, command=f"telesurg sweep trial {name} {params}", log=lambda _m: None, on_eval=report)


def run_sweep(spec: SweepSpec, address: str | None = None, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Run the sweep; returns one row per trial (parameters and best metric), best first, and
    writes them to ``<out>/sweep_results.json``."""
    out_root = str(Path(spec.out).resolve())
    Path(out_root).mkdir(parents=True, exist_ok=True)
    address = address or os.environ.get("RAY_ADDRESS")
    # Ray reports usage statistics to a public server unless told not to; telesurg never phones home.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    local: dict[str, Any] = {}
    if not address:
        # A local Ray is a single-node cluster on loopback: with clusters disabled (read when ray
        # is first imported, hence the late import) Ray binds to 127.0.0.1, not the host's address.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        local = {"num_cpus": os.cpu_count() or 1}
    import ray
    from ray import tune

    sigint_handler = signal.getsignal(signal.SIGINT)  # Tune installs its own; give the caller theirs back
    ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False, **local)
    try:
        cpus = max(1, int(spec.base.get("n_envs", 1)))
        trainable = tune.with_resources(tune.with_parameters(_trial, spec=spec, out_root=out_root), {"cpu": cpus})
        log(
            f"sweep: {spec.trials} trial(s) on {'cluster ' + address if address else 'a local Ray'} "
            f"({ray.cluster_resources().get('CPU', 0):.0f} CPUs), metric {spec.metric}, folder {out_root}"
        )
        tuner = tune.Tuner(
            trainable,
            param_space=_search_space(spec),
            tune_config=tune.TuneConfig(
                num_samples=spec.trials,
                metric=spec.metric,
                mode=METRICS[spec.metric],
                max_concurrent_trials=spec.max_concurrent or None,
                search_alg=tune.search.BasicVariantGenerator(random_state=spec.seed),
                trial_name_creator=lambda trial: f"trial_{trial.trial_id}",
                trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",
            ),
            run_config=tune.RunConfig(name="tune", storage_path=out_root, verbose=0),
        )
        grid = tuner.fit()
    finally:
        ray.shutdown()
        signal.signal(signal.SIGINT, sigint_handler)
    rows = []
    for result in grid:
        df = result.metrics_dataframe
        best = None
        if df is not None and spec.metric in df:
            best = float(df[spec.metric].max() if METRICS[spec.metric] == "max" else df[spec.metric].min())
        rows.append(
            {
                "trial": Path(result.path).name if result.path else "?",
                "params": {k: result.config.get(k) for k in spec.space},
                spec.metric: best,
                "timesteps": int(result.metrics.get("timesteps", 0)) if result.metrics else 0,
                "error": str(result.error) if result.error else None,
            }
        )
    sign = 1.0 if METRICS[spec.metric] == "max" else -1.0
    rows.sort(key=lambda r: float("-inf") if r[spec.metric] is None else sign * r[spec.metric], reverse=True)
    (Path(out_root) / "sweep_results.json").write_text(json.dumps(rows, indent=1) + "\n")
    log(f"{'trial':<40}{spec.metric:>14}  params")
    for r in rows:
        value = "error" if r["error"] else f"{r[spec.metric]:.2f}" if r[spec.metric] is not None else "-"
        log(f"{r['trial'][:39]:<40}{value:>14}  {r['params']}")
    return rows

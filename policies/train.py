"""Headless training of PPO/DQN policies on telesurg envs under contact-force limits.

A run lives in one folder (``TrainConfig.out``)::

    config.toml          the resolved configuration
    tb/                  TensorBoard logs (tensorboard --logdir runs/)
    eval.jsonl           one line per periodic evaluation (steps, wall time, success, violations, force)
    checkpoints/step_N/  the newest checkpoints (policy bundles; DQN adds its replay buffer)
    best/                the best model by evaluation success (then fewest violations)
    final/               the model at the end, or at Ctrl-C (status "interrupted")
    summary.json         budget, wall time, time to the success threshold, final evaluation

Every saved model is a policy bundle (``telesurg.policies.bundle``) with its card and normalisation.
One run's lifecycle (folder, env construction, the learn loop with Ctrl-C and resume, summary) is
kept together here (~400 lines); callbacks, evaluation and the bundle are modules of their own.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gymnasium as gym

from telesurg.policies.bundle import CARD_FILE, MODEL_FILE, NORMALIZATION_FILE, Policy, action_space_name
from telesurg.policies.callbacks import CriticWarmup, EvalCheckpointCallback, ProgressCallback, RunClock, score_of
from telesurg.policies.card import ModelCard, library_versions
from telesurg.policies.config import ConfigError, TrainConfig, algorithm_class, load_config
from telesurg.policies.evallog import read_eval_log
from telesurg.policies.evaluate import EvalResult, evaluate
from telesurg.policies.normalization import ObsNormalizer

REPLAY_BUFFER_FILE = "replay_buffer.pkl"
#: Success rate whose first crossing (steps and wall time) is recorded in summary.json.
SUCCESS_THRESHOLD = 0.95


@dataclass
class EnvFactory:
    """Builds one training env; picklable, so SubprocVecEnv workers can call it."""

    env_id: str
    env_options: dict[str, Any]
    shield: bool
    cost_weight: float
    in_subprocess: bool

    def __call__(self) -> gym.Env:
        if self.in_subprocess:
            # Ctrl-C goes to the whole process group; the main process saves the model and then
            # closes the workers, so workers must not die first.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        from stable_baselines3.common.monitor import Monitor

        from telesurg import envs  # noqa: F401  (registers the ids in a fresh worker)
        from telesurg.envs.wrappers import CostPenalty

        env = gym.make(self.env_id, shield=self.shield, **self.env_options)
        if self.cost_weight > 0:
            env = CostPenalty(env, self.cost_weight)
        return Monitor(env)


def use_subprocesses(cfg: TrainConfig) -> bool:
    """SubprocVecEnv only where it pays: several envs and more than one CPU."""
    if cfg.vec_env != "auto":
        return cfg.vec_env == "subproc"
    return cfg.n_envs > 1 and (os.cpu_count() or 1) > 1


def make_vec_env(cfg: TrainConfig) -> Any:
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

    subproc = use_subprocesses(cfg)
    factory = EnvFactory(cfg.env_id, dict(cfg.env), cfg.shield, cfg.cost_weight, subproc)
    fns = [factory] * cfg.n_envs
    venv = SubprocVecEnv(fns, start_method="forkserver") if subproc else DummyVecEnv(fns)
    if cfg.normalize_obs or cfg.normalize_reward:
        gamma = float(cfg.hyperparams.get("gamma", 0.99))
        venv = VecNormalize(venv, norm_obs=cfg.normalize_obs, norm_reward=cfg.normalize_reward, gamma=gamma)
    return venv


def _normalizer(venv: Any) -> ObsNormalizer | None:
    """The VecNormalize statistics (observations and returns) when training uses them."""
    from stable_baselines3.common.vec_env import VecNormalize

    return ObsNormalizer.from_vec_normalize(venv) if isinstance(venv, VecNormalize) else None


@dataclass(frozen=True)
class EnvSignature:
    """What a policy is tied to: observation/goal layouts and action space of the training env."""

    obs_layout_version: int
    obs_layout: str
    goal_layout: str
    action_space: str

    @classmethod
    def of(cls, cfg: TrainConfig) -> EnvSignature:
        env = gym.make(cfg.env_id, **cfg.env)
        try:
            base = env.unwrapped
            return cls(
                base.obs_layout.version,
                base.obs_layout.signature(),
                base.goal_layout.signature(),
                action_space_name(env.action_space),
            )
        finally:
            env.close()


def card_identity(cfg: TrainConfig, signature: EnvSignature) -> dict[str, Any]:
    """The model card fields that say what a policy is: env, algorithm, layouts, network, options."""
    return {
        "env_id": cfg.env_id,
        "algo": cfg.algo,
        "action_space": signature.action_space,
        "obs_layout_version": signature.obs_layout_version,
        "obs_layout": signature.obs_layout,
        "goal_layout": signature.goal_layout,
        "hyperparams": {**cfg.hyperparams, "net_arch": list(cfg.net_arch)},
        "env_options": dict(cfg.env),
    }


def make_card(
    cfg: TrainConfig,
    model: Any,
    clock: RunClock,
    signature: EnvSignature,
    history: list[str],
    versions: dict[str, str],
    status: str,
    run_dir: Path,
    origin: dict[str, Any] | None = None,
) -> ModelCard:
    curve = [[rec["timesteps"], rec["success_rate"], rec["wall_s"]] for rec in read_eval_log(run_dir)]
    return ModelCard(
        **card_identity(cfg, signature),
        training={
            "total_timesteps": cfg.total_timesteps,
            "timesteps_done": int(model.num_timesteps),
            "n_envs": cfg.n_envs,
            "seed": cfg.seed,
            "shield": cfg.shield,
            "cost_weight": cfg.cost_weight,
            "normalize_obs": cfg.normalize_obs,
            "normalize_reward": cfg.normalize_reward,
            "wall_time_s": round(clock.wall_s, 1),
            "eval_wall_time_s": round(clock.eval_s, 1),
            **(origin or {}),
        },
        curve=curve,
        command=history[0] if history else "",
        resumed_with=history[1:],
        config=cfg.to_dict(),
        status=status,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        versions=versions,
    )


def pretrained_origin(cfg: TrainConfig, previous: ModelCard | None) -> dict[str, Any]:
    """For a fine-tuned run, where it started: the pretrained bundle's pretraining record (dataset,
    its command, size and sources, epochs, losses, wall time) and the command that made it. Read
    once when the run starts; a resumed run carries it over from its checkpoint's card (the clone
    may have moved since)."""
    if not cfg.init:
        return {}
    if previous is not None and "pretrain" in previous.training:
        return {k: previous.training[k] for k in ("init", "pretrain", "pretrain_command") if k in previous.training}
    card = ModelCard.load(Path(cfg.init) / CARD_FILE)
    return {"init": cfg.init, "pretrain": card.training.get("pretrain", {}), "pretrain_command": card.command}


@dataclass
class TrainResult:
    run_dir: Path
    status: str  # "final" or "interrupted" (a failed run raises)
    timesteps: int
    wall_time_s: float
    best: Path | None
    final_eval: list[EvalResult]
    policy: Policy  # the model in memory at the end, with its normalisation


def latest_bundle(run_dir: Path) -> Path:
    """The newest saved model of a run (by timesteps): final/ or the newest checkpoint."""
    candidates = [p for p in [run_dir / "final", *run_dir.glob("checkpoints/step_*")] if (p / CARD_FILE).is_file()]
    if not candidates:
        raise FileNotFoundError(f"{run_dir} holds no checkpoint to resume from")
    return max(candidates, key=lambda p: ModelCard.load(p / CARD_FILE).training.get("timesteps_done", 0))


def train(
    cfg: TrainConfig,
    command: str = "",
    log: Callable[[str], None] = print,
    on_eval: Callable[[dict[str, Any]], None] | None = None,
    resume_from: Path | None = None,
) -> TrainResult:
    """Train according to ``cfg`` (validated). With ``resume_from`` (a bundle folder, see
    ``resume``), the model, normalisation, replay buffer, step count, clock and best score continue
    from that checkpoint."""
    import torch

    cfg.validate()
    run_dir = Path(cfg.out)
    if resume_from is None and (run_dir / "config.toml").exists():
        raise ConfigError(f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another --out")
    previous_card = ModelCard.load(resume_from / CARD_FILE) if resume_from is not None else None
    if previous_card is not None:
        done = int(previous_card.training.get("timesteps_done", 0))
        if done >= cfg.total_timesteps:
            raise ConfigError(
                f"{resume_from} already has {done:,} of total_timesteps {cfg.total_timesteps:,}; "
                "pass a larger --timesteps to continue"
            )
    torch.set_num_threads(cfg.torch_threads)
    signature = EnvSignature.of(cfg)
    versions = library_versions()
    history = [*([previous_card.command, *previous_card.resumed_with] if previous_card else []), command]

    venv = make_vec_env(cfg)
    try:
        model = _load_model(cfg, venv, resume_from, run_dir) if resume_from else _new_model(cfg, venv, run_dir)
        if cfg.init and resume_from is None:
            init_from_pretrained(model, venv, cfg, Path(cfg.init), signature)
            log(f"starting from the pretrained policy {cfg.init}")
        if cfg.init:
            freeze_obs_statistics(venv)
        origin = pretrained_origin(cfg, previous_card)
        demo_loss = [demonstration_loss(cfg, origin, log)] if cfg.demo_loss_weight > 0 and cfg.init else []
        if cfg.demo_loss_weight > 0 and not cfg.init:
            log("demo_loss_weight is ignored: there is no pretrained policy (init) whose demonstrations to keep")
        # Only now, with a model that trains, does the folder become a run.
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.toml").write_text(cfg.to_toml())
    except BaseException:
        venv.close()
        raise
    if previous_card is not None:
        log(f"resuming {cfg.env_id} {cfg.algo.upper()} from {resume_from} at {model.num_timesteps:,} steps")

    prev = previous_card.training if previous_card else {}
    clock = RunClock(prev.get("wall_time_s", 0.0), prev.get("eval_wall_time_s", 0.0))

    def save(folder: Path, status: str) -> None:
        card = make_card(cfg, model, clock, signature, history, versions, status, run_dir, origin)
        Policy(model, card, _normalizer(venv)).save(folder)
        if cfg.algo == "dqn" and status != "best":
            model.save_replay_buffer(folder / REPLAY_BUFFER_FILE)

    def evaluate_now() -> EvalResult:
        policy = Policy(model, None, _normalizer(venv))
        return evaluate(policy, cfg.env_id, cfg.eval.episodes, cfg.eval.seed, cfg.shield, cfg.env)

    evaluator = EvalCheckpointCallback(
        run_dir,
        cfg.eval.every_steps,
        cfg.checkpoint.every_steps,
        cfg.checkpoint.keep,
        clock,
        evaluate_now,
        save,
        log,
        on_eval=on_eval,
        best_score=best_score_from_log(run_dir) if resume_from is not None else None,
        eval_at_start=bool(cfg.init) and resume_from is None,
        stop_at_success=cfg.eval.stop_at_success,
    )
    progress = ProgressCallback(cfg.total_timesteps, clock, cfg.progress_every_s, log, lambda: evaluator.last)
    status = "final"
    sigint_handler: Any = None
    log(
        f"training {cfg.algo.upper()} on {cfg.env_id}: {cfg.total_timesteps:,} steps, {cfg.n_envs} env(s) "
        f"({'subprocesses' if use_subprocesses(cfg) else 'in-process'}), shield {'on' if cfg.shield else 'off'}, "
        f"cost weight {cfg.cost_weight}; run folder {run_dir}"
    )
    try:
        warmup = [CriticWarmup(cfg.critic_warmup_steps, log)] if cfg.critic_warmup_steps and cfg.init else []
        model.learn(
            cfg.total_timesteps - model.num_timesteps,
            callback=[progress, evaluator, *warmup, *demo_loss],
            reset_num_timesteps=resume_from is None,
            tb_log_name="run",
        )
        if evaluator.last is None or evaluator.last["timesteps"] != model.num_timesteps:
            evaluator.run_eval()
    except KeyboardInterrupt:
        status = "interrupted"
    except Exception:
        status = "failed"  # saved below for inspection; the error propagates
        raise
    finally:
        # Saving must finish: a second Ctrl-C while it runs is ignored (SIGKILL still works).
        if status != "final" and threading.current_thread() is threading.main_thread():
            sigint_handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            save(run_dir / "final", status)
            venv.close()
        finally:
            if sigint_handler is not None and status == "failed":
                signal.signal(signal.SIGINT, sigint_handler)
    log(
        f"{'interrupted' if status == 'interrupted' else 'finished'} at {model.num_timesteps:,} steps after "
        f"{clock.wall_s:.0f} s; model saved to {run_dir / 'final'}"
    )
    best = run_dir / "best" if (run_dir / "best" / CARD_FILE).is_file() else None
    final_eval: list[EvalResult] = []
    if status == "final" and best is not None and cfg.eval.final_episodes > 0:
        final_eval = final_evaluation(best, cfg, log)
    write_summary(run_dir, cfg, model.num_timesteps, clock, status, final_eval)
    if status == "interrupted":
        log(f"resume with: telesurg train --resume {run_dir}")
        if sigint_handler is not None:
            signal.signal(signal.SIGINT, sigint_handler)
        raise KeyboardInterrupt
    policy = Policy(model, ModelCard.load(run_dir / "final" / CARD_FILE), _normalizer(venv))
    return TrainResult(run_dir, status, int(model.num_timesteps), clock.wall_s, best, final_eval, policy)


def _new_model(cfg: TrainConfig, venv: Any, run_dir: Path) -> Any:
    try:
        return algorithm_class(cfg.algo)(
            "MultiInputPolicy",
            venv,
            seed=cfg.seed,
            policy_kwargs={"net_arch": list(cfg.net_arch)},
            tensorboard_log=str(run_dir / "tb"),
            device="cpu",
            verbose=0,
            **cfg.hyperparams,
        )
    except (AssertionError, TypeError, ValueError) as exc:
        raise ConfigError(f"cannot build {cfg.algo.upper()} with hyperparams {cfg.hyperparams}: {exc}") from None


def init_from_pretrained(model: Any, venv: Any, cfg: TrainConfig, bundle: Path, signature: EnvSignature) -> None:
    """Copy a pretrained bundle's network and observation statistics into a new ``model``;
    ``ConfigError`` (one line) unless it was made for this algorithm, task, layout and network."""
    try:
        pre = Policy.load(bundle)
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(f"--init: {exc}") from None
    card = pre.card
    assert card is not None
    problems = []
    if card.algo != cfg.algo:
        problems.append(f"it is {card.algo.upper()}, this run trains {cfg.algo.upper()}")
    if card.env_id.replace("Dense", "") != cfg.env_id.replace("Dense", ""):
        problems.append(f"it was made for {card.env_id}, this run trains {cfg.env_id}")
    if card.obs_layout_version != signature.obs_layout_version or card.obs_layout != signature.obs_layout:
        problems.append(f"its observation layout is {card.obs_layout}, the env's {signature.obs_layout}")
    if card.goal_layout != signature.goal_layout:
        problems.append(f"its goal layout is {card.goal_layout}, the env's {signature.goal_layout}")
    if card.action_space != signature.action_space:
        problems.append(f"it outputs {card.action_space} actions, the env takes {signature.action_space}")
    if pre.normalizer is not None and pre.normalizer.norm_obs and not cfg.normalize_obs:
        problems.append("it acts on normalised observations and this run has normalize_obs = false")
    if not problems and list(card.hyperparams.get("net_arch", [])) != list(cfg.net_arch):
        problems.append(f"its net_arch is {card.hyperparams.get('net_arch')}, this run's {list(cfg.net_arch)}")
    if not problems and cfg.algo == "dqn":
        # A DQfD clone's Q-values are returns of its pretraining reward: the same reward, discount
        # and scaling, or they mean something else here.
        pre_cfg = card.config or {}
        mine = {"env_id": cfg.env_id, "gamma": float(cfg.hyperparams.get("gamma", 0.99)),
                "cost_weight": cfg.cost_weight, "normalize_reward": cfg.normalize_reward}  # fmt: skip
        theirs = {"env_id": card.env_id, "gamma": float(pre_cfg.get("hyperparams", {}).get("gamma", 0.99)),
                  "cost_weight": pre_cfg.get("cost_weight", cfg.cost_weight),
                  "normalize_reward": pre_cfg.get("normalize_reward", cfg.normalize_reward)}  # fmt: skip
        for key, value in mine.items():
            if theirs[key] != value:
                problems.append(f"its Q-values are returns for {key} = {theirs[key]}, this run's is {value}")
    if problems:
        raise ConfigError(f"cannot start from {bundle}: " + "; ".join(problems))
    try:
        model.policy.load_state_dict(pre.model.policy.state_dict())
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(f"cannot start from {bundle}: its network differs from this run's ({first})") from None
    if pre.normalizer is not None and cfg.normalize_obs:
        from stable_baselines3.common.vec_env import VecNormalize

        assert isinstance(venv, VecNormalize)
        for key, rms in venv.obs_rms.items():
            rms.mean = pre.normalizer.mean[key].copy()
            rms.var = pre.normalizer.var[key].copy()
            rms.count = pre.normalizer.count
        if cfg.normalize_reward and pre.normalizer.return_count > 1:
            # A DQN clone's Q-values are returns under these reward statistics (the demonstrations').
            pre.normalizer.apply_returns_to(venv)


def demonstration_loss(cfg: TrainConfig, origin: dict[str, Any], log: Callable[[str], None]) -> Any:
    """The ``DemonstrationLoss`` callback on the training split of the dataset the ``init`` bundle
    was cloned from (the same episodes pretraining used); ``ConfigError`` if it cannot be read."""
    from telesurg.policies.dataset.lerobot import DatasetError, read_dataset
    from telesurg.policies.demonstrations import DemonstrationLoss, Demonstrations

    pre = origin.get("pretrain", {})
    dataset = pre.get("dataset")
    if not dataset:
        raise ConfigError(f"demo_loss_weight needs the dataset {cfg.init} was cloned from; its card names none")
    try:
        ds = read_dataset(dataset)
        size = (ds.info["total_episodes"], ds.info["total_frames"])
        if size != (pre.get("dataset_episodes"), pre.get("dataset_frames")):
            raise ConfigError(
                f"demo_loss_weight: {dataset} holds {size[0]} episodes / {size[1]} frames, the one {cfg.init} was "
                f"cloned from {pre.get('dataset_episodes')} / {pre.get('dataset_frames')} (rebuilt since?)"
            )
        env = gym.make(cfg.env_id, **cfg.env)
        try:
            ds.check_env(cfg.task, env)
            episodes = [
                e
                for e in ds.episodes(tasks=[cfg.task], split="train")
                if pre.get("include_flagged") or not e.hard_limit_exceeded
            ]
            if not episodes:
                raise DatasetError(f"it has no {cfg.task} training episodes")
            demos = Demonstrations.of(env, cfg.algo, episodes, cfg.cost_weight)
        finally:
            env.close()
    except (DatasetError, FileNotFoundError) as exc:
        raise ConfigError(f"demo_loss_weight: cannot read the demonstrations {dataset}: {exc}") from None
    batch = int(cfg.hyperparams.get("batch_size", 64 if cfg.algo == "ppo" else 32))
    return DemonstrationLoss(demos, cfg.demo_loss_weight, batch, cfg.seed, log)


def freeze_obs_statistics(venv: Any) -> None:
    """Keep ``VecNormalize``'s observation statistics as they are (the dataset's, for a fine-tuned
    clone): the cloned network's inputs mean what they meant in pretraining. Updated, they drift
    with the first exploratory steps — a feature constant in the demonstrations (Trace's jaw) moved
    32 standard deviations in 10,000 steps and took the clone from 96% to 0% success with its actor
    frozen. Reward statistics still update."""
    from stable_baselines3.common.running_mean_std import RunningMeanStd
    from stable_baselines3.common.vec_env import VecNormalize

    class Fixed(RunningMeanStd):
        def update(self, arr: Any) -> None:
            pass

    if isinstance(venv, VecNormalize) and venv.norm_obs:
        for key, rms in venv.obs_rms.items():
            fixed = Fixed(shape=rms.mean.shape)
            fixed.mean, fixed.var, fixed.count = rms.mean, rms.var, rms.count
            venv.obs_rms[key] = fixed


def _load_model(cfg: TrainConfig, venv: Any, bundle: Path, run_dir: Path) -> Any:
    model = algorithm_class(cfg.algo).load(
        bundle / MODEL_FILE, env=venv, device="cpu", tensorboard_log=str(run_dir / "tb")
    )
    norm_path = bundle / NORMALIZATION_FILE
    if norm_path.is_file():
        ObsNormalizer.load(norm_path).apply_to(venv)
    elif cfg.normalize_obs or cfg.normalize_reward:
        raise ConfigError(f"{bundle} lacks {NORMALIZATION_FILE}; cannot resume a normalised run without it")
    if (bundle / REPLAY_BUFFER_FILE).is_file():
        model.load_replay_buffer(bundle / REPLAY_BUFFER_FILE)
    return model


def best_score_from_log(run_dir: Path) -> tuple[float, float, float] | None:
    """The best evaluation score recorded in a run's eval.jsonl (to keep ``best/`` honest on resume)."""
    if not (run_dir / "best" / CARD_FILE).is_file():
        return None
    return max((score_of(r) for r in read_eval_log(run_dir)), default=None)


def final_evaluation(bundle: Path, cfg: TrainConfig, log: Callable[[str], None]) -> list[EvalResult]:
    """Evaluate a bundle without and with the force shield and record the figures in its card."""
    policy = Policy.load(bundle)
    n = cfg.eval.final_episodes
    log(f"final evaluation of {bundle}: {n} episodes without and with the shield")
    results = [evaluate(policy, cfg.env_id, n, cfg.eval.seed, shield, cfg.env) for shield in (False, True)]
    card = ModelCard.load(bundle / CARD_FILE)
    card.evaluation = {("with_shield" if r.shield else "without_shield"): r.to_dict() for r in results}
    card.save(bundle / CARD_FILE)
    return results


def write_summary(
    run_dir: Path, cfg: TrainConfig, timesteps: int, clock: RunClock, status: str, final_eval: list[EvalResult]
) -> None:
    recs = read_eval_log(run_dir)
    first = next((r for r in recs if r["success_rate"] >= SUCCESS_THRESHOLD), None)
    summary = {
        "env_id": cfg.env_id,
        "algo": cfg.algo,
        "status": status,
        "timesteps": int(timesteps),
        "wall_time_s": round(clock.wall_s, 1),
        "eval_wall_time_s": round(clock.eval_s, 1),
        "success_threshold": SUCCESS_THRESHOLD,
        "first_reached": (
            {"timesteps": first["timesteps"], "wall_s": first["wall_s"], "train_wall_s": first["train_wall_s"]}
            if first
            else None
        ),
        "best_eval": max(recs, key=score_of) if recs else None,
        "final_eval": [r.to_dict() for r in final_eval],
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "timestamp": time.time(),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


def resume(path: str | Path, overrides: list[str] | None = None) -> tuple[TrainConfig, Path]:
    """Config and checkpoint for ``telesurg train --resume PATH`` (a run folder or a bundle in it)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"nothing to resume at {str(path)!r}")
    if (p / "config.toml").is_file():
        run_dir, bundle = p, latest_bundle(p)
    elif (p / CARD_FILE).is_file():
        bundle = p
        run_dir = p.parent.parent if p.parent.name == "checkpoints" else p.parent
    else:
        raise FileNotFoundError(f"{str(path)!r} is neither a run folder nor a saved model")
    before = load_config(run_dir / "config.toml", [f'out="{run_dir}"'])
    cfg = load_config(run_dir / "config.toml", [*(overrides or []), f'out="{run_dir}"'])
    fixed = [*FIXED_ON_RESUME, *(["n_envs"] if cfg.algo == "dqn" else [])]
    changed = [key for key in fixed if getattr(cfg, key) != getattr(before, key)]
    if changed:
        raise ConfigError(
            f"cannot change {', '.join(changed)} when resuming {run_dir} (the checkpoint was trained with "
            "them); start a new run with --out instead"
        )
    return cfg, bundle


#: Settings a resumed run must keep: they define the policy and its card (DQN adds n_envs, the
#: shape of its replay buffer).
FIXED_ON_RESUME = (
    "env_id",
    "init",
    "algo",
    "seed",
    "net_arch",
    "hyperparams",
    "env",
    "shield",
    "cost_weight",
    "normalize_obs",
    "normalize_reward",
)

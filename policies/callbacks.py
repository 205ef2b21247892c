"""stable-baselines3 callbacks of a telesurg training run: progress lines, periodic evaluation under
force limits (keeping the best model), and checkpoints."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from telesurg.policies.evallog import append_eval
from telesurg.policies.evaluate import EvalResult


def score_of(record: dict[str, Any]) -> tuple[float, float, float]:
    """How evaluations rank for keeping the best model: success rate, then fewer hard-limit
    violations, then the higher mean return (which, for shaped rewards, rewards precision)."""
    return (record["success_rate"], -record["violation_rate"], record["mean_return"])


def format_duration(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "?"
    seconds = round(float(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class RunClock:
    """Wall time of a run, with the time spent in evaluation kept apart so rates show training alone."""

    def __init__(self, already_s: float = 0.0, already_eval_s: float = 0.0) -> None:
        self.start = time.monotonic() - already_s
        self.eval_s = already_eval_s

    @property
    def wall_s(self) -> float:
        return time.monotonic() - self.start


class ProgressCallback(BaseCallback):
    """Prints one line every ``every_s`` seconds: steps, rate, success rates, ETA."""

    def __init__(
        self,
        total_timesteps: int,
        clock: RunClock,
        every_s: float,
        log: Callable[[str], None],
        last_eval: Callable[[], dict[str, Any] | None],
    ) -> None:
        super().__init__()
        self.total = total_timesteps
        self.clock = clock
        self.every_s = every_s
        self.log = log
        self.last_eval = last_eval
        self._last_print = 0.0
        self._start_steps = 0
        self._start_time = 0.0

    def _on_training_start(self) -> None:
        self._start_steps = self.num_timesteps
        self._start_time = time.monotonic()
        self._last_print = self._start_time

    def _on_step(self) -> bool:
        now = time.monotonic()
        if now - self._last_print >= self.every_s:
            self._last_print = now
            self.log(self.line())
        return True

    def line(self) -> str:
        done = self.num_timesteps - self._start_steps
        elapsed = max(time.monotonic() - self._start_time, 1e-9)
        rate = done / elapsed
        eta = (self.total - self.num_timesteps) / rate if rate > 0 else float("inf")
        buf = self.model.ep_success_buffer
        train_success = f"{np.mean(buf):.2f}" if buf else "-"
        ev = self.last_eval()
        eval_part = f"eval success {ev['success_rate']:.2f} @ {ev['timesteps']:,}" if ev else "eval -"
        return (
            f"steps {self.num_timesteps:,}/{self.total:,} ({self.num_timesteps / self.total:.0%}) | "
            f"{rate:,.0f} steps/s | train success {train_success} | {eval_part} | ETA {format_duration(eta)}"
        )


class EvalCheckpointCallback(BaseCallback):
    """Every ``eval_every`` steps: deterministic evaluation (success, violation rate, contact force)
    logged to TensorBoard and ``eval.jsonl``, the best model saved to ``best/``. Every
    ``checkpoint_every`` steps: a checkpoint in ``checkpoints/step_N`` (the newest ``keep`` kept).

    ``save(folder, status)`` writes a policy bundle of the current model; ``evaluate_now()`` returns
    an ``EvalResult`` of the current model; both are provided by the training run.
    """

    def __init__(
        self,
        run_dir: Path,
        eval_every: int,
        checkpoint_every: int,
        keep: int,
        clock: RunClock,
        evaluate_now: Callable[[], EvalResult],
        save: Callable[[Path, str], None],
        log: Callable[[str], None],
        on_eval: Callable[[dict[str, Any]], None] | None = None,
        best_score: tuple[float, float, float] | None = None,
        eval_at_start: bool = False,
        stop_at_success: float = 0.0,
    ) -> None:
        super().__init__()
        self.eval_at_start = eval_at_start
        self.stop_at_success = stop_at_success
        self.run_dir = run_dir
        self.eval_every = eval_every
        self.checkpoint_every = checkpoint_every
        self.keep = keep
        self.clock = clock
        self.evaluate_now = evaluate_now
        self.save = save
        self.log = log
        self.on_eval = on_eval
        self.best_score = best_score
        self.last: dict[str, Any] | None = None
        self._stop_now = False
        self._next_eval = 0
        self._next_checkpoint = 0

    def _on_training_start(self) -> None:
        self._next_eval = (self.num_timesteps // self.eval_every + 1) * self.eval_every
        self._next_checkpoint = (self.num_timesteps // self.checkpoint_every + 1) * self.checkpoint_every
        self._stop_now = False
        if self.eval_at_start:  # a pretrained start is judged too: best/ is never worse than it
            record = self.run_eval()
            self._stop_now = bool(self.stop_at_success) and record["success_rate"] >= self.stop_at_success

    def _on_step(self) -> bool:
        if self._stop_now:
            self.log(f"the starting policy is already at the success threshold {self.stop_at_success}: stopping")
            return False
        if self.num_timesteps >= self._next_eval:
            self._next_eval += self.eval_every
            record = self.run_eval()
            if self.stop_at_success and record["success_rate"] >= self.stop_at_success:
                self.log(f"evaluation success {record['success_rate']:.2f} >= {self.stop_at_success}: stopping")
                return False
        if self.num_timesteps >= self._next_checkpoint:
            self._next_checkpoint += self.checkpoint_every
            self.checkpoint()
        return True

    def run_eval(self) -> dict[str, Any]:
        t0 = time.monotonic()
        result = self.evaluate_now()
        self.clock.eval_s += time.monotonic() - t0
        record = {
            "timesteps": self.num_timesteps,
            "wall_s": round(self.clock.wall_s, 2),
            "train_wall_s": round(self.clock.wall_s - self.clock.eval_s, 2),
            **{k: v for k, v in result.to_dict().items() if k not in ("env_id", "seed", "episodes", "shield")},
        }
        for key in (
            "success_rate",
            "violation_rate",
            "mean_episode_length",
            "mean_return",
            "mean_contact_force_N",
            "max_contact_force_N",
        ):
            self.logger.record(f"eval/{key}", record[key])
        self.logger.dump(self.num_timesteps)
        append_eval(self.run_dir, record)
        score = score_of(record)
        improved = self.best_score is None or score > self.best_score
        if improved:
            self.best_score = score
            self.save(self.run_dir / "best", "best")
        self.last = record
        self.log(
            f"eval @ {self.num_timesteps:,}: success {record['success_rate']:.2f}, violations "
            f"{record['violation_rate']:.2f}, mean/max force {record['mean_contact_force_N']:.2f}/"
            f"{record['max_contact_force_N']:.2f} N{' (new best)' if improved else ''}"
        )
        if self.on_eval is not None:
            self.on_eval(record)
        return record

    def checkpoint(self) -> Path:
        folder = self.run_dir / "checkpoints" / f"step_{self.num_timesteps:09d}"
        self.save(folder, "checkpoint")
        old = sorted((self.run_dir / "checkpoints").glob("step_*"))[: -self.keep]
        for path in old:
            shutil.rmtree(path, ignore_errors=True)
        return folder


class CriticWarmup(BaseCallback):
    """Fine-tuning a cloned PPO policy: for the first ``steps`` environment steps only the critic
    learns (the actor's layers and log std are frozen), so the first policy updates use advantages
    from a value function fitted to the cloned policy rather than an untrained one's noise, which
    would otherwise pull the actor away from the demonstrations."""

    def __init__(self, steps: int, log: Callable[[str], None]) -> None:
        super().__init__()
        self.steps = steps
        self.log = log
        self.frozen = False

    def _actor_parameters(self) -> list[Any]:
        policy = self.model.policy
        return [*policy.mlp_extractor.policy_net.parameters(), *policy.action_net.parameters(), policy.log_std]

    def _on_training_start(self) -> None:
        if self.num_timesteps < self.steps:
            for p in self._actor_parameters():
                p.requires_grad_(False)
            self.frozen = True
            self.log(f"critic warm-up: the actor stays as pretrained for the first {self.steps:,} steps")

    def _on_rollout_start(self) -> None:
        # After the previous update (SB3 calls on_rollout_end before train()): the update of the
        # rollout that reached ``steps`` was still the critic's alone.
        if self.frozen and self.num_timesteps >= self.steps:
            for p in self._actor_parameters():
                p.requires_grad_(True)
            self.frozen = False
            self.log(f"critic warm-up done at {self.num_timesteps:,} steps: the actor learns from now on")

    def _on_step(self) -> bool:
        return True

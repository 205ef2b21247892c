"""Evaluation of a policy on seeded episodes: success, hard-limit violations, episode length and
contact force, optionally recording the endoscope camera."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from telesurg import envs
from telesurg.policies.bundle import Policy

#: A step counts as "in contact" for the mean-force figure above this magnitude (N).
CONTACT_THRESHOLD_N = 0.01


@dataclass
class EvalResult:
    """Figures over ``episodes`` deterministic episodes (seeds ``seed`` … ``seed + episodes - 1``).

    ``violation_rate``: fraction of episodes that crossed the hard force limit.
    ``mean_contact_force_N``: mean force over the steps in contact (0 if there were none).
    ``max_contact_force_N``: largest force at any physics step of any episode.
    """

    env_id: str
    shield: bool
    episodes: int
    seed: int
    success_rate: float
    violation_rate: float
    mean_episode_length: float
    mean_return: float
    mean_contact_force_N: float
    max_contact_force_N: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def make_eval_env(env_id: str, shield: bool, env_options: dict[str, Any] | None = None, **kwargs: Any) -> gym.Env:
    return gym.make(env_id, shield=shield, **(env_options or {}), **kwargs)


def evaluate(
    policy: Policy,
    env_id: str,
    episodes: int,
    seed: int = 0,
    shield: bool = False,
    env_options: dict[str, Any] | None = None,
    on_frame: Callable[[np.ndarray], None] | None = None,
    on_episode: Callable[[int, dict[str, Any]], None] | None = None,
    check_layout: bool = True,
) -> EvalResult:
    """Run ``episodes`` episodes with deterministic actions. ``on_frame`` receives the camera image
    of every step of the first episode (the env then renders); ``on_episode(i, info)`` follows each
    episode."""
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    env = make_eval_env(env_id, shield, env_options, render_mode="rgb_array" if on_frame else None)
    try:
        if check_layout:
            policy.check_env(env)
        successes = violations = steps_total = 0
        returns: list[float] = []
        force_sum = 0.0
        force_steps = 0
        force_max = 0.0
        for i in range(episodes):
            obs, info = env.reset(seed=seed + i)
            record = on_frame is not None and i == 0
            if record:
                on_frame(env.render())
            done = False
            ep_return = 0.0
            violated = False
            while not done:
                action = policy.predict(obs)
                obs, reward, terminated, truncated, info = env.step(action)
                done = terminated or truncated
                ep_return += float(reward)
                steps_total += 1
                violated |= bool(info["force_limit_exceeded"])
                force = float(info["contact_force_N"])
                if force > CONTACT_THRESHOLD_N:
                    force_sum += force
                    force_steps += 1
                force_max = max(force_max, float(info["contact_force_max_N"]))
                if record:
                    on_frame(env.render())
            successes += bool(info["is_success"])
            violations += violated
            returns.append(ep_return)
            if on_episode is not None:
                on_episode(i, info)
    finally:
        env.close()
    return EvalResult(
        env_id=env_id,
        shield=shield,
        episodes=episodes,
        seed=seed,
        success_rate=successes / episodes,
        violation_rate=violations / episodes,
        mean_episode_length=steps_total / episodes,
        mean_return=float(np.mean(returns)),
        mean_contact_force_N=force_sum / force_steps if force_steps else 0.0,
        max_contact_force_N=force_max if math.isfinite(force_max) else float("inf"),
    )


def format_results(results: list[EvalResult]) -> str:
    head = (
        f"{'shield':<8}{'episodes':>9}{'success':>9}{'violations':>12}{'mean len':>10}"
        f"{'mean F (N)':>12}{'max F (N)':>11}"
    )
    rows = [head, "-" * len(head)]
    for r in results:
        rows.append(
            f"{'on' if r.shield else 'off':<8}{r.episodes:>9}{r.success_rate:>9.0%}{r.violation_rate:>12.0%}"
            f"{r.mean_episode_length:>10.1f}{r.mean_contact_force_N:>12.2f}{r.max_contact_force_N:>11.2f}"
        )
    return "\n".join(rows)


class EvalSetupError(ValueError):
    """A saved policy that cannot be evaluated as asked (one line: missing, mismatched, bad env)."""


@dataclass(frozen=True)
class SavedPolicy:
    """A saved policy ready to evaluate: the env id, the card's env options and the frame rate."""

    policy: Policy
    env_id: str
    options: dict[str, Any]
    fps: float


def load_saved(model: str, env_id: str | None = None) -> SavedPolicy:
    """Load ``model`` (a folder or its model.zip) and check it against ``env_id`` (default: its
    card's) under its card's env options; ``EvalSetupError`` with one line otherwise."""
    from telesurg.policies.bundle import PolicyMismatch

    try:
        policy = Policy.load(model)
    except (FileNotFoundError, ValueError) as exc:
        raise EvalSetupError(str(exc)) from None
    card = policy.card
    env_id = env_id or card.env_id
    if env_id not in envs.ENV_IDS:
        raise EvalSetupError(f"unknown env id {env_id!r}; run 'telesurg envs' for the list")
    options = card.env_options  # the force limits etc. the policy was trained and is judged under
    try:
        probe = gym.make(env_id, **options)
    except (TypeError, ValueError) as exc:
        raise EvalSetupError(f"model card env_options {options} are not valid: {exc}") from None
    fps = float(probe.metadata.get("render_fps", 25))
    try:
        policy.check_env(probe)
    except PolicyMismatch as exc:
        raise EvalSetupError(str(exc)) from None
    finally:
        probe.close()
    return SavedPolicy(policy, env_id, options, fps)


def evaluate_saved(
    saved: SavedPolicy,
    episodes: int,
    seed: int,
    shields: tuple[bool, ...],
    video: str | None = None,
    say: Callable[[str], None] = print,
) -> list[EvalResult]:
    """Evaluate ``saved`` once per shield setting; ``video``: record the first setting's first
    episode from the endoscope camera (a bad path raises ``EvalSetupError`` before any episode)."""
    card = saved.policy.card
    say(f"evaluating {card.algo.upper()} policy ({card.env_id}) on {saved.env_id}: {episodes} episodes, seed {seed}")
    results: list[EvalResult] = []
    for i, shield in enumerate(shields):
        writer = None
        if video and i == 0:
            from telesurg.policies.video import Mp4Writer

            try:
                writer = Mp4Writer(video, saved.fps)
            except ValueError as exc:
                raise EvalSetupError(str(exc)) from None
        try:
            results.append(
                evaluate(
                    saved.policy,
                    saved.env_id,
                    episodes,
                    seed,
                    shield,
                    saved.options,
                    on_frame=writer.write if writer else None,
                )
            )
        finally:
            if writer is not None:
                writer.close()
                say(f"video of episode 0 ({writer.frames} frames) written to {video}")
    return results

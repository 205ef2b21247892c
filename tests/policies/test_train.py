"""Training: PPO and DQN learn, save, load and predict identically; resume continues the step
count; Ctrl-C saves a final checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from telesurg.policies.bundle import Policy
from telesurg.policies.card import ModelCard
from telesurg.policies.train import resume, train

from .conftest import tiny_config


def _observations(env_id: str, n: int = 32) -> dict[str, np.ndarray]:
    """A batch of real observations from random play."""
    env = gym.make(env_id)
    obs, _ = env.reset(seed=3)
    batch = []
    for _ in range(n):
        obs, *_ = env.step(env.action_space.sample())
        batch.append(obs)
    env.close()
    return {k: np.stack([o[k] for o in batch]) for k in batch[0]}


@pytest.mark.parametrize(
    ("env_id", "algo"),
    [("telesurg/ReachDense-v0", "ppo"), ("telesurg/ReachDenseDiscrete-v0", "dqn")],
)
def test_learns_saves_loads_and_predicts_identically(tmp_path: Path, env_id: str, algo: str) -> None:
    cfg = tiny_config(env_id, tmp_path / "run")
    result = train(cfg, log=lambda _m: None)
    assert result.status == "final" and result.timesteps >= 256
    model = result.policy.model
    assert model.num_timesteps >= 256
    # The network was trained: its parameters moved away from a fresh model with the same seed.
    fresh = type(model)("MultiInputPolicy", model.get_env(), seed=cfg.seed, policy_kwargs={"net_arch": [8]})
    initial = torch.nn.utils.parameters_to_vector(fresh.policy.parameters())
    trained = torch.nn.utils.parameters_to_vector(model.policy.parameters())
    assert not torch.allclose(initial, trained)

    loaded = Policy.load(tmp_path / "run" / "final")
    assert loaded.card.algo == algo and loaded.card.env_id == env_id
    assert loaded.normalizer is not None
    obs = _observations(env_id)
    np.testing.assert_array_equal(result.policy.predict(obs), loaded.predict(obs))
    # Normalisation is part of the policy: without it the actions would differ.
    raw, _ = loaded.model.predict(obs, deterministic=True)
    assert not np.array_equal(raw, loaded.predict(obs))
    # Run folder contents.
    run = tmp_path / "run"
    records = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert [r["timesteps"] for r in records] == sorted(r["timesteps"] for r in records)
    assert {"success_rate", "violation_rate", "mean_contact_force_N", "max_contact_force_N"} <= set(records[0])
    assert (run / "best" / "model.zip").is_file() and list((run / "tb").rglob("events.out.tfevents.*"))
    assert len(list((run / "checkpoints").glob("step_*"))) == 2
    card = ModelCard.load(run / "best" / "card.json")
    assert set(card.evaluation) == {"without_shield", "with_shield"}


def test_resume_continues_the_step_count(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = train(tiny_config("telesurg/ReachDense-v0", run), log=lambda _m: None)
    assert first.timesteps == 256
    cfg, bundle = resume(run, ["total_timesteps=512"])
    assert bundle.name == "final"
    lines: list[str] = []
    second = train(cfg, log=lines.append, resume_from=bundle)
    assert "at 256 steps" in lines[0]
    assert second.timesteps == 512
    card = ModelCard.load(run / "final" / "card.json")
    assert card.training["timesteps_done"] == 512
    steps = [json.loads(line)["timesteps"] for line in (run / "eval.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 512 and max(s for s in steps if s <= 256) == 256
    # Wall time accumulates across the two sessions.
    assert card.training["wall_time_s"] >= first.wall_time_s
    # Normalisation statistics continue (their sample count keeps growing) instead of restarting.
    assert first.policy.normalizer.count > 256
    # +256 steps, +1 for the reset observation that starts the resumed learn().
    assert second.policy.normalizer.count == pytest.approx(first.policy.normalizer.count + 257)
    assert second.policy.normalizer.return_count > first.policy.normalizer.return_count + 200
    # One TensorBoard run continues, and the card keeps the command history.
    assert len(list((run / "tb").iterdir())) == 1
    assert card.resumed_with == [""] and card.config["total_timesteps"] == 512


def test_resume_refuses_a_finished_run_and_changed_settings(tmp_path: Path) -> None:
    from telesurg.policies.config import ConfigError

    run = tmp_path / "run"
    train(tiny_config("telesurg/ReachDense-v0", run), log=lambda _m: None)
    before = (run / "final" / "card.json").read_text()
    cfg, bundle = resume(run)
    with pytest.raises(ConfigError, match="already has 256 of total_timesteps 256"):
        train(cfg, log=lambda _m: None, resume_from=bundle)
    assert (run / "final" / "card.json").read_text() == before  # nothing overwritten
    with pytest.raises(ConfigError, match="cannot change env_id, hyperparams when resuming"):
        resume(run, ['env_id="telesurg/Reach-v0"', "hyperparams.gamma=0.5"])


def test_best_score_survives_a_resume(tmp_path: Path) -> None:
    from telesurg.policies.train import best_score_from_log

    run = tmp_path / "run"
    train(tiny_config("telesurg/ReachDense-v0", run), log=lambda _m: None)
    records = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    best = max(records, key=lambda r: (r["success_rate"], -r["violation_rate"], r["mean_return"]))
    assert best_score_from_log(run) == (best["success_rate"], -best["violation_rate"], best["mean_return"])
    assert ModelCard.load(run / "best" / "card.json").training["timesteps_done"] == best["timesteps"]


def test_training_envs_carry_the_shield_and_the_cost_term() -> None:
    from telesurg.envs.wrappers import CostPenalty, ForceShieldWrapper
    from telesurg.policies.train import EnvFactory

    env = EnvFactory("telesurg/PalpateDense-v0", {"hard_N": 5.0}, shield=True, cost_weight=2.0, in_subprocess=False)()
    chain, e = [], env
    while hasattr(e, "env"):
        chain.append(type(e))
        e = e.env
    assert ForceShieldWrapper in chain and CostPenalty in chain
    assert env.unwrapped.limits.hard_N == 5.0
    env.reset(seed=0)
    saw = {"shield": False, "cost": False}
    for _ in range(60):
        _, reward, terminated, _, info = env.step(np.array([0.0, 0.0, -1.0, -1.0], dtype=np.float32))
        saw["shield"] |= info["shield_active"]
        saw["cost"] |= reward < info["reward_without_cost"]
        assert not terminated
    assert all(saw.values())
    env.close()


def test_resume_dqn_restores_replay_buffer(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = train(tiny_config("telesurg/ReachDenseDiscrete-v0", run), log=lambda _m: None)
    size = first.policy.model.replay_buffer.size()
    assert (run / "final" / "replay_buffer.pkl").is_file()
    cfg, bundle = resume(run, ["total_timesteps=384"])
    second = train(cfg, log=lambda _m: None, resume_from=bundle)
    assert second.timesteps == 384
    assert second.policy.model.replay_buffer.size() == size + 128


def test_an_existing_run_is_never_overwritten(tmp_path: Path) -> None:
    from telesurg.policies.config import ConfigError

    train(tiny_config("telesurg/ReachDense-v0", tmp_path / "run", total_timesteps=64), log=lambda _m: None)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(tiny_config("telesurg/ReachDense-v0", tmp_path / "run"), log=lambda _m: None)


def test_ctrl_c_saves_a_final_checkpoint_that_resumes(tmp_path: Path) -> None:
    """A real SIGINT to a run with two subprocess envs: exit 130, final/ saved as interrupted."""
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "telesurg.teleop.cli",
        "train",
        "--env",
        "telesurg/ReachDense-v0",
        "--timesteps",
        "1000000",
        "--n-envs",
        "2",
        "--out",
        str(run),
        "--set",
        "hyperparams.n_steps=64",
        "--set",
        "eval.every_steps=256",
        "--set",
        "eval.episodes=1",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,
    )
    out = []
    deadline = time.monotonic() + 120
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            if line.startswith("eval @"):
                break
            assert time.monotonic() < deadline, "no evaluation within 120 s"
        # Ctrl-C at a terminal reaches the whole process group, workers included.
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = "".join(out) + rest
    assert proc.returncode == 130, text
    assert "Traceback" not in text
    assert "resume with: telesurg train --resume" in text
    card = ModelCard.load(run / "final" / "card.json")
    assert card.status == "interrupted"
    assert card.training["timesteps_done"] >= 256
    cfg, bundle = resume(run, ["total_timesteps=" + str(card.training["timesteps_done"] + 128), "n_envs=1"])
    assert bundle.name == "final"
    assert train(cfg, log=lambda _m: None, resume_from=bundle).timesteps >= card.training["timesteps_done"] + 128


def test_a_failing_run_keeps_its_model(tmp_path: Path) -> None:
    """An error mid-training propagates, and the model so far is saved as "failed" and resumable."""
    run = tmp_path / "run"

    def explode(record: dict) -> None:
        raise RuntimeError("disk full")

    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(RuntimeError, match="disk full"):
        train(tiny_config("telesurg/ReachDense-v0", run), log=lambda _m: None, on_eval=explode)
    assert signal.getsignal(signal.SIGINT) is handler  # Ctrl-C works as before (ignored only while saving)
    card = ModelCard.load(run / "final" / "card.json")
    assert card.status == "failed" and card.training["timesteps_done"] >= 128
    cfg, bundle = resume(run)
    assert bundle.name == "final" and train(cfg, log=lambda _m: None, resume_from=bundle).timesteps == 256

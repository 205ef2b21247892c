"""Evaluation CLI: figures, video from the endoscope camera, training-curve plot, layout checks."""

from __future__ import annotations

import json
from pathlib import Path

import av
import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

from telesurg.policies.bundle import Policy, PolicyMismatch
from telesurg.policies.card import ModelCard
from telesurg.policies.evaluate import evaluate
from telesurg.policies.train import train
from telesurg.teleop.cli import main

from .conftest import tiny_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("eval") / "run"
    train(tiny_config("telesurg/ReachDense-v0", run), log=lambda _m: None)
    return run


def test_eval_prints_figures_with_and_without_shield(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "res.json"
    assert main(["eval", str(run_dir / "best"), "--episodes", "3", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "success" in text and "violations" in text and "max F (N)" in text
    rows = json.loads(out.read_text())
    assert [r["shield"] for r in rows] == [False, True]
    for r in rows:
        assert r["episodes"] == 3 and r["mean_episode_length"] == 50.0
        assert 0.0 <= r["success_rate"] <= 1.0 and 0.0 <= r["violation_rate"] <= 1.0


def test_eval_records_video_and_plots_the_training_curve(run_dir: Path, tmp_path: Path) -> None:
    video, plot = tmp_path / "ep.mp4", tmp_path / "curve.png"
    rc = main(
        [
            "eval",
            str(run_dir / "best" / "model.zip"),
            "--episodes",
            "1",
            "--shield",
            "off",
            "--video",
            str(video),
            "--plot",
            str(plot),
        ]
    )
    assert rc == 0
    with av.open(str(video)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 51  # the reset frame and one per step of the 50-step episode
    assert frames[0].shape[0] >= 200 and frames[0].std() > 5  # a real camera image, not blank
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 0.1  # the arm moved
    with Image.open(plot) as img:
        assert img.format == "PNG" and img.size[0] >= 400


def test_evaluation_counts_hard_limit_violations(tmp_path: Path) -> None:
    """A policy that always pushes down crosses the hard limit without the shield, never with it."""

    class PushDown:
        card = None

        def check_env(self, env: gym.Env) -> None:
            pass

        def predict(self, obs: dict) -> np.ndarray:
            return np.array([0.0, 0.0, -1.0, -1.0], dtype=np.float32)

    off = evaluate(PushDown(), "telesurg/Palpate-v0", 3, seed=0, shield=False)  # type: ignore[arg-type]
    on = evaluate(PushDown(), "telesurg/Palpate-v0", 3, seed=0, shield=True)  # type: ignore[arg-type]
    assert off.violation_rate == 1.0 and off.max_contact_force_N > 6.0
    assert on.violation_rate == 0.0 and 3.0 < on.max_contact_force_N < 6.0
    assert off.mean_episode_length < 75 and on.mean_episode_length == 75  # violations end episodes


def test_layout_mismatch_is_refused(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = Policy.load(run_dir / "best")
    env = gym.make("telesurg/Palpate-v0")
    with pytest.raises(PolicyMismatch, match="expects observation layout"):
        policy.check_env(env)
    env.close()
    rc = main(["eval", str(run_dir / "best"), "--env", "telesurg/Palpate-v0"])
    assert rc == 2 and "expects observation layout" in capsys.readouterr().err
    # A card from a different layout version names both versions.
    copy = tmp_path / "old"
    policy.save(copy)
    card = ModelCard.load(copy / "card.json")
    card.obs_layout_version = 0
    card.save(copy / "card.json")
    rc = main(["eval", str(copy)])
    err = capsys.readouterr().err
    assert rc == 2 and "layout version 0" in err and "this env has version 1" in err
    # Discrete policy into a Box env: action spaces differ.
    card.obs_layout_version = 1
    card.action_space = "discrete(13)"
    card.save(copy / "card.json")
    assert main(["eval", str(copy)]) == 2
    assert "outputs discrete(13) actions" in capsys.readouterr().err


def test_cost_penalty_subtracts_weighted_cost() -> None:
    from telesurg.envs.wrappers import CostPenalty

    plain = gym.make("telesurg/PalpateDense-v0")
    penalised = CostPenalty(gym.make("telesurg/PalpateDense-v0"), weight=5.0)
    plain.reset(seed=1)
    penalised.reset(seed=1)
    down = np.array([0.0, 0.0, -1.0, -1.0], dtype=np.float32)
    saw_cost = False
    for _ in range(40):
        _, r0, t0, _, info0 = plain.step(down)
        _, r1, t1, _, info1 = penalised.step(down)
        assert r1 == pytest.approx(r0 - 5.0 * info0["cost"])
        assert info1["reward_without_cost"] == pytest.approx(r0)
        saw_cost |= info0["cost"] > 0
        if t0 or t1:
            break
    assert saw_cost
    plain.close()
    penalised.close()
    with pytest.raises(ValueError, match="cost weight"):
        CostPenalty(gym.make("telesurg/Palpate-v0"), weight=-1.0)

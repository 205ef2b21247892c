"""The learned motion predictor: its inputs, the shipped weights and their evaluation, training,
and `telesurg train-predictor` through the stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from telesurg.teleop.correction.learned import ASSET, LearnedPredictor, LearnedPredictorConfig, features, load
from telesurg.teleop.correction.prediction import PREDICTORS, MotionPrediction, prediction_rms_m
from telesurg.teleop.correction.stage import Context, Motion

REPO = Path(__file__).resolve().parents[3]


def test_features_are_the_past_relative_to_now_with_the_oldest_sample_standing_in() -> None:
    cfg = LearnedPredictorConfig(history_samples=4, step_s=0.01, scale_m=0.01)
    t = np.array([0.0, 0.005, 0.01, 0.015, 0.02, 0.025])
    x = np.stack([t * 0.1, np.zeros(6), np.full(6, 0.3)], axis=1)  # 0.1 m/s along x
    f = features(t, x, np.array([5, 1]), np.array([0.25, 0.5]), cfg)
    assert f.shape == (2, 3, 9)
    # From the newest sample: 1–4 steps back are −1, −2, −2.5 (the path starts at t = 0), −2.5 mm.
    assert np.allclose(f[0, 0, :4], [-0.1, -0.2, -0.25, -0.25])
    assert np.allclose(f[0, 0, 4:8], 0.5 * f[0, 0, :4])  # × the horizon fraction
    assert f[0, 0, 8] == pytest.approx(0.5) and f[1, 2, 8] == pytest.approx(1.0)
    assert np.allclose(f[0, 1:, :8], 0.0)  # y and z do not move
    assert np.allclose(f[1, 0, :4], -0.05)  # sample 1: everything before is the start


def test_the_shipped_predictor_is_translation_invariant_and_restarts_on_reset() -> None:
    a, b = LearnedPredictor(), LearnedPredictor()
    t = np.arange(0.0, 1.0, 0.005)
    path = np.stack([0.02 * np.sin(3 * t), 0.01 * t, np.zeros_like(t)], axis=1)
    shift = np.array([0.1, -0.3, 0.05])
    for ti, xi in zip(t, path, strict=True):
        a.update(ti, xi)
        b.update(ti, xi + shift)
    assert np.allclose(b.predict(0.2), a.predict(0.2) + shift, atol=1e-9)
    assert np.array_equal(a.predict(0.0), path[-1])  # no delay: nothing predicted, nothing added
    a.reset()
    with pytest.raises(RuntimeError):
        a.predict(0.1)


def test_the_shipped_evaluation_is_the_shipped_weights_evaluation() -> None:
    """assets/predictor/evaluation.json must describe learned.npz: re-run one held-out (different
    generator) evaluation and compare, for every predictor and horizon."""
    from telesurg.teleop.harness.train_predictor import evaluate, held_out_generators

    report = json.loads((ASSET.parent / "evaluation.json").read_text())
    name = "figure-eight @ 1"
    shipped = report["results"][name]
    now = evaluate(held_out_generators(seeds=5)[name], ASSET)
    for figure in ("rms_mm", "tremor_ratio"):
        for predictor, row in shipped[figure].items():
            for h, value in row.items():
                assert now[figure][predictor][h] == pytest.approx(value, rel=1e-6), (figure, predictor, h)
    # It predicts at all: better than holding the last position at 200 ms.
    assert now["rms_mm"]["learned"]["0.2"] < 0.8 * now["rms_mm"]["zoh"]["0.2"]


def test_the_shipped_predictor_was_trained_to_ignore_tremor() -> None:
    """Trained with tremor in its inputs and the intent as its target, it runs on the raw target and
    adds no tremor: at 200 ms on a generator it never saw, the 8–12 Hz power of its error is no
    more than holding the last position's, at motion scale 0.2 and at 1.0 (5× the tremor)."""
    from telesurg.teleop.correction.config import CorrectionConfig
    from telesurg.teleop.harness.train_predictor import evaluate, held_out_generators

    assert LearnedPredictor().rejects_tremor
    assert CorrectionConfig(prediction="learned").prediction_stage().band_limit is None
    runs = held_out_generators(seeds=2)
    for name in ("min-jerk @ 0.2", "min-jerk @ 1"):
        result = evaluate(runs[name], ASSET, horizons_s=(0.2,))
        assert result["tremor_ratio"]["learned"]["0.2"] <= 1.0, (name, result)
        assert result["rms_mm"]["learned"]["0.2"] < 0.6 * result["rms_mm"]["zoh"]["0.2"], (name, result)


def test_the_prediction_stage_runs_the_learned_predictor() -> None:
    stage = MotionPrediction(PREDICTORS["learned"](), max_horizon_s=0.5)
    ctx = Context(period_s=0.005, delay_s=0.2)
    out = None
    for i in range(100):  # 0.5 s at 2 cm/s along y
        out = stage.apply(Motion(0.005 * i, np.zeros(3), np.array([0.0, 0.02 * 0.005 * i, 0.0])), ctx)
    assert out is not None and out.target_m is not None
    newest = 0.02 * 0.005 * 99
    assert out.target_m[1] == pytest.approx(newest + 0.02 * 0.2, abs=1.5e-3)  # 4 mm ahead, ± 1.5 mm


def test_training_learns_to_extrapolate(tmp_path: Path) -> None:
    """A few hundred steps on smooth synthetic strokes already beat holding the last position on
    strokes it never saw; the saved network loads and predicts the same as in training."""
    from telesurg.teleop.correction.learned import save
    from telesurg.teleop.harness.train_predictor import TrainConfig, train

    rng = np.random.default_rng(1)
    strokes = []
    for _ in range(12):
        t = np.arange(0.0, 2.0, 0.005)
        f, ph = rng.uniform(0.3, 1.0, 3), rng.uniform(0, 6, 3)
        strokes.append((t, 0.01 * np.sin(2 * np.pi * f * t[:, None] + ph)))
    cfg = TrainConfig(steps=300, batch=512)
    layers = train(strokes[:10], cfg, log=lambda _: None)
    save(tmp_path / "p.npz", cfg.model, layers)
    model_cfg, _ = load(tmp_path / "p.npz")
    assert model_cfg == cfg.model
    learned = np.mean([prediction_rms_m(LearnedPredictor(tmp_path / "p.npz"), *s, 0.2) for s in strokes[10:]])
    hold = np.mean([prediction_rms_m(PREDICTORS["zoh"](), *s, 0.2) for s in strokes[10:]])
    assert learned < 0.6 * hold, (learned, hold)


def test_a_missing_weights_file_or_recording_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train-predictor"):
        LearnedPredictor(tmp_path / "none.npz")
    out = subprocess.run(
        [sys.executable, "-m", "telesurg.teleop.cli", "train-predictor", "--from-mcap", str(tmp_path / "x.mcap")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "x.mcap not found" in out.stderr


@pytest.mark.slow
def test_train_predictor_records_through_the_stack_trains_and_evaluates(tmp_path: Path) -> None:
    args = ["train-predictor", "--seeds", "1", "--delays", "0", "--steps", "200", "--out", str(tmp_path)]
    out = subprocess.run(
        [sys.executable, "-m", "telesurg.teleop.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["training"]["strokes"] >= 3  # one scripted session of every task, recorded by the robot
    assert set(report["results"]["min-jerk @ 0.2"]["rms_mm"]) == {"zoh", "cv", "alphabeta", "learned"}
    p = LearnedPredictor(tmp_path / "learned.npz")
    p.update(0.0, np.zeros(3))
    assert np.isfinite(p.predict(0.2)).all()

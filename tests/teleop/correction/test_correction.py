"""Correction stages alone: motion scaling is exact (fixed and delay-adaptive), the tremor filter
meets its band-reduction and lag figures on the scripted surgeon's tremor, and a disabled stage
passes motion through unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from telesurg.teleop.correction import (
    Context,
    Motion,
    MotionScaling,
    ScalingConfig,
    TremorFilter,
    TremorFilterConfig,
    lag_s,
    measure_tremor,
    run_stages,
)


def _feed(stage, hands: np.ndarray, delay_s: float = 0.0) -> np.ndarray:
    ctx = Context(period_s=0.005, delay_s=delay_s)
    return np.array([stage.apply(Motion(0.005 * i, h), ctx).hand_m for i, h in enumerate(hands)])


def test_fixed_scaling_multiplies_hand_increments_exactly() -> None:
    rng = np.random.default_rng(0)
    hands = np.cumsum(rng.normal(0, 0.003, (200, 3)), axis=0)
    out = _feed(MotionScaling(ScalingConfig(factor=0.5)), hands)
    np.testing.assert_allclose(np.diff(out, axis=0), 0.5 * np.diff(hands, axis=0), rtol=0, atol=1e-15)
    np.testing.assert_allclose(out[0], hands[0])  # starts where the hand is: no jump
    same = _feed(MotionScaling(), hands)  # default factor 1: the mapping's own scale, exactly
    np.testing.assert_array_equal(same, hands)


def test_delay_adaptive_scaling_shrinks_with_delay_and_never_jumps() -> None:
    stage = MotionScaling(ScalingConfig(adaptive=True, delay_halving_s=0.2, min_factor=0.25))
    assert stage.factor(0.0) == 1.0
    assert stage.factor(0.2) == pytest.approx(0.5)
    assert stage.factor(10.0) == 0.25
    hands = np.linspace([0, 0, 0], [0.1, 0, 0], 101)
    ctx_delays = np.linspace(0.0, 0.4, 101)
    out = [stage.apply(Motion(0.0, h), Context(0.005, d)).hand_m for h, d in zip(hands, ctx_delays, strict=True)]
    steps = np.diff(np.array(out)[:, 0])
    expected = 0.001 * np.array([stage.factor(d) for d in ctx_delays[1:]])
    np.testing.assert_allclose(steps, expected, rtol=1e-12)


def test_a_disabled_stage_passes_motion_through() -> None:
    hands = np.random.default_rng(1).normal(0, 0.01, (50, 3))
    stages = [MotionScaling(ScalingConfig(factor=0.3), enabled=False), TremorFilter(enabled=False)]
    ctx = Context(period_s=0.005)
    for i, h in enumerate(hands):
        assert np.array_equal(run_stages(stages, Motion(0.005 * i, h), ctx).hand_m, h)


def test_tremor_filter_removes_most_band_power_without_lagging_voluntary_motion() -> None:
    figures = measure_tremor(lambda: TremorFilter(TremorFilterConfig()))
    assert figures.band_reduction >= 0.6, figures  # the figure: at least 60% of 8–12 Hz power
    assert figures.lag_s <= 0.010, figures  # at most 10 ms added to voluntary motion
    assert figures.voluntary_max_change_m < 1e-4, figures  # voluntary motion bent by < 0.1 mm (hand)


def test_the_tremor_filter_follows_the_samples_real_times() -> None:
    """At a console's irregular tick times (intervals 5 ms ± 40%) the filter, which steps by each
    sample's real time, keeps its rejection; the same filter told every tick came on time (what a
    filter assuming a fixed period does) loses a large part of it."""

    class AssumedPeriod:
        def __init__(self) -> None:
            self.filter, self.k = TremorFilter(TremorFilterConfig()), 0

        def update(self, t_s: float, x: np.ndarray) -> np.ndarray:
            self.k += 1
            return self.filter.update(0.005 * self.k, x)

    real = measure_tremor(lambda: TremorFilter(TremorFilterConfig()), timing_jitter=0.4)
    assumed = measure_tremor(AssumedPeriod, timing_jitter=0.4)
    assert real.band_reduction >= 0.85, real
    assert real.lag_s <= 0.010 and real.voluntary_max_change_m < 1e-4, real
    assert assumed.band_reduction < real.band_reduction - 0.1, (assumed, real)


def test_the_lag_measure_sees_a_low_pass_filters_lag() -> None:
    """The lag figure is real: a one-pole 4 Hz low-pass (what the tremor filter is not) measures
    about its group delay, 1/(2π·4 Hz) ≈ 40 ms, and fails the 10 ms bound."""

    class LowPass:
        def __init__(self) -> None:
            self.y: np.ndarray | None = None
            self.a = 0.005 / (0.005 + 1 / (2 * np.pi * 4.0))

        def update(self, t_s: float, x: np.ndarray) -> np.ndarray:
            self.y = x.copy() if self.y is None else self.y + self.a * (x - self.y)
            return self.y

    figures = measure_tremor(LowPass)
    assert 0.025 < figures.lag_s < 0.05, figures
    assert lag_s(np.sin(np.arange(400) * 0.05), np.sin(np.arange(400) * 0.05 - 0.05 * 3), 0.005) == pytest.approx(
        0.015, abs=0.002
    )


def test_predictors_beat_holding_the_last_position_on_smooth_hand_motion() -> None:
    from telesurg.teleop.correction import minimum_jerk_hand
    from telesurg.teleop.correction.prediction import AlphaBeta, ConstantVelocity, ZeroOrderHold, prediction_rms_m

    t = np.arange(0.0, 12.0, 0.005)
    path = 0.2 * minimum_jerk_hand(t) + np.random.default_rng(2).normal(0, 2e-6, (len(t), 3))  # tool metres
    for horizon in (0.1, 0.2):
        zoh = prediction_rms_m(ZeroOrderHold(), t, path, horizon)
        for predictor in (ConstantVelocity(), AlphaBeta()):
            err = prediction_rms_m(predictor, t, path, horizon)
            assert err < 0.7 * zoh, (type(predictor).__name__, horizon, err, zoh)
    assert prediction_rms_m(ZeroOrderHold(), t, path, 0.0) < 1e-5  # no horizon: nothing to predict


def test_prediction_stage_predicts_over_the_delay_and_restarts_when_the_clutch_opens() -> None:
    from telesurg.teleop.correction.prediction import ConstantVelocity, MotionPrediction

    stage = MotionPrediction(ConstantVelocity(smoothing_s=1e-6), max_horizon_s=0.3, band_limit=None)
    v = np.array([0.01, 0.0, -0.02])  # m/s
    out = None
    for i in range(50):
        t = 0.005 * i
        out = stage.apply(Motion(t, np.zeros(3), v * t), Context(0.005, delay_s=0.2)).target_m
    assert out is not None
    np.testing.assert_allclose(out, v * (0.005 * 49 + 0.2), atol=1e-9)  # 200 ms ahead on the line
    far = stage.apply(Motion(0.25, np.zeros(3), v * 0.25), Context(0.005, delay_s=2.0)).target_m
    np.testing.assert_allclose(far, v * (0.25 + 0.3), atol=1e-9)  # capped at max_horizon_s
    assert stage.apply(Motion(0.3, np.zeros(3), None), Context(0.005, 0.2)).target_m is None
    restart = stage.apply(Motion(0.4, np.zeros(3), np.ones(3)), Context(0.005, 0.2)).target_m
    np.testing.assert_allclose(restart, np.ones(3))  # no velocity carried over the open clutch


def _tremor_ratio_and_rms_cut(stage_factory, jitter: float, seed: int) -> tuple[float, float]:
    """Through a prediction stage at 200 ms on min-jerk strokes with 0.1 mm 8–12 Hz tremor at a
    console's tick times (5 ms ± ``jitter``): the 8–12 Hz band power of (output − intended position
    200 ms later) over that of the unpredicted target, and the RMS error cut."""
    from telesurg.teleop.correction import band_power, minimum_jerk_hand
    from telesurg.teleop.correction.signals import Tremor

    rng = np.random.default_rng(seed)
    steps = 0.005 * np.clip(1.0 + jitter * rng.standard_normal(6000), 0.2, 3.0)
    t = np.cumsum(steps) - steps[0]
    t = t[t < 25.0]
    tremor = Tremor(1e-4, (8.0, 12.0), rng)
    shaky = minimum_jerk_hand(t) + np.array([tremor.at(x) for x in t]) + rng.normal(0, 2e-5, (len(t), 3))
    stage = stage_factory()
    ctx = Context(0.005, delay_s=0.2)
    out = np.array([stage.apply(Motion(ti, xi, xi), ctx).target_m for ti, xi in zip(t, shaky, strict=True)])
    grid = np.arange(3.0, 24.0, 0.005)

    def error(x: np.ndarray) -> np.ndarray:
        e = x - minimum_jerk_hand(t + 0.2)
        return np.stack([np.interp(grid, t, e[:, k]) for k in range(3)], axis=1)

    e_pred, e_none = error(out), error(shaky)
    ratio = band_power(e_pred, 0.005, (8.0, 12.0)) / band_power(e_none, 0.005, (8.0, 12.0))
    rms = np.sqrt((e_pred**2).sum(axis=1).mean()) / np.sqrt((e_none**2).sum(axis=1).mean())
    return ratio, 1.0 - rms


def test_prediction_extrapolates_voluntary_motion_never_the_tremor() -> None:
    """The band-limited predictor input (the default) cuts the RMS error without raising the tremor
    band power above no prediction's, at regular and irregular ticks; the raw input amplifies it."""
    from telesurg.teleop.correction.prediction import AlphaBeta, ConstantVelocity, MotionPrediction

    for jitter, seed in ((0.0, 0), (0.4, 1)):
        for predictor in (AlphaBeta, ConstantVelocity):
            ratio, cut = _tremor_ratio_and_rms_cut(lambda p=predictor: MotionPrediction(p()), jitter, seed)
            assert ratio <= 1.0 and cut >= 0.35, (predictor.__name__, jitter, ratio, cut)
    ratio, cut = _tremor_ratio_and_rms_cut(lambda: MotionPrediction(AlphaBeta(), band_limit=None), 0.4, 1)
    assert ratio > 5.0 and cut > 0.5, (ratio, cut)  # the raw target: more RMS cut, tremor amplified


def test_the_learned_stage_predicts_voluntary_motion_and_lowers_the_tremor() -> None:
    """The shipped learned predictor, trained with tremor in its inputs, runs on the raw target (no
    band limit) and still lowers the tremor band power while cutting the RMS error by half."""
    from telesurg.teleop.correction.config import CorrectionConfig

    for jitter, seed in ((0.0, 0), (0.4, 1)):
        ratio, cut = _tremor_ratio_and_rms_cut(
            lambda: CorrectionConfig(prediction="learned").prediction_stage(), jitter, seed
        )
        assert ratio <= 1.0 and cut >= 0.5, (jitter, ratio, cut)


def test_the_band_limited_stage_still_predicts_a_line_exactly() -> None:
    from telesurg.teleop.correction.prediction import ConstantVelocity, MotionPrediction

    stage = MotionPrediction(ConstantVelocity(smoothing_s=1e-6), max_horizon_s=0.3)
    v = np.array([0.01, 0.0, -0.02])
    for i in range(400):  # 2 s on the line: the low-passes have settled to the same slope
        out = stage.apply(Motion(0.005 * i, np.zeros(3), v * 0.005 * i), Context(0.005, delay_s=0.2)).target_m
    np.testing.assert_allclose(out, v * (0.005 * 399 + 0.2), atol=1e-7)


def test_fixtures_never_pull_a_target_toward_a_forbidden_region() -> None:
    from telesurg.teleop.correction.fixtures import FixtureConfig, VirtualFixtures, box_distance_m

    rng = np.random.default_rng(3)
    boxes = [
        (np.array([0.0, 0.0, 0.0]), np.array([0.01, 0.02, 0.01])),
        (np.array([0.015, -0.01, 0.0]), np.array([0.02, 0.0, 0.02])),
    ]
    # A guidance path that runs right past (and through) the boxes: guidance must not drag targets in.
    path = np.array([[-0.01, 0.01, 0.012], [0.03, 0.01, 0.012], [0.03, -0.02, 0.005], [0.01, -0.005, 0.005]])
    fixtures = VirtualFixtures(FixtureConfig(influence_m=0.006, capture_m=0.008, guidance_gain=0.9), boxes, path)
    moved = 0
    for _ in range(5000):
        target = rng.uniform([-0.01, -0.02, -0.005], [0.03, 0.03, 0.025])
        out = fixtures.correct(target)
        moved += not np.array_equal(out, target)
        for lo, hi in boxes:
            assert box_distance_m(out, lo, hi) >= box_distance_m(target, lo, hi) - 1e-12, (target, out)
    assert moved > 500  # the fixtures did act on many of them


def test_repulsion_pushes_near_targets_away_and_guidance_pulls_onto_the_path() -> None:
    from telesurg.teleop.correction.fixtures import FixtureConfig, VirtualFixtures, box_distance_m, closest_on_path

    box = (np.zeros(3), np.full(3, 0.01))
    fixtures = VirtualFixtures(FixtureConfig(influence_m=0.005, stiffness=0.8), [box])
    near = np.array([0.005, 0.005, 0.012])  # 2 mm above the box
    out = fixtures.correct(near)
    assert box_distance_m(out, *box) == pytest.approx(0.002 + 0.8 * 0.003)
    far = np.array([0.005, 0.005, 0.03])
    assert np.array_equal(fixtures.correct(far), far)

    path = np.array([[0.0, 0.05, 0.02], [0.05, 0.05, 0.02]])
    guide = VirtualFixtures(FixtureConfig(capture_m=0.004, guidance_gain=0.5), (), path)
    off = np.array([0.02, 0.052, 0.02])
    on = guide.correct(off)
    assert np.linalg.norm(on - closest_on_path(on, path)) == pytest.approx(0.001)  # half the 2 mm offset
    outside = np.array([0.02, 0.06, 0.02])  # 10 mm away: beyond capture, untouched
    assert np.array_equal(guide.correct(outside), outside)

    # On a surface (normal +z), guidance pulls across it only: the depth stays the surgeon's.
    surface = VirtualFixtures(FixtureConfig(capture_m=0.004, guidance_gain=0.5), (), path, normal=np.array([0, 0, 1.0]))
    pressed = np.array([0.02, 0.052, 0.018])  # 2 mm off the line and 2 mm into the tissue
    out = surface.correct(pressed)
    assert out[2] == pytest.approx(0.018)
    assert out[1] == pytest.approx(0.051)


@pytest.fixture(scope="module")
def reach_state():
    """A Reach episode's first observation (as telemetry carries it) and tool tip (m, base frame)."""
    from telesurg.envs.core import SurgicalEnv
    from telesurg.envs.tasks import TASKS_BY_NAME

    env = SurgicalEnv(TASKS_BY_NAME["Reach"])
    obs, _ = env.reset(seed=5)
    tip = env.arm.read().tip_position_m
    env.close()
    return {k: np.asarray(v, dtype=float) for k, v in obs.items()}, tip


def test_blending_with_weight_zero_passes_the_surgeon_through(reach_state) -> None:
    from telesurg.teleop.correction.blending import BlendingConfig, PolicyBlending, blend

    obs, tip = reach_state
    stage = PolicyBlending(BlendingConfig(max_weight=0.0))
    stage.observe("Reach", obs, tip)
    surgeon = tip + np.array([0.001, -0.002, 0.0005])
    out = stage.apply(Motion(0.0, np.zeros(3), surgeon), Context(0.005)).target_m
    np.testing.assert_array_equal(out, surgeon)
    np.testing.assert_array_equal(blend(surgeon, tip, 0.0), surgeon)


def test_a_confident_policy_moves_the_target_toward_its_goal_and_the_surgeon_can_override(reach_state) -> None:
    from telesurg.teleop.correction.blending import BlendingConfig, PolicyBlending

    obs, tip = reach_state
    goal = obs["desired_goal"]
    stage = PolicyBlending(BlendingConfig(max_weight=0.5, override_m=0.01))
    stage.observe("Reach", obs, tip)
    out = stage.apply(Motion(0.0, np.zeros(3), tip.copy()), Context(0.005)).target_m  # the surgeon holds still
    assert stage.last_confidence > 0.9
    assert stage.weight == pytest.approx(0.5 * stage.last_confidence)
    assert np.linalg.norm(out - goal) < np.linalg.norm(tip - goal) - 0.0005  # pulled toward the goal
    away = tip + 0.02 * (tip - goal) / np.linalg.norm(tip - goal)  # the surgeon heads elsewhere, 2 cm
    overridden = stage.apply(Motion(0.0, np.zeros(3), away), Context(0.005)).target_m
    np.testing.assert_array_equal(overridden, away)
    assert stage.weight == 0.0


def test_policy_confidence_drops_outside_the_training_distribution(reach_state) -> None:
    from telesurg.teleop.correction.blending import BlendingConfig, PolicyBlending

    obs, _ = reach_state
    stage = PolicyBlending(BlendingConfig())
    policy = stage.policy_for("Reach")
    assert policy is not None
    assert policy.confidence(obs) > 0.9
    far_goal = dict(obs, desired_goal=obs["desired_goal"] + np.array([0.0, 0.0, 0.15]))  # 15 cm above the tissue
    fast = dict(obs, observation=obs["observation"].copy())
    fast["observation"][3:6] = [0.5, 0.0, 0.0]  # the tool flying sideways at 0.5 m/s (5× the limit)
    for state in (far_goal, fast):
        assert policy.confidence(state) < 0.05, policy.z_max(state)


def test_the_figure_eight_generator_rests_at_each_pause_it_reports() -> None:
    from telesurg.teleop.correction import figure_eight_hand

    t = np.arange(0.0, 16.0, 0.005)
    path, pauses = figure_eight_hand(t, seed=3)
    assert len(pauses) >= 4
    for q in pauses:
        resting = (t >= q.start_s + 0.01) & (t <= q.end_s - 0.01)
        assert np.abs(path[resting] - q.point_m).max() < 1e-9  # still, at the point it reports
        before = (t >= q.start_s - 0.3) & (t <= q.start_s - 0.1)
        assert np.all((q.point_m - path[before]) @ q.approach > 0)  # it arrived along `approach`
    other, _ = figure_eight_hand(t, seed=4)
    assert not np.allclose(path, other)


def test_pause_overshoot_is_how_far_the_tool_runs_past_the_stop() -> None:
    from telesurg.teleop.correction import Pause
    from telesurg.teleop.harness.evaluation import pause_overshoots_mm

    t0 = 100.0
    pause = Pause(1.0, 1.5, np.array([0.05, 0.0, 0.0]), np.array([1.0, 0.0, 0.0]))
    # Hand → tool: tool = 0.2 × hand, anchored at the origin; the pause point is 10 mm of tool.
    run = {
        "pauses": [pause],
        "replay_start_s": t0,
        "delay_s": 0.2,
        "mapping": [(t0, np.zeros(3), np.zeros(3), 0.2 * np.eye(3))],
    }
    times = t0 + np.arange(0.0, 3.0, 0.002)
    lag = np.clip((times - t0 - 0.2) / 1.0, 0.0, 1.0) * 0.01  # the tool arrives one delay late
    tip = np.stack([lag, np.zeros_like(lag), np.zeros_like(lag)], axis=1)
    assert pause_overshoots_mm(run, times, tip) == [pytest.approx(0.0, abs=1e-9)]
    bump = np.exp(-(((times - t0 - 1.3) / 0.05) ** 2)) * 0.002  # runs 2 mm past, then back
    tip[:, 0] += bump
    assert pause_overshoots_mm(run, times, tip) == [pytest.approx(2.0, abs=1e-9)]


def test_the_benchmark_knows_the_shipped_consoles_correction() -> None:
    """bench/compensation.py marks the shipped default: launch/console.toml's correction is one of
    its methods, and the same stages without prediction are one too."""
    from telesurg.teleop.harness.evaluation import METHODS, shipped_default, without_prediction

    name, method = shipped_default()
    assert METHODS[name] == method
    assert method.get("prediction", "off") != "off"  # the shipped console compensates the delay
    assert without_prediction(method) in METHODS

"""Motion correction and latency compensation on the surgeon console: stages between the surgeon's
hand and the command that leaves the console (``stage``), each a plain object with the same small
interface, switchable at run time.

May import: ``telesurg.teleop.wire``, ``telesurg.teleop.settings``, ``policies``, ``envs``; not robot or netem.

- ``scaling``: fixed and delay-adaptive motion scaling;
- ``tremor``: a band-limited Kalman oscillator bank that removes 8–12 Hz tremor without lagging
  voluntary motion (figures from ``measure_tremor``);
- ``prediction``: zero-order hold, constant velocity, α-β and ``learned`` (a small network trained
  by ``telesurg.teleop.harness.train_predictor``, `telesurg train-predictor`) predictors of the
  tool target over the delay;
- ``fixtures``: repulsion from forbidden regions, guidance along a path (the Trace task's, from
  the robot);
- ``blending``: shipped policies weighted by a state-dependent confidence;
- ``twin``: the local twin, a kinematic model of the arm that answers commands at once and is
  corrected by telemetry, drawn as a ghost over the video;
- ``config`` builds the console's pipeline; ``signals`` holds the hand generators and tremor of the
  tests and benchmarks (``telesurg.teleop.harness.evaluation`` scores compensation through the real stack).
"""

from __future__ import annotations

from telesurg.teleop.correction.prediction import (
    PREDICTORS,
    AlphaBeta,
    ConstantVelocity,
    MotionPrediction,
    ZeroOrderHold,
)
from telesurg.teleop.correction.scaling import MotionScaling, ScalingConfig
from telesurg.teleop.correction.signals import Pause, Tremor, figure_eight_hand, minimum_jerk_hand
from telesurg.teleop.correction.stage import Context, Motion, Stage, run_stages
from telesurg.teleop.correction.tremor import (
    TremorFigures,
    TremorFilter,
    TremorFilterConfig,
    band_power,
    lag_s,
    measure_tremor,
)

__all__ = [
    "PREDICTORS",
    "AlphaBeta",
    "ConstantVelocity",
    "Context",
    "Motion",
    "MotionPrediction",
    "MotionScaling",
    "Pause",
    "ScalingConfig",
    "Stage",
    "Tremor",
    "TremorFigures",
    "TremorFilter",
    "TremorFilterConfig",
    "ZeroOrderHold",
    "band_power",
    "figure_eight_hand",
    "lag_s",
    "measure_tremor",
    "minimum_jerk_hand",
    "run_stages",
]

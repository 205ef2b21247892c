"""The console's correction pipeline from configuration: ``[console.correction]`` in a launch file."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from telesurg.teleop.correction.blending import BlendingConfig, PolicyBlending
from telesurg.teleop.correction.fixtures import FixtureConfig, VirtualFixtures
from telesurg.teleop.correction.prediction import PREDICTORS, BandLimit, MotionPrediction, Predictor
from telesurg.teleop.correction.scaling import MotionScaling, ScalingConfig
from telesurg.teleop.correction.stage import Stage
from telesurg.teleop.correction.tremor import TremorFilter, TremorFilterConfig
from telesurg.teleop.correction.twin import LocalTwin, TwinConfig


@dataclass(frozen=True)
class CorrectionConfig:
    """Which stages run (each can also be switched at run time): ``scaling`` and ``tremor`` act on
        the hand (before the hand → tool mapping); on the tool target after it, ``prediction`` (``off``,
        ``zoh``, ``cv`` or ``alphabeta``; horizon = the measured one-way command delay, at most
        ``max_horizon_s``), policy ``blending`` (shipped policies per task, state-dependent confidence),
        then the virtual ``fixtures`` (repulsion from the robot's forbidden regions,
        from its ``Welcome``; guidance along ``guidance_path_m``, base frame, if given) last, so that
        nothing after them moves the target toward a forbidden region. ``twin``: the local twin
    (``telesurg.teleop.correction.twin``), drawn as a ghost over the video; a scripted surgeon can close its
    loop on it (``[console.surgeon] feedback = "twin"``, which turns it on)."""

    scaling_enabled: bool = False
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    tremor_enabled: bool = False
    tremor: TremorFilterConfig = field(default_factory=TremorFilterConfig)
    prediction: str = "off"
    max_horizon_s: float = 0.5
    #: The predictor sees the target through cascaded low-passes (``prediction.BandLimit``) so it
    #: extrapolates voluntary motion, never tremor; 0 turns that off (the raw target: comparison
    #: only). A learned predictor trained with tremor in its inputs rejects it itself: raw target.
    prediction_band_limit_hz: float = 6.0
    prediction_band_limit_order: int = 3
    blending_enabled: bool = False
    blending: BlendingConfig = field(default_factory=BlendingConfig)
    fixtures_enabled: bool = False
    fixtures: FixtureConfig = field(default_factory=FixtureConfig)
    guidance_path_m: tuple[tuple[float, float, float], ...] = ()
    twin_enabled: bool = False
    twin: TwinConfig = field(default_factory=TwinConfig)

    def __post_init__(self) -> None:
        if self.prediction != "off" and self.prediction not in PREDICTORS:
            raise ValueError(f"prediction must be 'off' or one of {sorted(PREDICTORS)}, not {self.prediction!r}")

    def hand_stages(self, period_s: float) -> list[Stage]:
        tremor = dataclasses.replace(self.tremor, period_s=period_s)
        return [
            MotionScaling(self.scaling, enabled=self.scaling_enabled),
            TremorFilter(tremor, enabled=self.tremor_enabled),
        ]

    def prediction_stage(self, predictor: Predictor | None = None) -> MotionPrediction:
        """The prediction stage (``predictor``: instead of the configured one, e.g. other weights).
        A predictor trained to reject tremor itself (``rejects_tremor``) gets the raw target."""
        if predictor is None:
            predictor = PREDICTORS[self.prediction if self.prediction != "off" else "zoh"]()
        limited = self.prediction_band_limit_hz > 0 and not getattr(predictor, "rejects_tremor", False)
        return MotionPrediction(
            predictor,
            self.max_horizon_s,
            enabled=self.prediction != "off",
            band_limit=BandLimit(self.prediction_band_limit_hz, self.prediction_band_limit_order) if limited else None,
        )

    def tool_stages(self) -> list[Stage]:
        path = np.asarray(self.guidance_path_m, dtype=float) if len(self.guidance_path_m) >= 2 else None
        return [
            self.prediction_stage(),
            PolicyBlending(self.blending, enabled=self.blending_enabled),
            VirtualFixtures(self.fixtures, (), path, enabled=self.fixtures_enabled),
        ]

    def local_twin(self, period_s: float) -> LocalTwin:
        return LocalTwin(dataclasses.replace(self.twin, period_s=period_s))

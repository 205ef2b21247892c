"""Motion scaling as a stage: hand increments multiplied by a factor, fixed or shrinking with delay.

The hand → tool mapping (``telesurg.teleop.console.mapping``) already scales by its ``motion_scale`` (0.2 by
default: 5 cm of hand → 1 cm of tool). This stage multiplies the hand's *increments* by a further
factor ``k`` before the mapping, so the tool moves ``k × motion_scale`` per hand metre, and a change
of ``k`` never makes the tool jump (increments, not positions, are scaled):

- fixed: ``k = factor`` (default 1: the mapping's scale exactly);
- delay-adaptive: ``k = factor / (1 + delay / delay_halving_s)``, never below ``min_factor``: at one
  ``delay_halving_s`` of one-way delay the tool moves half as far per hand metre, so a surgeon
  working against a late picture makes smaller, safer movements.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from telesurg.teleop.correction.stage import Context, Motion


@dataclass(frozen=True)
class ScalingConfig:
    """``factor`` (on top of the mapping's scale), ``adaptive`` (shrink with delay),
    ``delay_halving_s`` (s), ``min_factor``."""

    factor: float = 1.0
    adaptive: bool = False
    delay_halving_s: float = 0.3
    min_factor: float = 0.25

    def __post_init__(self) -> None:
        if not 0 < self.factor <= 5:
            raise ValueError(f"factor must be in (0, 5], got {self.factor}")
        if self.delay_halving_s <= 0 or not 0 < self.min_factor <= self.factor:
            raise ValueError("delay_halving_s must be positive and min_factor in (0, factor]")


@dataclass
class MotionScaling:
    """The scaling stage (see the module docstring)."""

    config: ScalingConfig = field(default_factory=ScalingConfig)
    enabled: bool = True
    name: str = "scaling"

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._last_in: np.ndarray | None = None
        self._out: np.ndarray | None = None

    def factor(self, delay_s: float) -> float:
        c = self.config
        if not c.adaptive:
            return c.factor
        return max(c.min_factor, c.factor / (1.0 + max(delay_s, 0.0) / c.delay_halving_s))

    def apply(self, motion: Motion, ctx: Context) -> Motion:
        hand = np.asarray(motion.hand_m, dtype=float)
        if self._last_in is None or self._out is None:
            self._last_in, self._out = hand.copy(), hand.copy()
            return motion.with_hand(hand)
        self._out = self._out + self.factor(ctx.delay_s) * (hand - self._last_in)
        self._last_in = hand.copy()
        return motion.with_hand(self._out.copy())

"""The common shape of the console's correction and compensation stages.

Between the surgeon's hand and the command that leaves the console, each console period's motion
passes through a list of stages. A stage is a plain object with a ``name``, an ``enabled`` flag
(switchable at run time and from launch files), ``reset()`` (the clutch opened: forget the past)
and ``apply(motion, ctx) -> motion``. A disabled stage passes the motion through unchanged.

``Motion`` carries the hand position (hand space, m: x right, y up, z toward the surgeon, as in
``telesurg.teleop.console.mapping``) and, once mapped, the tool target (m, robot base frame). ``Context`` carries
what stages may read: the console clock (s), the period (s) and the measured one-way delay (s).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Motion:
    """One period's motion: console time (s), hand position (m, hand space), tool target (m, base
    frame; None before the hand → tool mapping)."""

    t_s: float
    hand_m: np.ndarray
    target_m: np.ndarray | None = None

    def with_hand(self, hand_m: np.ndarray) -> Motion:
        return replace(self, hand_m=np.asarray(hand_m, dtype=float))


@dataclass(frozen=True)
class Context:
    """What a stage may read besides the motion: the period (s) and the one-way delay estimate (s)."""

    period_s: float
    delay_s: float = 0.0


class Stage(Protocol):
    name: str
    enabled: bool

    def reset(self) -> None: ...

    def apply(self, motion: Motion, ctx: Context) -> Motion: ...


def run_stages(stages: Sequence[Stage], motion: Motion, ctx: Context) -> Motion:
    """``motion`` through every enabled stage, in order."""
    for stage in stages:
        if stage.enabled:
            motion = stage.apply(motion, ctx)
    return motion

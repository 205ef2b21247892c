"""One demonstration: a task episode as the environment sees it, step by step.

Row ``k`` holds the observation before step ``k`` (the env's flat ``observation``, ``achieved_goal``
and ``desired_goal`` vectors, in the task's layout: ``telesurg envs --layout ID``), the action taken
(the env's convention: tool-tip displacement over one 40 ms control period as a fraction of
``max_step_m`` in x, y, z of the base frame, then the jaw command in [-1, 1]: -1 closed, 1 open),
and what followed it: the task's success test after the step and the largest contact force within
it (N). An episode's ``success`` is the success test at its end; ``hard_limit_exceeded`` says a
contact force crossed the hard limit somewhere in it (such episodes are kept and flagged).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Where a demonstration came from: a person at a console, the scripted surgeon (or a trace replay)
#: through the robot server, or a scripted expert run directly in the env.
SOURCES = ("human", "scripted", "expert")
ACTION_NAMES = ("tip_dx", "tip_dy", "tip_dz", "jaw")


@dataclass
class Episode:
    """One episode (``T`` rows). ``origin`` names what it was built from (a recording's path and
    time, or ``expert``)."""

    task: str
    seed: int
    source: str
    origin: str
    observation: np.ndarray  # (T, obs size) float32
    achieved_goal: np.ndarray  # (T, goal size) float32
    desired_goal: np.ndarray  # (T, goal size) float32
    action: np.ndarray  # (T, 4) float32
    next_success: np.ndarray  # (T,) bool
    force_max_N: np.ndarray  # (T,) float32
    success: bool
    hard_limit_exceeded: bool
    #: Largest distance (m) between the recorded tool tip and the env's when the episode's actions
    #: are replayed in the env from its seed (0 for expert episodes: they were the env).
    replay_tip_error_m: float = 0.0

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"episode source must be one of {SOURCES}, got {self.source!r}")
        n = len(self.action)
        if n < 1:
            raise ValueError(f"{self.origin}: an episode needs at least one step")
        for name in ("observation", "achieved_goal", "desired_goal", "next_success", "force_max_N"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{self.origin}: {name} has {len(getattr(self, name))} rows, action {n}")
        if self.action.shape != (n, len(ACTION_NAMES)):
            raise ValueError(f"{self.origin}: actions must be (T, 4), got {self.action.shape}")

    @property
    def length(self) -> int:
        return len(self.action)

    @property
    def max_force_N(self) -> float:
        return float(np.max(self.force_max_N))

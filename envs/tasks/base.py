"""The task interface: what a surgical task adds to the arm in the patient scene.

A task builds its objects once, re-samples its goal on every reset, updates its own progress after
each control period, and defines success and reward as pure, vectorised functions of
``achieved_goal`` and ``desired_goal`` (as hindsight experience replay requires). Everything it
exposes is in the robot base frame, SI units.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from telesurg.envs.arm import ArmState, SurgicalArm
from telesurg.envs.grasp import Grasper
from telesurg.envs.layout import Field
from telesurg.envs.scene import PatientScene, endoscope_view
from telesurg.envs.sim import CameraSpec, Sim


@dataclass
class StepResult:
    """What the environment measured over one control period, handed to ``Task.update``.

    ``arm`` is the reading at the end of the period; ``force_N`` the tool force (base frame) at the
    end; ``force_max_N`` the largest force magnitude seen at any physics step of the period;
    ``period_s`` the control period.
    """

    arm: ArmState
    force_N: np.ndarray
    force_max_N: float
    period_s: float


class Task(ABC):
    """Base class for surgical tasks."""

    #: Short name used in env ids (``telesurg/<name>-v0``).
    name: ClassVar[str]
    #: Episode length limit in control periods.
    max_episode_steps: ClassVar[int]
    #: Whether the jaw matters (adds jaw actions to the discrete action set).
    uses_jaw: ClassVar[bool] = False
    #: Task-specific observation fields, appended after the robot fields.
    obs_fields: ClassVar[tuple[Field, ...]] = ()
    #: Layout of achieved_goal and desired_goal (the same for both).
    goal_fields: ClassVar[tuple[Field, ...]]
    #: The point (world frame, m) the endoscope looks at for this task: chosen so that the tool tip
    #: at home and every place the task puts its objects are in view (``scene.endoscope_view``).
    view_m: ClassVar[tuple[float, float, float]] = (0.0, 0.012, 0.0)

    def __init__(self, sim: Sim, scene: PatientScene, arm: SurgicalArm, grasper: Grasper) -> None:
        self.sim = sim
        self.scene = scene
        self.arm = arm
        self.grasper = grasper
        self.build()

    # -- frames -------------------------------------------------------------------------
    def to_base(self, p_world: np.ndarray) -> np.ndarray:
        return self.arm.world_to_base(np.asarray(p_world, dtype=float))

    @classmethod
    def force_band_N(cls) -> tuple[float, float] | None:
        """The contact force (N) the task asks the tool to keep, (low, high); None when it asks none.
        Consoles draw it on their force bar."""
        return None

    def camera(self) -> CameraSpec:
        """The endoscope for this task (world frame), unless the scene configures its own."""
        return endoscope_view(self.view_m)

    def guidance_path_m(self) -> tuple[np.ndarray, np.ndarray] | None:
        """A path the tool should follow (n × 3, base frame, m) and the normal (unit, base frame) of
        the surface it lies on, for consoles' guidance fixtures; None when the task has none."""
        return None

    # -- lifecycle ----------------------------------------------------------------------
    def build(self) -> None:  # noqa: B027 - optional hook
        """Create the task's bodies (once, when the environment is made)."""

    @abstractmethod
    def reset(self, rng: np.random.Generator) -> None:
        """Sample a new goal and place the task's objects (the arm is already at home)."""

    def update(self, step: StepResult) -> None:  # noqa: B027 - optional hook
        """Advance the task's own state (timers, progress) after a control period."""

    # -- observations -------------------------------------------------------------------
    def observation(self) -> dict[str, np.ndarray | float]:
        """Values of ``obs_fields`` by name."""
        return {}

    @abstractmethod
    def achieved_goal(self, step: StepResult) -> np.ndarray: ...

    @abstractmethod
    def desired_goal(self) -> np.ndarray: ...

    def info(self) -> dict[str, object]:
        """Extra task-specific entries for the step's ``info``."""
        return {}

    # -- success and reward (pure, vectorised over leading axes) -------------------------
    @abstractmethod
    def is_success(self, achieved: np.ndarray, desired: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def dense_reward(self, achieved: np.ndarray, desired: np.ndarray) -> np.ndarray: ...

    def workspace_m(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounds on tool-tip targets in the base frame."""
        cfg = self.scene.config
        return self.to_base(np.array(cfg.workspace_low_m)), self.to_base(np.array(cfg.workspace_high_m))


def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance over the last axis."""
    return np.linalg.norm(np.asarray(a) - np.asarray(b), axis=-1)

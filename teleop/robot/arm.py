"""The robot interface the server drives, and the simulated arm that implements it.

The server needs only five things from an arm: ``connect``, ``read`` (joints, tool-tip pose, jaw,
contact force), ``command`` (a tool-tip target and jaw opening to servo toward), ``hold`` (stop
where it is) and ``disconnect``, plus ``update(dt_s)`` once per control period — a no-op for real
hardware whose own controller runs continuously, and the physics steps for the simulation. A real
arm replaces ``SimulatedArm`` by implementing ``RobotInterface``.

``SimulatedArm`` runs the very arm, patient scene and task of ``envs`` (a ``SurgicalEnv`` used as
building blocks, not through ``step``), one physics step per 2 ms control period. It also reports
what only a simulation knows — object poses for the renderer's and the console's mirrors, and the
task's observation and success — through ``SimulationInfo``.

All quantities are SI in the robot base frame.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from telesurg.envs.core import EnvConfig, SurgicalEnv
from telesurg.envs.geometry import matrix_to_quat
from telesurg.envs.safety import ForceLimits
from telesurg.envs.scene import camera_intrinsics
from telesurg.envs.tasks import TASKS_BY_NAME
from telesurg.envs.tasks.base import StepResult
from telesurg.teleop.wire import protocol as p


@dataclass
class RobotReading:
    """One reading of the arm: joint positions (rad, insertion m), tool-tip position (m) and
    orientation (quaternion x, y, z, w), jaw opening 0–1, contact force on the tool (N) now and the
    largest magnitude since the previous reading (N)."""

    joint_pos: list[float]
    tip_m: np.ndarray
    tip_quat_xyzw: tuple[float, float, float, float]
    jaw: float
    force_N: np.ndarray
    force_peak_N: float


@runtime_checkable
class RobotInterface(Protocol):
    """Everything the server uses of an arm (simulated or real); positions in the base frame (m).
    A real arm without a task scene returns ``None`` from ``task_snapshot`` and ``guidance_path_m``,
    no ``objects``, and refuses ``load_task`` with a ``ValueError``."""

    arm_id: str
    task_name: str
    seed: int

    @property
    def limits(self) -> ForceLimits: ...

    def connect(self) -> None: ...

    def read(self) -> RobotReading: ...

    def command(self, tip_m: np.ndarray, jaw: float) -> None: ...

    def hold(self) -> None: ...

    def update(self, dt_s: float) -> None: ...

    def disconnect(self) -> None: ...

    def load_task(self, task: str, seed: int) -> None: ...

    def workspace_m(self) -> tuple[np.ndarray, np.ndarray]: ...

    def forbidden_regions_m(self) -> list[tuple[np.ndarray, np.ndarray]]: ...

    def guidance_path_m(self) -> tuple[np.ndarray, np.ndarray] | None: ...

    def camera(self) -> p.Camera: ...

    def objects(self) -> dict[str, tuple[tuple[float, ...], tuple[float, ...]]]: ...

    def task_snapshot(self) -> p.TaskState | None: ...


@dataclass(frozen=True)
class SimArmConfig:
    """The simulated arm: which task's scene to load and the env options (``EnvConfig`` overrides,
    e.g. ``{"hard_N": 5.0}``, plus ``forbidden_m`` for the scene's forbidden regions, world frame).
    ``task_period_s`` is how often the task's own bookkeeping runs (its timers count in those
    periods, as in the environment); ``preload``: tasks whose scenes are built at ``connect`` (so a
    task switch never stalls the control loop); ``camera_width``/``camera_height`` size the published
    intrinsics."""

    task: str = "Reach"
    seed: int = 0
    arm_id: str = "psm1"
    env_options: dict[str, Any] = field(default_factory=dict)
    forbidden_m: tuple[tuple[tuple[float, float, float], tuple[float, float, float]], ...] = ()
    task_period_s: float = 0.04
    preload: tuple[str, ...] = tuple(TASKS_BY_NAME)
    camera_width: int = 640
    camera_height: int = 480

    def __post_init__(self) -> None:
        for task in (self.task, *self.preload):
            if task not in TASKS_BY_NAME:
                raise ValueError(f"unknown task {task!r}; known: {sorted(TASKS_BY_NAME)}")


class SimulatedArm:
    """``RobotInterface`` on the envs simulation (see the module docstring)."""

    def __init__(self, config: SimArmConfig | None = None) -> None:
        self.config = config or SimArmConfig()
        self.arm_id = self.config.arm_id
        self.env: SurgicalEnv | None = None
        self._envs: dict[str, SurgicalEnv] = {}
        self.task_name = self.config.task
        self.seed = self.config.seed
        env_config = EnvConfig().with_overrides(**dict(self.config.env_options))
        if self.config.forbidden_m:
            scene = dataclasses.replace(env_config.scene, forbidden_m=self.config.forbidden_m)
            env_config = dataclasses.replace(env_config, scene=scene)
        self.env_config = env_config  # every task's scene is built with it: known before connect
        #: Counts task loads and task periods: a change means ``task_snapshot`` has a new state.
        self.task_updates = 0

    # ------------------------------------------------------------------ RobotInterface
    def connect(self) -> None:
        """Build every task's scene now (a scene takes tens of milliseconds to build: switching
        tasks later must not stall the control loop), then load the configured one."""
        for task in dict.fromkeys((self.config.task, *self.config.preload)):
            if task not in self._envs:
                self._envs[task] = self._build(task)
        self.load_task(self.config.task, self.config.seed)

    def disconnect(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()
        self.env = None

    def _build(self, task: str) -> SurgicalEnv:
        return SurgicalEnv(TASKS_BY_NAME[task], config=self.env_config)

    def read(self) -> RobotReading:
        env = self._require()
        state = env.arm.read()
        f = self._force
        peak = max(self._peak_since_read, math.sqrt(float(f @ f)))
        self._peak_since_read = 0.0
        quat = matrix_to_quat(state.tip_rotation)
        return RobotReading(
            joint_pos=state.joint_positions.tolist(),
            tip_m=state.tip_position_m,
            tip_quat_xyzw=(float(quat[0]), float(quat[1]), float(quat[2]), float(quat[3])),
            jaw=float(state.jaw_opening),
            force_N=f.copy(),
            force_peak_N=peak,
        )

    def command(self, tip_m: np.ndarray, jaw: float) -> None:
        env = self._require()
        self._target = np.asarray(tip_m, dtype=float)
        env.arm.command_tip(self._target, jaw)

    def hold(self) -> None:
        env = self._require()
        env.arm.hold()
        self._target = None

    def update(self, dt_s: float) -> None:
        env = self._require()
        steps = round(dt_s / env.config.sim.physics_step_s)
        step_s = env.config.sim.physics_step_s
        if steps < 1 or abs(steps * step_s - dt_s) > 1e-9:
            raise ValueError(f"control period {dt_s} s must be a whole multiple of the physics step {step_s} s")
        tip = env.arm.read().tip_position_m if self._target is not None else None
        travel = float(np.linalg.norm(self._target - tip)) if tip is not None else 0.0
        force, peak = env.advance_physics(steps, travel)
        self._force = force
        self._peak_since_read = max(self._peak_since_read, peak)
        self._window_peak = max(self._window_peak, peak)
        self.sim_time_s += steps * env.config.sim.physics_step_s
        self._window_s += steps * env.config.sim.physics_step_s
        if self._window_s >= self.config.task_period_s - 1e-9:
            self._task_update()

    # ------------------------------------------------------------------ simulation only
    def load_task(self, task: str, seed: int) -> None:
        """(Re)build the scene for ``task`` and sample its goal from ``seed``; the arm goes home."""
        if task not in TASKS_BY_NAME:
            raise ValueError(f"unknown task {task!r}; known: {sorted(TASKS_BY_NAME)}")
        if task not in self._envs:
            self._envs[task] = self._build(task)
        self.env = self._envs[task]
        self.task_name, self.seed = task, seed
        obs, info = self.env.reset(seed=seed)
        self._obs, self._info = obs, info
        self._force = np.zeros(3)
        self._peak_since_read = 0.0
        self._window_peak = 0.0
        self._window_s = 0.0
        self._window_start_tip = self.env.arm.read().tip_position_m
        self._target: np.ndarray | None = None
        self.sim_time_s = 0.0
        self.episode_start_s = 0.0
        self.task_updates += 1

    @property
    def physics_step_s(self) -> float:
        return self.env_config.sim.physics_step_s

    @property
    def limits(self) -> ForceLimits:
        """The force limits (N) every task's scene runs under; known before ``connect``."""
        return self.env_config.limits

    def workspace_m(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounds on tool-tip targets (m, base frame): the task's workspace."""
        return self._require().task.workspace_m()

    def forbidden_regions_m(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The scene's forbidden regions as (low, high) corners in the base frame (m)."""
        env = self._require()
        return [
            (env.arm.world_to_base(np.asarray(lo, dtype=float)), env.arm.world_to_base(np.asarray(hi, dtype=float)))
            for lo, hi in env.scene.config.forbidden_m
        ]

    def guidance_path_m(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The loaded task's guidance path and surface normal (base frame), or None."""
        return self._require().task.guidance_path_m()

    def camera(self) -> p.Camera:
        """The endoscope as telemetry carries it: pose in the base frame (looks along +z, image x
        right, y down) and pinhole intrinsics (pixels) for the configured image size."""
        env = self._require()
        spec = env.camera
        eye = env.arm.world_to_base(np.asarray(spec.eye_m, dtype=float))
        look = env.arm.world_to_base(np.asarray(spec.target_m, dtype=float))
        z = look - eye
        z /= np.linalg.norm(z)
        x = np.cross(z, np.asarray(spec.up, dtype=float))
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        q = matrix_to_quat(np.column_stack([x, y, z]))
        w, h = self.config.camera_width, self.config.camera_height
        fx, fy, cx, cy = camera_intrinsics(spec, w, h)
        return p.Camera(
            pose=p.Pose(
                tuple(float(v) for v in eye),  # type: ignore[arg-type]
                tuple(float(v) for v in q),  # type: ignore[arg-type]
            ),
            width=w,
            height=h,
            fx=fx,
            fy=fy,
            cx=cx,
            cy=cy,
            near_m=spec.near_m,
            far_m=spec.far_m,
        )

    def objects(self) -> dict[str, tuple[tuple[float, ...], tuple[float, ...]]]:
        """Base poses of every scene body but the arm: name → (position m, quaternion), base frame."""
        env = self._require()
        out = {}
        for name in env.sim.bodies:
            if name == env.arm.name:
                continue
            pos, quat = env.sim.base_pose(name)
            out[name] = (tuple(float(v) for v in env.arm.world_to_base(pos)), tuple(float(v) for v in quat))
        return out

    def task_snapshot(self) -> p.TaskState:
        """The task's public state as telemetry carries it."""
        self._require()
        return p.TaskState(
            name=self.task_name,
            seed=self.seed,
            observation=self._obs["observation"].astype(float).tolist(),
            achieved_goal=self._obs["achieved_goal"].astype(float).tolist(),
            desired_goal=self._obs["desired_goal"].astype(float).tolist(),
            success=bool(self._info["is_success"]),
            episode_s=self.sim_time_s,
        )

    # ------------------------------------------------------------------ helpers
    def _task_update(self) -> None:
        env = self._require()
        state = env.arm.read()
        if env.grasper.objects:
            env.grasper.update(state.jaw_opening, env.arm.base_to_world(state.tip_position_m))
        period = self._window_s
        result = StepResult(state, self._force.copy(), self._window_peak, period)
        env.task.update(result)
        velocity = (state.tip_position_m - self._window_start_tip) / period
        self._obs, self._info = env.measure(result, velocity)
        self._window_s, self._window_peak = 0.0, 0.0
        self._window_start_tip = state.tip_position_m
        self.task_updates += 1

    @property
    def task_force_max_N(self) -> float:
        """The largest contact force (N) within the last task period (0 right after a load)."""
        return float(self._info.get("contact_force_max_N", 0.0))

    def _require(self) -> SurgicalEnv:
        if self.env is None:
            raise RuntimeError("the simulated arm is not connected (call connect())")
        return self.env

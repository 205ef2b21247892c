"""``SurgicalEnv``: the arm, the patient scene and one task joined into a Gymnasium environment.

Time: one ``step`` is one control period (``control_period_s``, default 40 ms = 25 Hz, as in
panda-gym) made of physics steps of ``SimConfig.physics_step_s`` (2 ms = 500 Hz). Contact force on
the tool is measured after every physics step.

Action (Box [-1, 1]^4, float32): ``a[0:3]`` is the tool-tip displacement in the robot base frame
as a fraction of ``max_step_m`` (default 4 mm per step, i.e. at most 0.1 m/s); ``a[3]`` is the jaw
command, -1 closed to +1 fully open (absolute, not a rate). Values outside [-1, 1] are clipped
(``info["action_clipped"]`` says so); NaN or infinite values, or a wrong shape, raise
``ValueError`` before anything is simulated, so a rejected action leaves the world untouched.

Observation (Dict): ``observation`` is a flat float32 vector laid out by ``env.obs_layout``
(robot fields then task fields; see ``telesurg.envs.layout``), ``achieved_goal``/``desired_goal`` by
``env.goal_layout``. Everything is in the robot base frame, SI units.

Info: ``is_success``; ``contact_force_N`` (magnitude at the end of the period) and
``contact_force_vec_N`` (base frame); ``contact_force_max_N`` (largest magnitude at any physics
step of the period); ``force_warning`` (max above the warn limit); ``force_limit_exceeded`` (max
above the hard limit: the episode terminates); ``cost`` (1.0 on a hard-limit violation, else the
fraction of the warn→hard band used, for constrained RL); ``action_clipped``; and task entries.

Reward: sparse (0 on success, -1 otherwise) or dense (a task-specific shaped value), minus
``violation_penalty`` on a hard-limit violation; the dense variant also subtracts
``warn_cost_weight`` × the fraction of the warn→hard band used. The step reward is exactly
``compute_reward(obs["achieved_goal"], obs["desired_goal"], info)``, and ``info["is_success"]`` is
judged on those same float32 goals, as hindsight relabelling requires.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from telesurg.envs.arm import ArmConfig, SurgicalArm
from telesurg.envs.grasp import GraspConfig, Grasper
from telesurg.envs.layout import ROBOT_FIELDS, ObsLayout
from telesurg.envs.safety import ForceLimits
from telesurg.envs.scene import PatientScene, SceneConfig
from telesurg.envs.sim import CameraSpec, Sim, SimConfig
from telesurg.envs.tasks.base import StepResult, Task
from telesurg.envs.tissue import TissueContact


@dataclass(frozen=True)
class EnvConfig:
    """Settings of a surgical environment (see the module docstring for the units)."""

    control_period_s: float = 0.04
    max_step_m: float = 0.004
    reward_type: Literal["sparse", "dense"] = "sparse"
    limits: ForceLimits = field(default_factory=ForceLimits)
    violation_penalty: float = 10.0
    warn_cost_weight: float = 1.0
    terminate_on_success: bool = False
    render_width: int = 320
    render_height: int = 240
    sim: SimConfig = field(default_factory=SimConfig)
    scene: SceneConfig = field(default_factory=SceneConfig)
    arm: ArmConfig = field(default_factory=ArmConfig)
    grasp: GraspConfig = field(default_factory=GraspConfig)

    def __post_init__(self) -> None:
        if self.reward_type not in ("sparse", "dense"):
            raise ValueError(f"reward_type must be 'sparse' or 'dense', got {self.reward_type!r}")
        ratio = self.control_period_s / self.sim.physics_step_s
        if ratio < 1 or abs(ratio - round(ratio)) > 1e-6:
            raise ValueError(
                f"control_period_s ({self.control_period_s}) must be a whole multiple of the physics step "
                f"({self.sim.physics_step_s} s)"
            )
        if not 0 < self.max_step_m <= 0.01:
            raise ValueError(f"max_step_m must be in (0, 0.01] m, got {self.max_step_m}")
        if self.render_width < 8 or self.render_height < 8:
            raise ValueError("render size must be at least 8×8 pixels")

    @property
    def substeps(self) -> int:
        return round(self.control_period_s / self.sim.physics_step_s)

    def with_overrides(self, **overrides: Any) -> EnvConfig:
        """A copy with top-level fields replaced; also accepts ``trocar_m`` (scene) and
        ``warn_N``/``hard_N`` (force limits)."""
        cfg = self
        if "trocar_m" in overrides:
            cfg = dataclasses.replace(
                cfg,
                scene=dataclasses.replace(cfg.scene, trocar_m=tuple(overrides.pop("trocar_m"))),
            )
        limit_kw = {k: overrides.pop(k) for k in ("warn_N", "hard_N") if k in overrides}
        if limit_kw:
            cfg = dataclasses.replace(cfg, limits=dataclasses.replace(cfg.limits, **limit_kw))
        known = {f.name for f in dataclasses.fields(cfg)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(
                f"unknown environment option(s) {unknown}; known: {sorted(known | {'trocar_m', 'warn_N', 'hard_N'})}"
            )
        return dataclasses.replace(cfg, **overrides)


class SurgicalEnv(gym.Env):
    """A goal-conditioned surgical task on the simulated PSM (see the module docstring)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 25}
    ACTION_SIZE = 4
    OBS_BOUND = 1000.0
    #: Extra distance (m) beyond the commanded travel within which contacts are checked each period.
    CONTACT_MARGIN_M = 0.003

    def __init__(
        self,
        task: type[Task],
        render_mode: str | None = None,
        config: EnvConfig | None = None,
        **overrides: Any,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.config = (config or EnvConfig()).with_overrides(**overrides)
        self.render_mode = render_mode
        self.metadata = {
            **self.metadata,
            "render_fps": round(1.0 / self.config.control_period_s),
        }
        cfg = self.config
        self.sim = Sim(cfg.sim)
        try:
            self.scene = PatientScene(self.sim, cfg.scene)
            self.arm = SurgicalArm(self.sim, np.array(cfg.scene.trocar_m), cfg.arm)
            self.arm.set_home(self.arm.world_to_base(np.array(cfg.scene.home_tip_m)))
            self.grasper = Grasper(self.sim, self.arm, cfg.grasp)
            self.task = task(self.sim, self.scene, self.arm, self.grasper)
            self.tissue = TissueContact(self.sim, self.arm, cfg.scene.tissue)
            for body, link in self.scene.tissue_bodies:
                self.tissue.add_body(body, link)
        except Exception:
            self.sim.close()
            raise
        self._tool_links = self.sim.collision_links(self.arm.name)
        self.obs_layout = ObsLayout(ROBOT_FIELDS + self.task.obs_fields)
        self.goal_layout = ObsLayout(self.task.goal_fields)
        self._ws_low, self._ws_high = self.task.workspace_m()
        # Every field is a physical quantity far inside ±OBS_BOUND in SI units (metres, m/s, newtons).
        bound = np.float32(self.OBS_BOUND)
        self.observation_space = spaces.Dict(
            {
                "observation": spaces.Box(-bound, bound, (self.obs_layout.size,), np.float32),
                "achieved_goal": spaces.Box(-bound, bound, (self.goal_layout.size,), np.float32),
                "desired_goal": spaces.Box(-bound, bound, (self.goal_layout.size,), np.float32),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (self.ACTION_SIZE,), np.float32)
        self._step_result: StepResult | None = None

    # ------------------------------------------------------------------ properties
    @property
    def max_step_m(self) -> float:
        """Largest tool-tip displacement per step (m), reached at |action| = 1."""
        return self.config.max_step_m

    @property
    def control_period_s(self) -> float:
        return self.config.control_period_s

    @property
    def limits(self) -> ForceLimits:
        return self.config.limits

    @property
    def camera(self) -> CameraSpec:
        """The endoscope (world frame): the scene's configured camera, else the task's own view."""
        return self.config.scene.camera or self.task.camera()

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.grasper.reset()
        self.tissue.reset()
        self.arm.reset()
        self.task.reset(self.np_random)
        state = self.arm.read()
        self._step_result = StepResult(state, np.zeros(3), 0.0, self.config.control_period_s)
        obs = self._observe(self._step_result, np.zeros(3))
        info = self._info(self._step_result, obs, clipped=False)
        return obs, info

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        if self._step_result is None:
            raise RuntimeError("call reset() before step()")
        a, clipped = self._validate(action)
        cfg = self.config
        tip = self._step_result.arm.tip_position_m
        target = np.clip(tip + a[:3] * cfg.max_step_m, self._ws_low, self._ws_high)
        self.arm.command_tip(target, (a[3] + 1.0) / 2.0)
        force_base, force_max = self.advance_physics(cfg.substeps, math.dist(target.tolist(), tip.tolist()))
        state = self.arm.read()
        if self.grasper.objects:
            self.grasper.update(state.jaw_opening, self.arm.base_to_world(state.tip_position_m))
        velocity = (state.tip_position_m - tip) / cfg.control_period_s
        result = StepResult(state, force_base, force_max, cfg.control_period_s)
        self._step_result = result
        self.task.update(result)
        obs, info = self.measure(result, velocity, clipped)
        # From the very float32 goals the agent sees, so HER's relabelled rewards match exactly.
        reward = float(self.compute_reward(obs["achieved_goal"], obs["desired_goal"], info))
        terminated = bool(info["force_limit_exceeded"] or (cfg.terminate_on_success and info["is_success"]))
        return obs, reward, terminated, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self.sim.render(self.camera, self.config.render_width, self.config.render_height)

    def close(self) -> None:
        self.grasper.release()
        self.sim.close()

    # ------------------------------------------------------------------ reward (pure)
    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray | float:
        """Reward as a pure function of the goals and ``info`` (vectorised for HER: ``info`` may
        be one dict or a sequence of dicts matching the leading axis of the goals).

        ``step`` returns exactly this, evaluated on the observation's float32 goals; the goals are
        widened to float64 here, whatever their dtype, so the two always agree bit for bit. The
        force terms read ``info["force_limit_exceeded"]`` and ``info["contact_force_max_N"]``.
        """
        cfg = self.config
        achieved = np.asarray(achieved_goal, dtype=np.float64)
        desired = np.asarray(desired_goal, dtype=np.float64)
        exceeded = _info_field(info, "force_limit_exceeded", np.float64)
        if cfg.reward_type == "dense":
            force_max_N = _info_field(info, "contact_force_max_N", np.float64)
            band_N = cfg.limits.hard_N - cfg.limits.warn_N
            warn_used = np.clip((force_max_N - cfg.limits.warn_N) / band_N, 0.0, None)
            reward = self.task.dense_reward(achieved, desired) - cfg.warn_cost_weight * warn_used
        else:
            reward = np.asarray(self.task.is_success(achieved, desired), dtype=np.float64) - 1.0
        return reward - cfg.violation_penalty * exceeded

    # ------------------------------------------------------------------ building blocks (the teleop server's sim arm)
    def advance_physics(self, steps: int, travel_m: float) -> tuple[np.ndarray, float]:
        """Run ``steps`` physics steps toward the arm's current servo target, with tissue contact.

        ``travel_m`` is how far the tool may move meanwhile: a period in which nothing can touch
        the tool skips the contact queries (most of free-space motion). Returns the contact force
        on the tool after the last step (N, base frame) and the largest magnitude at any step (N).
        """
        margin = travel_m + self.CONTACT_MARGIN_M
        if self.grasper.holding_tissue or self.sim.may_touch(self.arm.name, self._tool_links, margin):
            force_w, force_max = self.sim.advance(steps, self.arm.name, self._before_physics_step)
        else:
            self.tissue.reset()
            self.sim.advance_free(steps)
            force_w, force_max = None, 0.0
        force_base = self.arm.base.vector_from_parent(np.array(force_w)) if force_w is not None else np.zeros(3)
        return force_base, force_max

    def measure(
        self, result: StepResult, velocity_m_s: np.ndarray, clipped: bool = False
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Observation and info for a period's ``StepResult`` (after ``task.update``)."""
        obs = self._observe(result, velocity_m_s)
        return obs, self._info(result, obs, clipped)

    # ------------------------------------------------------------------ helpers
    def _before_physics_step(self) -> tuple[float, float, float] | None:
        """Apply the explicit tissue forces for one physics step; returns their sum on the tool."""
        force = self.tissue.before_step()
        if self.grasper.holding_tissue:
            pull = self.grasper.apply_tissue_force()
            if pull is not None:
                force = pull if force is None else (force[0] + pull[0], force[1] + pull[1], force[2] + pull[2])
        return force

    def _validate(self, action: Any) -> tuple[np.ndarray, bool]:
        try:
            a = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"action must be {self.ACTION_SIZE} numbers, got {action!r}") from exc
        if a.shape != (self.ACTION_SIZE,):
            raise ValueError(f"action must have shape ({self.ACTION_SIZE},), got {a.shape}")
        values = a.tolist()
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"action contains NaN or infinite values: {values}; nothing was simulated")
        if all(-1.0 <= v <= 1.0 for v in values):
            return a, False
        return np.clip(a, -1.0, 1.0), True

    def _observe(self, result: StepResult, velocity: np.ndarray) -> dict[str, np.ndarray]:
        values: dict[str, Any] = {
            "tip_pos_m": result.arm.tip_position_m,
            "tip_vel_m_s": velocity,
            "jaw_opening": result.arm.jaw_opening,
            "contact_force_N": result.force_N,
        }
        values.update(self.task.observation())
        return {
            "observation": self.obs_layout.pack(values).astype(np.float32),
            "achieved_goal": self.task.achieved_goal(result).astype(np.float32),
            "desired_goal": self.task.desired_goal().astype(np.float32),
        }

    def _info(self, result: StepResult, obs: dict[str, np.ndarray], clipped: bool) -> dict[str, Any]:
        limits = self.config.limits
        fmax = result.force_max_N
        exceeded = fmax > limits.hard_N
        cost = 1.0 if exceeded else min(max((fmax - limits.warn_N) / (limits.hard_N - limits.warn_N), 0.0), 1.0)
        success = bool(
            self.task.is_success(
                obs["achieved_goal"].astype(np.float64),
                obs["desired_goal"].astype(np.float64),
            )
        )
        f = result.force_N
        info: dict[str, Any] = {
            "is_success": success,
            "contact_force_N": math.sqrt(f[0] * f[0] + f[1] * f[1] + f[2] * f[2]),
            "contact_force_vec_N": f,
            "contact_force_max_N": fmax,
            "force_warning": fmax > limits.warn_N,
            "force_limit_exceeded": exceeded,
            "cost": cost,
            "action_clipped": clipped,
        }
        info.update(self.task.info())
        return info


def _info_field(info: Any, key: str, dtype: type) -> np.ndarray | float:
    if isinstance(info, dict):
        return dtype(info[key])
    return np.array([i[key] for i in info], dtype=dtype)

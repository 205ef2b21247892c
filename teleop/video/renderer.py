"""The endoscope renderer: its own process, never the control process (pybullet holds the GIL for
the whole render call: 15–80 ms at 640×480 on the 2-core CPU would stall a 2 ms control loop).

``SceneMirror`` rebuilds the robot's scene from the same envs code (the task named in telemetry,
with the robot's scene options) and poses it from each ``Telemetry``: the arm's joints and jaw, and
the base pose of every other body (goal markers, grasped objects). ``run_renderer`` is the process:
it subscribes to the robot's state feed (CONFLATE: only the newest telemetry matters), and at a
fixed frame rate poses the mirror from the newest state, renders the endoscope view (or, when the
pose is what it drew last, ``pose_key``, reuses that image) and hands the image to the media process
through ``telesurg.teleop.video.frames`` with its ``FrameMeta`` (which telemetry the image shows,
when it was sampled, when the render started and ended). It never renders ahead of the state or
queues frames: a slow render lowers the frame rate, never adds latency.

Renderer back ends (``RendererConfig.backend``), per 640×480 frame on the 2-core CPU with nothing
else running: ``gl`` — ``telesurg.teleop.video.glrender``, a lean OpenGL renderer of the same pybullet visual
shapes with textured tissue and shadows (moderngl on EGL: Mesa's llvmpipe here, a GPU elsewhere),
6.5–8 ms; ``egl`` — pybullet's EGL
plugin, 17–25 ms; ``tiny`` — pybullet's TinyRenderer (always available), ~80 ms. ``auto`` takes
the first that works, in that order, and says why it skipped one.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import zmq

from telesurg.envs.core import EnvConfig, SurgicalEnv
from telesurg.envs.sim import SimConfig
from telesurg.envs.tasks import TASKS_BY_NAME
from telesurg.teleop.video.frames import SLOTS, FrameBuffer, FrameMeta
from telesurg.teleop.wire import protocol as p
from telesurg.teleop.wire.timing import FixedRate, sleep_until

log = logging.getLogger("telesurg.renderer")


@dataclass(frozen=True)
class RendererConfig:
    """Image size (px), frame rate (Hz), back end (``gl``, ``egl``, ``tiny`` or ``auto``), the robot's local
    state feed (``telesurg.teleop.robot.server.ServerConfig.state_port``), the scene options the robot uses
    (``env_options``/``forbidden_m`` as in ``telesurg.teleop.robot.arm.SimArmConfig``) and Mesa's thread count
    for llvmpipe (``LP_NUM_THREADS``); ``nice``: see below."""

    width: int = 640
    height: int = 480
    fps: float = 30.0
    backend: str = "auto"
    state_url: str = "tcp://127.0.0.1:5573"
    env_options: dict[str, Any] = field(default_factory=dict)
    forbidden_m: tuple[tuple[tuple[float, float, float], tuple[float, float, float]], ...] = ()
    mesa_threads: int = 2
    #: Scheduling niceness added to the renderer process: the robot's control loop must win the CPU.
    nice: int = 10
    #: Task scenes built at start-up (building one takes long enough to freeze the video past the
    #: console's staleness limit if done when the robot switches tasks).
    preload: tuple[str, ...] = tuple(TASKS_BY_NAME)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.preload) - set(TASKS_BY_NAME))
        if unknown:
            raise ValueError(f"preload: unknown task(s) {unknown}; known: {sorted(TASKS_BY_NAME)}")
        if self.backend not in ("gl", "egl", "tiny", "auto"):
            raise ValueError(f"backend must be 'gl', 'egl', 'tiny' or 'auto', not {self.backend!r}")
        if not 1.0 <= self.fps <= 120.0:
            raise ValueError(f"fps must be in [1, 120], got {self.fps}")
        if not (16 <= self.width <= 3840 and 16 <= self.height <= 2160) or self.width % 2 or self.height % 2:
            raise ValueError(f"frame size must be even, 16×16 to 3840×2160, got {self.width}×{self.height}")


class SceneMirror:
    """A copy of the robot's scene posed from telemetry (see the module docstring)."""

    def __init__(self, config: RendererConfig) -> None:
        self.config = config
        self.backend = config.backend
        self._envs: dict[str, SurgicalEnv] = {}
        self._gl: dict[str, Any] = {}
        self._loaded: tuple[str, int] | None = None
        self.env: SurgicalEnv | None = None

    def preload(self, tasks: tuple[str, ...], width: int, height: int) -> None:
        """Build the scenes of ``tasks`` and render each once at ``width``×``height``: the first
        render of a scene compiles and uploads its GL state (~0.3 s with EGL on llvmpipe), which
        must not happen when the robot switches tasks (the video would freeze past the console's
        staleness limit)."""
        for task in tasks:
            if task not in self._envs:
                self._envs[task] = self._build(task)
                self._envs[task].reset(seed=0)
                self._render(task, width, height)

    def _build(self, task: str) -> SurgicalEnv:
        cfg = EnvConfig().with_overrides(**dict(self.config.env_options))
        if self.config.forbidden_m:
            cfg = dataclasses.replace(cfg, scene=dataclasses.replace(cfg.scene, forbidden_m=self.config.forbidden_m))
        if self.backend == "auto":
            self.backend = _usable_backend()
        # The lean GL renderer reads the world itself: pybullet needs no renderer plugin for it.
        sim_backend = "egl" if self.backend == "egl" else "tiny"
        return SurgicalEnv(TASKS_BY_NAME[task], config=dataclasses.replace(cfg, sim=_sim(cfg.sim, sim_backend)))

    def _render(self, task: str, width: int, height: int) -> np.ndarray:
        env = self._envs[task]
        if self.backend != "gl":
            return env.sim.render(env.camera, width, height)
        gl = self._gl.get(task)
        if gl is None or (gl.width, gl.height) != (width, height):
            from telesurg.teleop.video.glrender import GLSceneRenderer

            gl = self._gl[task] = GLSceneRenderer(
                env.sim,
                env.camera,
                width,
                height,
                textured=tuple(body for body, _ in env.scene.tissue_bodies),
                outside=tuple((env.arm.name, link) for link in env.arm.outside_links()),
                wall_z_m=env.config.scene.trocar_m[2],
                static=(env.scene.TISSUE,),
            )
        return gl.render()

    def apply(self, tel: p.Telemetry) -> None:
        """Pose the mirror as ``tel`` shows the robot (loading its task first if it changed)."""
        task = tel.task.name if tel.task is not None else "Reach"
        seed = tel.task.seed if tel.task is not None else 0
        if task not in TASKS_BY_NAME:
            raise ValueError(f"telemetry names an unknown task {task!r}")
        if self._loaded != (task, seed):
            if task not in self._envs:
                self._envs[task] = self._build(task)
            self.env = self._envs[task]
            self.env.reset(seed=seed)
            self._loaded = (task, seed)
        env = self.env
        assert env is not None
        env.arm.reset(np.asarray(tel.joint_pos, dtype=float), tel.jaw)
        for name, pose in tel.objects.items():
            if name in env.sim.bodies:
                world = env.arm.base_to_world(np.asarray(pose.pos_m, dtype=float))
                env.sim.reset_base_pose(name, tuple(world), pose.quat_xyzw)

    def force_limits_N(self) -> tuple[float, float] | None:
        """(warn, stop) contact force (N) of the scene the robot runs (the same env options)."""
        if self.env is None:
            return None
        return (self.env.limits.warn_N, self.env.limits.hard_N)

    def force_band_N(self) -> tuple[float, float] | None:
        """The loaded task's target contact force band (N), or None."""
        return None if self.env is None else self.env.task.force_band_N()

    def render(self, width: int, height: int) -> np.ndarray:
        """The endoscope view of the mirrored state: (height, width, 3) RGB uint8."""
        if self._loaded is None:
            raise RuntimeError("no state applied yet")
        return self._render(self._loaded[0], width, height)

    def close(self) -> None:
        for gl in self._gl.values():
            gl.close()
        self._gl.clear()
        for env in self._envs.values():
            env.close()
        self._envs.clear()


def pose_key(tel: p.Telemetry) -> tuple:
    """Everything the mirror's picture depends on (task, seed, joints, jaw, object poses), to a
    micrometre: equal keys give the same image (the mirror poses bodies, it never recolours them),
    so a still scene is not drawn again — each frame still goes out, carrying the newest state's
    time."""
    task = (tel.task.name, tel.task.seed) if tel.task is not None else ("Reach", 0)

    def q(values: Any) -> tuple[float, ...]:  # to 1 µm / 1 µrad: far below a pixel (~0.5 mm here)
        return tuple(round(float(v), 6) for v in values)

    objects = tuple(sorted((k, q(v.pos_m), q(v.quat_xyzw)) for k, v in tel.objects.items()))
    return (task, q(tel.joint_pos), round(float(tel.jaw), 6), objects)


def _task_summary(task: p.TaskState | None) -> dict[str, Any] | None:
    """What a page shows of the task (as the surgeon page's HUD has it)."""
    if task is None:
        return None
    return {
        "name": task.name,
        "seed": task.seed,
        "success": task.success,
        "episode_s": task.episode_s,
        "achieved": list(task.achieved_goal),
        "desired": list(task.desired_goal),
    }


def _usable_backend() -> str:
    """The fastest renderer that works here: the lean GL renderer, else pybullet's EGL plugin, else
    TinyRenderer (each failure is said once)."""
    try:
        import moderngl

        moderngl.create_standalone_context(backend="egl").release()
        return "gl"
    except Exception as exc:  # no moderngl, no EGL, no GL 3.3: try the next
        log.warning("lean GL renderer unavailable (%s); trying pybullet's EGL plugin", exc)
    try:
        from telesurg.envs.sim import Sim

        Sim(SimConfig(renderer="egl")).close()
        return "egl"
    except RuntimeError as exc:
        log.warning("EGL rendering unavailable (%s): using pybullet's TinyRenderer (slower)", exc)
        return "tiny"


def _sim(sim: SimConfig, backend: str) -> SimConfig:
    return dataclasses.replace(sim, renderer=backend)


def run_renderer(config: RendererConfig, shm_name: str, conn: Connection, stop: Any) -> None:
    """The renderer process's main: render the newest state at ``config.fps`` into the frame buffer
    named ``shm_name``, announcing each frame's ``FrameMeta`` on ``conn``, until ``stop`` is set."""
    os.environ.setdefault("LP_NUM_THREADS", str(config.mesa_threads))
    if config.nice:
        os.nice(config.nice)
    logging.basicConfig(level=logging.INFO, format="renderer: %(message)s")
    fb = FrameBuffer(config.width, config.height, name=shm_name)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.CONFLATE, 1)
    sub.setsockopt(zmq.RCVHWM, 1)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(config.state_url)
    mirror = SceneMirror(config)
    mirror.preload(config.preload, config.width, config.height)
    log.info("rendering with the %s back end", mirror.backend)
    period = 1.0 / config.fps
    frame_id = 0
    tel: p.Telemetry | None = None
    image: np.ndarray | None = None
    shown_key: tuple | None = None
    rate = FixedRate(period)  # fell behind (slow render): it starts afresh, never catches up
    try:
        while not stop.is_set():
            while True:  # the newest state (CONFLATE keeps one; drain in case of a reconnect)
                try:
                    data = sub.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                try:
                    tel = p.decode(data, p.Telemetry)
                except p.ProtocolError as exc:
                    log.warning("ignored bad state message: %s", exc)
            if tel is not None:
                start = time.monotonic()
                key = pose_key(tel)
                if key != shown_key or image is None:  # else the picture is the one drawn last
                    mirror.apply(tel)
                    image = mirror.render(config.width, config.height)
                    shown_key = key
                end = time.monotonic()
                frame_id += 1
                slot = frame_id % SLOTS
                fb.write(slot, image)
                conn.send(
                    FrameMeta(
                        frame_id=frame_id,
                        slot=slot,
                        width=config.width,
                        height=config.height,
                        telemetry_seq=tel.seq,
                        state_robot_s=tel.robot_s,
                        render_start_s=start,
                        render_end_s=end,
                        state=tel.state,
                        force_mag_N=tel.force_mag_N,
                        tip_m=tel.tool.pos_m,
                        reason=tel.reason,
                        task=_task_summary(tel.task),
                        force_limits_N=mirror.force_limits_N(),
                        force_band_N=mirror.force_band_N(),
                    )
                )
            rate.advance()
            if tel is None:
                sub.poll(int(period * 1000))
            else:
                sleep_until(rate.deadline_s)
    except (BrokenPipeError, EOFError, KeyboardInterrupt):
        pass
    finally:
        mirror.close()
        sub.close()
        ctx.term()
        fb.close()

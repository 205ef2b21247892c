"""Every task's endoscope view shows the surgeon what the task needs: the tool tip at home and every
object the task places, for many seeds, inside the image with a margin."""

from __future__ import annotations

import numpy as np
import pytest

from telesurg.envs.core import EnvConfig, SurgicalEnv
from telesurg.envs.scene import SceneConfig, camera_intrinsics
from telesurg.envs.sim import CameraSpec
from telesurg.envs.tasks import TASKS_BY_NAME

WIDTH, HEIGHT = 640, 480
#: Fraction of the image width/height kept clear at each edge.
MARGIN = 0.05
#: Bodies that are not the task's: the tissue bed, the arm and the scene's props.
SCENE_BODIES = {"tissue", "psm", "needle"}


def _pixel(camera: CameraSpec, point_m: np.ndarray) -> tuple[float, float, float]:
    """(u, v, depth) of a world point in a ``WIDTH``×``HEIGHT`` image of ``camera``."""
    eye, target, up = (np.asarray(v, dtype=float) for v in (camera.eye_m, camera.target_m, camera.up))
    z = (target - eye) / np.linalg.norm(target - eye)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    fx, fy, cx, cy = camera_intrinsics(camera, WIDTH, HEIGHT)
    d = point_m - eye
    depth = float(d @ z)
    return cx + fx * float(d @ x) / depth, cy + fy * float(d @ y) / depth, depth


@pytest.mark.parametrize("task", sorted(TASKS_BY_NAME))
def test_the_tool_and_the_task_objects_are_in_view_at_reset(task: str) -> None:
    env = SurgicalEnv(TASKS_BY_NAME[task])
    try:
        seen: dict[str, int] = {}
        for seed in range(30):
            env.reset(seed=seed)
            points = {"tool tip": env.arm.base_to_world(env.arm.read().tip_position_m)}
            for body in env.sim.bodies:
                if body not in SCENE_BODIES:
                    points[body] = np.asarray(env.sim.base_pose(body)[0], dtype=float)
            for name, point in points.items():
                u, v, depth = _pixel(env.camera, point)
                assert depth > 0.05, f"{task} seed {seed}: {name} is behind or at the lens"
                assert MARGIN * WIDTH <= u <= (1 - MARGIN) * WIDTH, f"{task} seed {seed}: {name} off-screen (u={u:.0f})"
                assert MARGIN * HEIGHT <= v <= (1 - MARGIN) * HEIGHT, (
                    f"{task} seed {seed}: {name} off-screen (v={v:.0f})"
                )
                seen[name] = seen.get(name, 0) + 1
        assert seen["tool tip"] == 30 and len(seen) >= 2, f"{task}: no task objects checked ({sorted(seen)})"
    finally:
        env.close()


def test_a_configured_scene_camera_replaces_the_task_view() -> None:
    camera = CameraSpec(eye_m=(0.0, -0.2, 0.2), target_m=(0.0, 0.0, 0.0), fov_deg=40.0)
    env = SurgicalEnv(TASKS_BY_NAME["Reach"], config=EnvConfig(scene=SceneConfig(camera=camera)))
    try:
        assert env.camera == camera
    finally:
        env.close()
    env = SurgicalEnv(TASKS_BY_NAME["Reach"])
    try:
        assert env.camera == env.task.camera() and env.camera.fov_deg == 60.0
    finally:
        env.close()

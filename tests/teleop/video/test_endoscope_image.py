"""What the endoscope image gives the surgeon (the lean GL renderer): tissue with texture, the
tool's shadow where the key light throws it (the depth cue), and the same picture from the fast
path (the tissue drawn once, redrawn only where shadows fall) as from drawing everything."""

from __future__ import annotations

import numpy as np
import pytest

from telesurg.envs.core import SurgicalEnv
from telesurg.envs.tasks import TASKS_BY_NAME
from telesurg.teleop.video.glrender import KEY_LIGHT_M, GLSceneRenderer

W, H = 640, 480


def _renderer(env: SurgicalEnv, fast: bool = True, arm_shadow: bool = True) -> GLSceneRenderer:
    outside = env.arm.outside_links() if arm_shadow else tuple(range(-1, 12))
    return GLSceneRenderer(
        env.sim,
        env.camera,
        W,
        H,
        textured=tuple(body for body, _ in env.scene.tissue_bodies),
        outside=tuple((env.arm.name, link) for link in outside),
        wall_z_m=env.config.scene.trocar_m[2],
        static=(env.scene.TISSUE,) if fast else (),
    )


def _place_tip(env: SurgicalEnv, tip_world_m: tuple[float, float, float]) -> None:
    env.arm.reset(env.arm.home_for_tip(env.arm.world_to_base(np.asarray(tip_world_m, dtype=float))))


def _pixel(renderer: GLSceneRenderer, point_m: np.ndarray) -> tuple[int, int]:
    clip = renderer._view_proj @ np.append(point_m, 1.0)
    x, y = clip[:2] / clip[3]
    return round(float(x + 1) / 2 * W), round(float(1 - y) / 2 * H)


@pytest.mark.parametrize("task", ["Reach", "Transfer", "Retract"])
def test_the_fast_path_draws_what_drawing_everything_draws(task: str) -> None:
    env = SurgicalEnv(TASKS_BY_NAME[task])
    try:
        env.reset(seed=3)
        fast, full = _renderer(env), _renderer(env, fast=False)
        try:
            for tip in ((0.0, 0.0, 0.05), (0.02, -0.01, 0.004), (-0.04, 0.03, 0.015)):
                _place_tip(env, tip)
                a, b = fast.render().astype(int), full.render().astype(int)
                differ = np.abs(a - b).max(axis=2) > 3
                assert differ.mean() < 1e-3, f"{task} tip {tip}: {differ.sum()} pixels differ"
        finally:
            fast.close()
            full.close()
    finally:
        env.close()


def test_the_tool_throws_a_shadow_where_the_key_light_puts_it() -> None:
    env = SurgicalEnv(TASKS_BY_NAME["Palpate"])
    try:
        env.reset(seed=0)
        lit, shaded = _renderer(env, arm_shadow=False), _renderer(env)
        to_light = np.asarray(KEY_LIGHT_M) / np.linalg.norm(KEY_LIGHT_M)
        try:
            for height in (0.025, 0.008):
                tip = np.array([0.01, -0.01, height])
                _place_tip(env, tuple(tip))
                # Where the light's ray through the tip meets the tissue; a little along the shaft
                # (toward the trocar, +x) so the jaws' own thin shadow does not decide it.
                shadow = tip - tip[2] / to_light[2] * to_light + np.array([0.004, 0.0, 0.0])
                u, v = _pixel(shaded, shadow)
                window = (slice(v - 1, v + 2), slice(u - 1, u + 2))
                without, with_ = lit.render()[window].mean(), shaded.render()[window].mean()
                assert with_ < 0.8 * without, f"tip {height * 1000:.0f} mm up: no shadow at ({u}, {v})"
                # The tissue around it, away from the line of the shaft, stays lit.
                far = (slice(v + 25, v + 28), slice(u - 1, u + 2))
                assert abs(lit.render()[far].mean() - shaded.render()[far].mean()) < 3
        finally:
            lit.close()
            shaded.close()
    finally:
        env.close()


def test_the_tissue_is_textured_not_a_flat_colour() -> None:
    env = SurgicalEnv(TASKS_BY_NAME["Reach"])
    try:
        env.reset(seed=0)
        renderer = _renderer(env)
        try:
            image = renderer.render().astype(float)
        finally:
            renderer.close()
        patch = image[H - 120 : H - 20, 40:200].mean(axis=2)  # tissue only: lower left
        # Fine detail: each pixel against the mean of its 5×5 neighbourhood (lighting is smooth).
        k = 5
        padded = np.pad(patch, k // 2, mode="edge")
        blur = np.mean(
            [padded[i : i + patch.shape[0], j : j + patch.shape[1]] for i in range(k) for j in range(k)], axis=0
        )
        assert np.std(patch - blur) > 2.0, "the tissue looks flat"
        assert image[H - 120 : H - 20, 40:200, 0].mean() > image[H - 120 : H - 20, 40:200, 2].mean() + 20  # still pink
    finally:
        env.close()


def test_a_mirror_holding_several_tasks_draws_each_in_its_own_view() -> None:
    """The renderer process keeps one GL renderer per task; each draws its own scene from its own
    camera however many were made after it (GL calls go to whichever context is current)."""
    from telesurg.teleop.video.renderer import RendererConfig, SceneMirror

    tasks = ("Retract", "Reach", "Transfer")
    expected = {}
    for task in tasks:  # each alone, in the state the mirror's preload leaves it (reset, seed 0)
        env = SurgicalEnv(TASKS_BY_NAME[task])
        try:
            env.reset(seed=0)
            alone = _renderer(env)
            expected[task] = alone.render().astype(int)
            alone.close()
        finally:
            env.close()
    mirror = SceneMirror(RendererConfig(backend="gl", preload=tasks))
    try:
        mirror.preload(tasks, W, H)
        for task in ("Retract", "Transfer", "Reach", "Retract"):
            got = mirror._render(task, W, H).astype(int)
            assert (np.abs(got - expected[task]).max(axis=2) > 3).mean() < 1e-3, f"{task} drawn wrongly"
    finally:
        mirror.close()

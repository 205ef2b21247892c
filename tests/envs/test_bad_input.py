"""Bad actions and bad configuration are rejected clearly and never corrupt the simulation."""

from __future__ import annotations

import numpy as np
import pytest

from telesurg.envs import env_id
from telesurg.envs.core import EnvConfig
from telesurg.envs.safety import ForceLimits
from telesurg.envs.scene import SceneConfig


@pytest.mark.parametrize(
    "bad",
    [
        [np.nan, 0.0, 0.0, 0.0],
        [0.0, np.inf, 0.0, 0.0],
        [0.0, 0.0, -np.inf, 0.0],
        [0.0, 0.0, 0.0],
        [[0.0, 0.0, 0.0, 0.0]],
        ["a", "b", "c", "d"],
        None,
    ],
)
def test_invalid_actions_are_rejected_and_leave_the_world_untouched(bad, make_env) -> None:
    env = make_env(env_id("Palpate"))
    base = env.unwrapped
    env.reset(seed=0)
    for _ in range(3):
        env.step(np.array([0.3, -0.2, -0.5, 0.0], dtype=np.float32))
    before = base.sim.snapshot()
    time_before = base.sim.time_s
    with pytest.raises(ValueError, match="action"):
        base.step(bad)
    assert base.sim.snapshot() == before
    assert base.sim.time_s == time_before
    # The simulation carries on normally afterwards.
    obs, *_ = env.step(np.zeros(4, dtype=np.float32))
    assert np.all(np.isfinite(obs["observation"]))


def test_out_of_range_actions_are_clipped(make_env) -> None:
    clipped_env = make_env(env_id("Reach"))
    plain_env = make_env(env_id("Reach"))
    clipped_env.reset(seed=4)
    plain_env.reset(seed=4)
    base_clipped, base_plain = clipped_env.unwrapped, plain_env.unwrapped
    obs_a, _, _, _, info_a = base_clipped.step(np.array([5.0, -7.0, 0.5, 3.0]))
    obs_b, _, _, _, info_b = base_plain.step(np.array([1.0, -1.0, 0.5, 1.0]))
    assert info_a["action_clipped"] and not info_b["action_clipped"]
    for key in obs_a:
        np.testing.assert_array_equal(obs_a[key], obs_b[key])


@pytest.mark.parametrize("bad", [-1, 15, 1.5, "x", None])
def test_invalid_discrete_actions_are_rejected(bad, make_env) -> None:
    env = make_env(env_id("Retract", discrete=True))
    env.reset(seed=0)
    assert env.action_space.n == 15
    with pytest.raises(ValueError, match="discrete action"):
        env.step(bad)


def test_bad_configuration_is_rejected_with_a_clear_message(make_env) -> None:
    with pytest.raises(ValueError, match="warn_N"):
        ForceLimits(warn_N=6.0, hard_N=3.0)
    with pytest.raises(ValueError, match="trocar"):
        SceneConfig(trocar_m=(0.0, 0.0, 0.01))
    with pytest.raises(ValueError, match="trocar"):
        SceneConfig(trocar_m=(0.0, float("nan"), 0.1))
    with pytest.raises(ValueError, match="reward_type"):
        EnvConfig(reward_type="shaped")
    with pytest.raises(ValueError, match="whole multiple"):
        EnvConfig(control_period_s=0.005)
    with pytest.raises(TypeError, match="unknown environment option"):
        make_env(env_id("Reach"), stifness=10)
    with pytest.raises(ValueError, match="out of reach"):
        make_env(env_id("Reach"), config=EnvConfig(scene=SceneConfig(home_tip_m=(0.5, 0.0, 0.05))))


@pytest.mark.parametrize("bad", [[np.nan, 0.0, 0.0, 0.0], ["a", "b", "c", "d"], [0.0, 0.0]])
def test_shield_wrapper_passes_invalid_actions_to_the_env_check(bad, make_env) -> None:
    env = make_env(env_id("Palpate"), shield=True)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(bad)

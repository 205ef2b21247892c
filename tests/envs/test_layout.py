"""Observation layouts: documented, versioned, and consistent with what the env reports."""

from __future__ import annotations

import numpy as np
import pytest

from telesurg.envs import ENV_IDS, OBS_LAYOUT_VERSION, env_id
from telesurg.envs.layout import Field, ObsLayout


@pytest.mark.parametrize("env_id", [i for i in ENV_IDS if "Dense" not in i and "Discrete" not in i])
def test_layout_matches_spaces_and_fields_read_back(env_id: str, make_env) -> None:
    env = make_env(env_id)
    base = env.unwrapped
    assert base.obs_layout.version == OBS_LAYOUT_VERSION
    assert base.obs_layout.size == env.observation_space["observation"].shape[0]
    assert base.goal_layout.size == env.observation_space["achieved_goal"].shape[0]
    assert base.obs_layout.names[:4] == ("tip_pos_m", "tip_vel_m_s", "jaw_opening", "contact_force_N")
    assert all(f.unit and f.doc for f in base.obs_layout.fields)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, _, _, _, info = env.step(np.array([0.0, 0.0, -1.0, 0.0], dtype=np.float32))
    force = base.obs_layout.get(obs["observation"], "contact_force_N")
    np.testing.assert_allclose(force, info["contact_force_vec_N"], rtol=1e-6, atol=1e-6)
    tip = base.obs_layout.get(obs["observation"], "tip_pos_m")
    np.testing.assert_allclose(tip, base.arm.read().tip_position_m, atol=1e-6)


def test_layout_rejects_duplicates_and_signature_changes_with_fields() -> None:
    a = Field("a", 3, "m", "a")
    with pytest.raises(ValueError, match="duplicate"):
        ObsLayout((a, a))
    one = ObsLayout((a,))
    two = ObsLayout((a, Field("b", 1, "N", "b")))
    assert one.signature() != two.signature()
    with pytest.raises(KeyError, match="no field"):
        one.slice("b")


def test_discrete_and_continuous_share_a_layout(make_env) -> None:
    a = make_env(env_id("Palpate")).unwrapped.obs_layout.signature()
    b = make_env(env_id("Palpate", dense=True, discrete=True)).unwrapped.obs_layout.signature()
    assert a == b

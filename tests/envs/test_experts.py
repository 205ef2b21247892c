"""Each task's scripted expert succeeds in at least 95% of seeded episodes, within the force limits."""

from __future__ import annotations

import pytest

from telesurg.envs import env_id
from telesurg.envs.experts import make_expert, run_episode
from telesurg.envs.tasks import TASKS


@pytest.mark.parametrize("task", [t.name for t in TASKS])
def test_expert_solves_at_least_95_percent(task: str, make_env) -> None:
    env = make_env(env_id(task))
    expert = make_expert(env)
    results = [run_episode(env, expert, seed=seed) for seed in range(20)]
    successes = sum(r["success"] for r in results)
    assert successes >= 19, f"{task}: expert solved {successes}/20 ({[r for r in results if not r['success']]})"
    assert not any(r["force_limit_exceeded"] for r in results)

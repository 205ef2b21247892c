"""Shared helpers for telesurg tests."""

from __future__ import annotations

from collections.abc import Iterator

import gymnasium as gym
import pytest

from telesurg import envs  # noqa: F401  (registers the ids)


@pytest.fixture
def make_env() -> Iterator:
    """``make_env(id, **kwargs)`` → an env that is closed after the test."""
    made: list[gym.Env] = []

    def _make(env_id: str, **kwargs) -> gym.Env:
        env = gym.make(env_id, **kwargs)
        made.append(env)
        return env

    yield _make
    for env in made:
        env.close()

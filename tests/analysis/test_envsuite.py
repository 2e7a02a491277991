"""The generator of runs beyond CartPole: rows laid out as the agent writes them (chains inside
episodes, time limits as truncation), deterministic experts, and planters that change what they
say they change."""

from __future__ import annotations

import numpy as np
import pytest
from envsuite_cases import _simulated

from replaystore.analysis import _envsuite as es


def cols_of(env_id: str, seed: int = 0) -> dict:
    return {k: v.copy() for k, v in _simulated(tuple(sorted({"env_id": env_id, "seed": seed}.items()))).items()}


@pytest.mark.parametrize("env_id", sorted(es.ENVS))
def test_rows_chain_inside_episodes(env_id):
    """next_state of a row is the state of the next row of its episode; episodes and steps count up."""
    cols = cols_of(env_id)
    inside = ~cols["done"][:-1]
    np.testing.assert_array_equal(cols["next_state"][:-1][inside], cols["state"][1:][inside])
    assert np.all(cols["step"][1:][inside] == cols["step"][:-1][inside] + 1)
    assert {0, 1} == set(np.unique(cols["actor"]).tolist())


@pytest.mark.parametrize("env_id, limit", [("Pendulum-v1", 200), ("PointMass-v0", es.POINTMASS_LIMIT)])
def test_time_limits_truncate(env_id, limit):
    """Environments that never terminate end every episode at the limit, flagged truncated."""
    cols = cols_of(env_id)
    ends = np.flatnonzero(cols["done"])
    assert ends.size and np.all(cols["truncated"][ends]) and np.all(cols["step"][ends] == limit - 1)


@pytest.mark.parametrize("env_id", sorted(es.ENVS))
def test_expert_is_deterministic_and_inside_the_space(env_id):
    """The scripted expert gives the same action for the same state, inside the action space."""
    spec = es.ENVS[env_id]
    cols = cols_of(env_id)
    states = cols["state"][cols["actor"] == 0][:200]
    first = [spec.expert(s) for s in states]
    assert first == [spec.expert(s) for s in states]
    if spec.n_actions:
        assert set(first) <= set(range(spec.n_actions))
    else:
        assert spec.low <= min(first) and max(first) <= spec.high


def test_custom_environment_is_declared_only_by_metadata():
    """PointMass is not registered in gymnasium; its facts ride in the metadata 'env' block."""
    import gymnasium as gym

    assert "PointMass-v0" not in gym.registry
    meta = es.metadata(es.Run("PointMass-v0"))
    assert {"max_episode_steps", "action_low", "action_high", "reward_range", "random_reset"} <= set(meta["env"])
    assert "env" not in es.metadata(es.Run("Pendulum-v1"))


@pytest.mark.parametrize("env_id, plant, column", [
    ("MountainCar-v0", "shifted_actions", "discrete_action"), ("Pendulum-v1", "late_rewards", "reward"),
    ("Pendulum-v1", "clipped_rewards", "reward"), ("Pendulum-v1", "preclip_actions", "continuous_action")])
def test_fit_planters_change_the_rows_they_name(env_id, plant, column):
    """Each planter changes its column on the rows it returns, only on the actor it names."""
    clean = cols_of(env_id)
    cols = cols_of(env_id)
    _, actor, rows = getattr(es, f"plant_{plant}")(cols)
    assert rows.size and np.all(cols["actor"][rows] == es.ACTORS.index(actor))
    changed = np.flatnonzero((cols[column] != clean[column]).reshape(len(clean[column]), -1).any(1))
    assert set(changed.tolist()) <= set(rows.tolist()) and changed.size > 0.5 * rows.size

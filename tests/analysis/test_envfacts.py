"""What the audit knows of an environment from its id: time limits, terminal states, rewards."""

from __future__ import annotations

import numpy as np

from replaystore.analysis._envfacts import SLACK, THETA_LIMIT, X_LIMIT, cartpole_terminal, env_facts


def test_terminal_states_with_a_rounding_margin():
    """Surely past a bound is +1, surely inside -1, within float32 rounding of a bound 0."""
    s = np.zeros((5, 4), np.float32)
    s[0, 2] = THETA_LIMIT * 1.01          # pole fallen
    s[1, 0] = -X_LIMIT * 1.01             # cart out on the left
    s[2, 2] = THETA_LIMIT * (1 - 1e-7)    # at the bound: float32 cannot say
    s[3, 0] = X_LIMIT * (1 - 10 * SLACK)  # inside
    assert [1, 1, 0, -1, -1] == cartpole_terminal(s).tolist()


def test_env_facts_from_metadata():
    """The id comes from the top level or the agent's config; max_episode_steps overrides the limit."""
    assert 500 == env_facts({"env_id": "CartPole-v1"})[0].max_steps
    assert 200 == env_facts({"config": {"env_id": "CartPole-v0"}})[0].max_steps
    assert 100 == env_facts({"env_id": "HybridCartPole-v1", "max_episode_steps": 100})[0].max_steps
    assert (None, []) == env_facts({"env_id": "NoSuchGame-v5"}) and (None, []) == env_facts({})


def test_time_limit_from_metadata_is_enforced(cartpole):
    """A run declaring max_episode_steps=100 whose episodes run longer: DONE_MISSING past the limit."""
    report, cols = cartpole(rows=2000, expert_ratio=0.9, meta={"max_episode_steps": 100})
    (a,) = [a for a in report.anomalies if a.code == "DONE_MISSING"]
    assert 100 == a.details["threshold"] and a.details["evidence"] > 100

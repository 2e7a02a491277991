"""The simulated CartPole runs behind the planted-defect suite are faithful to gymnasium and the agent."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from replaystore.agent import CartPoleExpert, EnvSpec
from replaystore.analysis import _cartpole as cp


def test_physics_matches_gymnasium_step_by_step():
    """From gymnasium's own reset state, 200 steps of the same actions give the same observations and ends."""
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=3)
    s = tuple(float(v) for v in env.unwrapped.state)
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = int(rng.integers(0, 2))
        obs, _, term, trunc, _ = env.step(a)
        s = cp.cartpole_step(s, a)
        np.testing.assert_array_equal(obs, np.asarray(s, np.float32))
        assert term == cp.terminated(s)
        if term or trunc:
            obs, _ = env.reset(seed=int(rng.integers(1 << 30)))
            s = tuple(float(v) for v in env.unwrapped.state)
    env.close()


def test_expert_is_the_agents_expert():
    """The simulated expert takes CartPoleExpert's action on every expert row."""
    expert = CartPoleExpert(EnvSpec((4,), 2, 0))
    cols = cp.simulate(cp.CartPoleRun(rows=400, seed=1, expert_ratio=0.5))
    rows = np.flatnonzero(cols["actor"] == 0)
    assert rows.size > 100
    assert [expert(cols["state"][i])[0] for i in rows] == cols["discrete_action"][rows].tolist()


def test_rows_chain_and_episodes_are_numbered_as_the_store_does():
    """next_state[t] is state[t+1] inside episodes; episode/step restart after each done; 500-step limit."""
    cols = cp.simulate(cp.CartPoleRun(rows=3000, seed=2, expert_ratio=0.9))
    inside = ~cols["done"][:-1]
    np.testing.assert_array_equal(cols["next_state"][:-1][inside], cols["state"][1:][inside])
    assert cols["truncated"].any() and (cols["step"][cols["truncated"]] == 499).all()
    assert (cols["step"][1:][cols["done"][:-1]] == 0).all()

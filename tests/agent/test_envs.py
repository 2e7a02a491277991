"""Environments: the hybrid CartPole's action space and force scaling; the expert's skill."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from replaystore.agent import CartPoleExpert, HybridCartPole, env_spec, evaluate_expert, make_env
from replaystore.agent.errors import EnvironmentSpecError


def test_hybrid_action_space_and_spec():
    """HybridCartPole-v1 is made by id, with a Tuple(Discrete(2), Box(-1, 1, (1,))) action space."""
    env = make_env("HybridCartPole-v1")
    assert isinstance(env.action_space, gym.spaces.Tuple)
    assert 2 == env.action_space.spaces[0].n
    assert (1,) == env.action_space.spaces[1].shape
    assert ((4,), 2, 1, "float32") == tuple(vars(env_spec(env)).values())
    assert ((4,), 2, 0, "float32") == tuple(vars(env_spec(make_env("CartPole-v1"))).values())


def _cart_velocity_after_push(c):
    env = HybridCartPole()
    env.reset(seed=0)
    obs, reward, *_ = env.step((1, np.array([c], "f4")))
    return obs[1], reward


def test_continuous_action_scales_the_push():
    """c = -1, 0, 1 push with 0.5x, 1x and 1.5x of CartPole's force; c = 0 is plain CartPole."""
    base = gym.make("CartPole-v1")
    base.reset(seed=0)
    v_plain = base.step(1)[0][1]
    (v_lo, r_lo), (v_0, r_0), (v_hi, r_hi) = (_cart_velocity_after_push(c) for c in (-1.0, 0.0, 1.0))
    assert v_0 == pytest.approx(v_plain)
    assert v_lo < v_0 < v_hi
    assert (v_hi - v_0) == pytest.approx(v_0 - v_lo, rel=1e-3)
    assert r_lo > r_0 == 1.0 > r_hi


def test_hybrid_action_must_be_a_pair():
    """A bare discrete action on the hybrid env is a TypeError showing the expected form."""
    env = make_env("HybridCartPole-v1")
    env.reset(seed=0)
    with pytest.raises(TypeError, match=r"not a \(discrete, continuous\) pair"):
        env.step(1)


def test_unknown_env_id():
    """An id gymnasium does not know fails with the ids that work."""
    with pytest.raises(EnvironmentSpecError, match="try 'CartPole-v1'"):
        make_env("NoSuchEnv-v0")


def test_expert_balances_the_pole():
    """The PD expert reaches CartPole's 500-step limit."""
    assert [500.0, 500.0] == evaluate_expert("CartPole-v1", episodes=2)


def test_expert_refuses_other_environments():
    """The CartPole expert on an env with other spaces is an error, not a wrong controller."""
    from replaystore.agent import EnvSpec

    with pytest.raises(ValueError, match="CartPoleExpert drives CartPole"):
        CartPoleExpert(EnvSpec((3,), 3, 0))

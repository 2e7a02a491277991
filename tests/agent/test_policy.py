"""Who decides each frame, and the epsilon schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from replaystore.agent import ActorMixer, CartPoleExpert, EnvSpec, HybridDQN, epsilon_at

SPEC = EnvSpec((4,), 2, 1)


def _mixer(ratio, seed=0):
    torch.manual_seed(0)
    net = HybridDQN((4,), 2, 1, (8,))
    return ActorMixer(net, CartPoleExpert(SPEC), SPEC, ratio, "expert", "dqn", np.random.default_rng(seed))


@pytest.mark.parametrize("ratio,expected", [(0.0, {"dqn"}), (1.0, {"expert"})])
def test_extreme_ratios(ratio, expected):
    """expert_ratio 0 never asks the expert; 1 always does."""
    m = _mixer(ratio)
    assert expected == {m.act(np.zeros(4, "f4"), 0.5)[2] for _ in range(200)}


def test_expert_frames_carry_the_experts_decision():
    """A frame tagged expert holds exactly the expert's action; a greedy DQN frame the network's."""
    m = _mixer(0.5)
    s = np.array([0.0, 0.0, 0.05, 0.1], "f4")
    d_exp, c_exp = CartPoleExpert(SPEC)(s)
    with torch.no_grad():
        q, c = m.net(torch.from_numpy(s)[None])
    for _ in range(50):
        d, cont, who = m.act(s, epsilon=0.0)
        if who == "expert":
            assert (d_exp, c_exp.tolist()) == (d, cont.tolist())
        else:
            assert (int(q.argmax()), c[0].tolist()) == (d, cont.tolist())


def test_epsilon_schedule():
    """Linear from start to end over fraction * total frames, then flat."""
    assert 1.0 == epsilon_at(0, 1000, 1.0, 0.1, 0.5)
    assert pytest.approx(0.55) == epsilon_at(250, 1000, 1.0, 0.1, 0.5)
    assert 0.1 == epsilon_at(500, 1000, 1.0, 0.1, 0.5) == epsilon_at(900, 1000, 1.0, 0.1, 0.5)
    assert 0.1 == epsilon_at(0, 1000, 1.0, 0.1, 0.0)

"""The gradient step: per-actor gradient shares add up to the full gradient; loss weights act."""

from __future__ import annotations

import numpy as np
import torch

from replaystore.agent import AgentConfig, HybridDQN
from replaystore.agent._learner import Batch, Learner


def _batch(B=32, seed=0, cdim=1):
    g = torch.Generator().manual_seed(seed)
    return Batch(state=torch.randn(B, 4, generator=g), discrete_action=torch.randint(0, 2, (B,), generator=g),
                 continuous_action=torch.rand(B, cdim, generator=g) * 2 - 1, reward=torch.randn(B, generator=g),
                 codes=torch.arange(B) % 2, returns=torch.randn(B, generator=g), boot_state=torch.randn(B, 4, generator=g),
                 discount=torch.full((B,), 0.9), weight=torch.ones(B))


def _learner(**kw):
    torch.manual_seed(0)
    cfg = AgentConfig(hidden=(8,), max_grad_norm=float("inf"), **kw)
    return Learner(HybridDQN((4,), 2, 1, (8,)), cfg, ("expert", "dqn"))


def test_per_actor_grads_sum_to_full_gradient():
    """The step with diagnostics moves the weights exactly as the plain step does."""
    a, b = _learner(), _learner()
    batch = _batch()
    out_a = a.step(batch, measure_grads=True)
    out_b = b.step(batch, measure_grads=False)
    assert out_b.grad_norm is None
    assert (out_a.grad_norm > 0).all()
    for pa, pb in zip(a.net.parameters(), b.net.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6)
    assert out_a.loss == out_b.loss


def test_zero_loss_weight_gives_zero_gradient_share():
    """actor_loss_weights={'dqn': 0} shows as a DQN gradient norm of 0: its frames do not move the weights."""
    lr = _learner(actor_loss_weights={"dqn": 0.0})
    out = lr.step(_batch(), measure_grads=True)
    assert 0.0 == out.grad_norm[1]
    assert out.grad_norm[0] > 0


def test_target_network_updates_on_cadence():
    """The target copies the online weights every target_update_every steps, not before."""
    lr = _learner(target_update_every=3)
    before = [p.clone() for p in lr.target.parameters()]
    for i in range(2):
        lr.step(_batch(seed=i), False)
    assert all(torch.equal(x, y) for x, y in zip(before, lr.target.parameters()))
    lr.step(_batch(seed=2), False)
    assert all(torch.equal(x, y) for x, y in zip(lr.net.parameters(), lr.target.parameters()))


def test_td_error_is_target_minus_q():
    """The reported TD error is the double-DQN n-step target minus Q(s, a) before the update."""
    lr = _learner()
    batch = _batch()
    with torch.no_grad():
        q = lr.net(batch.state)[0].gather(1, batch.discrete_action[:, None])[:, 0]
        a_next = lr.net(batch.boot_state)[0].argmax(1, keepdim=True)
        y = batch.returns + batch.discount * lr.target(batch.boot_state)[0].gather(1, a_next)[:, 0]
    out = lr.step(batch, False)
    assert torch.allclose(q, out.q) and torch.allclose(y, out.target)
    assert np.allclose((y - q).numpy(), out.td.numpy())

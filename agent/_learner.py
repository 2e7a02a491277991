"""The gradient step: double DQN with n-step targets and a Huber loss, plus AWR for the continuous head.

Every term is kept per sample, so the per-actor metrics, the per-sample telemetry and the
per-actor gradient diagnostics all read the same numbers the optimizer used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ._config import AgentConfig
from ._network import HybridDQN


@dataclass
class Batch:
    """A training batch as tensors: row ``i`` of each field belongs to the same stored transition."""

    state: torch.Tensor            # [B, *state_shape]
    discrete_action: torch.Tensor  # [B] long
    continuous_action: torch.Tensor  # [B, cdim]
    reward: torch.Tensor           # [B] one-step reward of the row (metrics)
    codes: torch.Tensor            # [B] long actor codes
    returns: torch.Tensor          # [B] n-step discounted reward sum
    boot_state: torch.Tensor       # [B, *state_shape] state to bootstrap from
    discount: torch.Tensor         # [B] gamma**k, 0 where the return ended in a terminal state
    weight: torch.Tensor           # [B] sampler importance weight


@dataclass
class StepOutput:
    """Per-sample results of one training step (detached)."""

    loss: float
    td_loss: float
    awr_loss: float
    td: torch.Tensor       # target - Q
    q: torch.Tensor        # Q(s, a) before the update
    target: torch.Tensor
    grad_norm: np.ndarray | None  # per actor code, when measured


class Learner:
    """Owns the online and target networks and the optimizer."""

    def __init__(self, net: HybridDQN, config: AgentConfig, actors: tuple[str, ...]):
        self.net = net
        self.config = config
        self.n_actors = len(actors)
        self.target = HybridDQN.from_spec(net.spec())
        self.target.load_state_dict(net.state_dict())
        self.target.requires_grad_(False)
        self.optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
        w = np.ones(self.n_actors, np.float32)
        for name, v in (config.actor_loss_weights or {}).items():
            w[actors.index(name)] = v
        self.actor_weight = torch.from_numpy(w)
        self.updates = 0

    def step(self, b: Batch, measure_grads: bool) -> StepOutput:
        cfg = self.config
        net = self.net
        q_all, cont = net(b.state)
        q = q_all.gather(1, b.discrete_action.unsqueeze(1)).squeeze(1)
        with torch.no_grad():
            q_next_online, _ = net(b.boot_state)
            a_next = q_next_online.argmax(1, keepdim=True)
            q_next = self.target(b.boot_state)[0].gather(1, a_next).squeeze(1)
            target = b.returns + b.discount * q_next
            w = b.weight * self.actor_weight[b.codes]
        td_terms = F.huber_loss(q, target, reduction="none", delta=cfg.huber_delta)
        per_sample = w * td_terms
        awr = torch.zeros(())
        if net.continuous_dim and cfg.awr_coef > 0:
            with torch.no_grad():
                # advantage of what was done (the n-step return) over the greedy value of the state
                adv = target - q_all.max(1).values
                aw = torch.exp(adv / cfg.awr_beta).clamp(max=cfg.awr_max_weight)
            awr_terms = aw * ((cont - b.continuous_action) ** 2).sum(1)
            per_sample = per_sample + cfg.awr_coef * w * awr_terms
            awr = (w * awr_terms).mean()
        B = per_sample.shape[0]
        loss = per_sample.mean()
        self.optimizer.zero_grad(set_to_none=True)
        grad_norm = None
        if measure_grads:
            grad_norm = self._per_actor_backward(per_sample, b.codes, B)
        else:
            loss.backward()
        if np.isfinite(cfg.max_grad_norm):
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        if self.updates % cfg.target_update_every == 0:
            self.target.load_state_dict(net.state_dict())
        return StepOutput(float(loss.detach()), float((w * td_terms).detach().mean()), float(awr.detach()),
                          (target - q).detach(), q.detach(), target, grad_norm)

    def _per_actor_backward(self, per_sample: torch.Tensor, codes: torch.Tensor, B: int) -> np.ndarray:
        """Gradient of each actor's share of the batch loss; their sum is the full gradient.

        Actor ``a``'s share is ``sum(loss_i for i of actor a) / B``, so the norms say how much each
        actor's samples move the weights in this very step (0 for an actor absent from the batch).
        """
        params = [p for p in self.net.parameters() if p.requires_grad]
        total = [torch.zeros_like(p) for p in params]
        norms = np.zeros(self.n_actors, np.float32)
        present = torch.bincount(codes, minlength=self.n_actors).tolist()
        last = max((a for a in range(self.n_actors) if present[a]), default=-1)
        for a in range(self.n_actors):  # over actors (a handful), not over samples
            if not present[a]:
                continue
            part = (per_sample * (codes == a)).sum() / B
            grads = torch.autograd.grad(part, params, retain_graph=a != last, allow_unused=True)
            sq = 0.0
            for t, g in zip(total, grads):
                if g is not None:
                    t.add_(g)
                    sq += float(g.pow(2).sum())
            norms[a] = sq ** 0.5
        for p, t in zip(params, total):
            p.grad = t
        return norms

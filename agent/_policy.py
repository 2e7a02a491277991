"""Who decides each frame: the scripted expert or the DQN (epsilon-greedy), and what they decide."""

from __future__ import annotations

import importlib

import numpy as np
import torch

from ._envs import EnvSpec
from ._network import HybridDQN
from .errors import ConfigError


class CartPoleExpert:
    """A PD controller on pole angle and angular velocity (plus small cart terms): returns ~500.

    Pushes right when ``k . state > 0``. With a continuous head, the push is scaled by how far
    the state is from balance: gentle near upright, full force when the pole falls.
    """

    def __init__(self, spec: EnvSpec, gains=(0.1, 0.5, 10.0, 2.0)):
        if spec.state_shape != (4,) or spec.n_discrete != 2:
            raise ValueError(
                f"CartPoleExpert drives CartPole (state (4,), 2 discrete actions); got state {spec.state_shape}, "
                f"{spec.n_discrete} actions. Pass expert_ratio=0 for other environments."
            )
        self.gains = np.asarray(gains, np.float64)
        self.continuous_dim = spec.continuous_dim

    def __call__(self, state: np.ndarray) -> tuple[int, np.ndarray]:
        u = float(self.gains @ np.asarray(state, np.float64))
        c = np.full(self.continuous_dim, np.clip(abs(u) - 1.0, -1.0, 1.0), np.float32)
        return int(u > 0), c


def load_expert(name: str, spec: EnvSpec):
    """The expert named ``"module:name"`` (``AgentConfig.expert``), built for ``spec``: ``name(spec)``
    returns a policy ``state -> (discrete, continuous)``.

    Imports ``module``: a name comes from the user's config (the command line, or the config a
    ``--resume`` reads back from the store it was recorded in), never from a store it did not write.
    """
    module, _, attr = name.partition(":")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"expert={name!r} could not be loaded ({type(e).__name__}: {e}); name a factory "
                          "importable here as 'module:name', e.g. 'replaystore.agent:CartPoleExpert', or pass "
                          "expert_ratio=0 to train without an expert") from None
    if not callable(factory):
        raise ConfigError(f"expert={name!r} is a {type(factory).__name__}, not a callable factory(spec) -> policy")
    return factory(spec)


def epsilon_at(frame: int, total: int, start: float, end: float, fraction: float) -> float:
    """Linear decay from ``start`` to ``end`` over the first ``fraction * total`` frames."""
    span = fraction * total
    if span <= 0:
        return end
    return float(end + (start - end) * max(0.0, 1.0 - frame / span))


class ActorMixer:
    """Each frame the expert decides with probability ``expert_ratio``, otherwise the DQN.

    Returns the decision and the vocabulary name of whoever made it: the tag that goes to the store.
    """

    def __init__(self, net: HybridDQN, expert, spec: EnvSpec, expert_ratio: float,
                 expert_actor: str, dqn_actor: str, rng: np.random.Generator):
        self.net = net
        self.expert = expert
        self.spec = spec
        self.expert_ratio = float(expert_ratio)
        self.expert_actor = expert_actor
        self.dqn_actor = dqn_actor
        self.rng = rng

    def act(self, state: np.ndarray, epsilon: float) -> tuple[int, np.ndarray, str]:
        if self.expert is not None and self.rng.random() < self.expert_ratio:
            d, c = self.expert(state)
            return d, c, self.expert_actor
        if self.rng.random() < epsilon:
            d = int(self.rng.integers(self.spec.n_discrete))
            c = self.rng.uniform(-1.0, 1.0, self.spec.continuous_dim).astype(np.float32)
            return d, c, self.dqn_actor
        d, c = greedy_action(self.net, state)
        return d, c, self.dqn_actor


@torch.no_grad()
def greedy_action(net: HybridDQN, state: np.ndarray) -> tuple[int, np.ndarray]:
    q, c = net(torch.as_tensor(np.asarray(state)).unsqueeze(0))  # as observed: the network scales uint8 pixels
    return int(q.argmax(1).item()), c[0].numpy().astype(np.float32)

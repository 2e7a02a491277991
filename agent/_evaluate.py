"""Episode returns of a policy: the greedy DQN alone, the expert, or uniform random actions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ._envs import env_action, env_spec, make_env
from ._network import HybridDQN
from ._policy import greedy_action, load_expert


def run_episodes(env_id: str, policy: Callable[[np.ndarray], tuple[int, np.ndarray]], episodes: int,
                 seed: int) -> list[float]:
    """Returns of ``episodes`` episodes of ``policy(state) -> (discrete, continuous)``."""
    if episodes < 1:
        raise ValueError(f"episodes={episodes}: expected at least 1")
    env = make_env(env_id)
    spec = env_spec(env)
    out = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, over = 0.0, False
        while not over:
            d, c = policy(obs)
            obs, r, term, trunc, _ = env.step(env_action(spec, d, c))
            total += float(r)
            over = term or trunc
        out.append(total)
    env.close()
    return out


def evaluate_greedy(net: HybridDQN, env_id: str, episodes: int = 10, seed: int = 10_000) -> list[float]:
    """The DQN alone, greedy (no epsilon, no expert)."""
    was = net.training
    net.eval()
    with torch.no_grad():
        out = run_episodes(env_id, lambda s: greedy_action(net, s), episodes, seed)
    net.train(was)
    return out


def evaluate_expert(env_id: str, episodes: int = 10, seed: int = 10_000, *,
                    expert: str = "replaystore.agent:CartPoleExpert") -> list[float]:
    """The expert alone (``expert``: ``"module:name"`` of its factory, as ``AgentConfig.expert``)."""
    spec = env_spec(make_env(env_id))
    return run_episodes(env_id, load_expert(expert, spec), episodes, seed)


def evaluate_random(env_id: str, episodes: int = 10, seed: int = 10_000) -> list[float]:
    spec = env_spec(make_env(env_id))
    rng = np.random.default_rng(seed)
    return run_episodes(env_id, lambda s: (int(rng.integers(spec.n_discrete)),
                                           rng.uniform(-1, 1, spec.continuous_dim).astype(np.float32)),
                        episodes, seed)

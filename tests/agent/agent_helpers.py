"""Helpers shared by the agent tests: a tiny config, an agent on a fresh store, synthetic rows."""

from __future__ import annotations

import numpy as np

from replaystore.agent import Agent, AgentConfig, EnvSpec, store_schema
from replaystore.store import ReplayStore

CARTPOLE = EnvSpec((4,), 2, 0)
HYBRID = EnvSpec((4,), 2, 1)


def tiny_config(**kw) -> AgentConfig:
    base = dict(total_steps=600, learning_starts=200, batch_size=16, hidden=(16,), target_update_every=20,
                commit_every=64, telemetry_block=10, samples_every=10, grad_norm_every=10,
                log_batch_every=5, log_buffer_every=10, checkpoint_every=0)
    base.update(kw)
    return AgentConfig(**base)


def make_agent(tmp_path, spec=CARTPOLE, name="run.h5", **kw) -> Agent:
    cfg = tiny_config(**kw)
    store = ReplayStore.create(tmp_path / name, store_schema(spec), actors=cfg.actors, commit_every=cfg.commit_every)
    return Agent(cfg, store, spec)


def fill(agent: Agent, n: int, seed: int = 0, expert_every: int = 4, episode_len: int = 25) -> None:
    """``n`` synthetic transitions: every ``expert_every``-th decided by the expert, episodes of ``episode_len``."""
    rng = np.random.default_rng(seed)
    cdim = agent.spec.continuous_dim
    for i in range(n):
        who = agent.config.expert_actor if i % expert_every == 0 else agent.config.dqn_actor
        agent.step(rng.normal(size=4).astype("f4"), int(rng.integers(2)), rng.uniform(-1, 1, cdim).astype("f4"),
                   float(rng.normal()), rng.normal(size=4).astype("f4"), (i + 1) % episode_len == 0, actor=who)

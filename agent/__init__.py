"""The hybrid DQN that writes and learns from a replaystore store, every frame tagged by its actor.

A run in three lines (what ``replaystore train`` and ``replaystore demo`` call)::

    from replaystore.agent import AgentConfig, train
    summary = train(AgentConfig(env_id="CartPole-v1", total_steps=25_000, expert_ratio=0.26), "runs/demo.h5",
                    eval_episodes=10)
    summary["eval_greedy_mean"], summary["expert_fraction"]

Or by hand, with a store open for appending::

    agent = Agent(config, store, env_spec(env))
    agent.step(state, discrete_action, continuous_action, reward, next_state, done, actor="expert")
    metrics = agent.train_step()        # TrainMetrics: per-actor counts, |TD|, reward, Q
    metrics.batch_frac_dqn, metrics.td_err_mean_expert

Modules: ``_config`` (AgentConfig), ``_network`` (HybridDQN), ``_envs`` (HybridCartPole-v1),
``_policy`` (expert, epsilon-greedy, who decides), ``_nstep`` (n-step targets from stored rows),
``_learner`` (double DQN + AWR, per-actor gradient norms), ``_metrics`` (TrainMetrics),
``_trainlog`` (telemetry tables, [BATCH]/[BUFFER] lines), ``_checkpoint``, ``_agent``, ``_loop``,
``_evaluate``, ``_distributed`` (N acting workers writing the shards of a run, one learner:
``train_distributed``). Loggers: ``"replaystore.agent"``.

Needs the ``[agent]`` extra (torch, gymnasium). ``AgentConfig`` and ``errors`` import without it
(the command line shows ``replaystore train --help`` from the config's defaults); every other name
loads on first use, and without the extra says so in one line (``MissingExtraError``, an
``ImportError``) instead of a ``No module named 'torch'`` from deep inside.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import errors
from ._config import AgentConfig

if TYPE_CHECKING:  # what a type checker sees of the names loaded on first use
    from ._agent import Agent
    from ._checkpoint import load_network, save_checkpoint
    from ._distributed import train_distributed, worker_status
    from ._envs import HYBRID_CARTPOLE_ID, EnvSpec, HybridCartPole, env_spec, make_env, register_envs
    from ._evaluate import evaluate_expert, evaluate_greedy, evaluate_random
    from ._loop import run_metadata, store_schema, train
    from ._metrics import TrainMetrics, per_actor_stats
    from ._network import HybridDQN
    from ._nstep import nstep_targets
    from ._policy import ActorMixer, CartPoleExpert, epsilon_at

# public name -> the private module that defines it
_LAZY = {
    "Agent": "_agent", "load_network": "_checkpoint", "save_checkpoint": "_checkpoint",
    "train_distributed": "_distributed", "worker_status": "_distributed",
    "HYBRID_CARTPOLE_ID": "_envs", "EnvSpec": "_envs", "HybridCartPole": "_envs", "env_spec": "_envs",
    "make_env": "_envs", "register_envs": "_envs",
    "evaluate_expert": "_evaluate", "evaluate_greedy": "_evaluate", "evaluate_random": "_evaluate",
    "run_metadata": "_loop", "store_schema": "_loop", "train": "_loop",
    "TrainMetrics": "_metrics", "per_actor_stats": "_metrics", "HybridDQN": "_network",
    "nstep_targets": "_nstep", "ActorMixer": "_policy", "CartPoleExpert": "_policy", "epsilon_at": "_policy",
}

__all__ = ["ActorMixer", "Agent", "AgentConfig", "CartPoleExpert", "EnvSpec", "HYBRID_CARTPOLE_ID", "HybridCartPole",
           "HybridDQN", "TrainMetrics", "env_spec", "epsilon_at", "errors", "evaluate_expert", "evaluate_greedy",
           "evaluate_random", "load_network", "make_env", "nstep_targets", "per_actor_stats", "register_envs",
           "run_metadata", "save_checkpoint", "store_schema", "train",
           "train_distributed", "worker_status"]


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'replaystore.agent' has no attribute {name!r}") from None
    from replaystore.common.extras import require_extra

    require_extra("agent", f"replaystore.agent.{name}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

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
"""

from . import errors
from ._agent import Agent
from ._checkpoint import load_network, save_checkpoint
from ._config import AgentConfig
from ._distributed import train_distributed, worker_status
from ._envs import HYBRID_CARTPOLE_ID, EnvSpec, HybridCartPole, env_spec, make_env, register_envs
from ._evaluate import evaluate_expert, evaluate_greedy, evaluate_random
from ._loop import run_metadata, store_schema, train
from ._metrics import TrainMetrics, per_actor_stats
from ._network import HybridDQN
from ._nstep import nstep_targets
from ._policy import ActorMixer, CartPoleExpert, epsilon_at

__all__ = ["ActorMixer", "Agent", "AgentConfig", "CartPoleExpert", "EnvSpec", "HYBRID_CARTPOLE_ID", "HybridCartPole",
           "HybridDQN", "TrainMetrics", "env_spec", "epsilon_at", "errors", "evaluate_expert", "evaluate_greedy",
           "evaluate_random", "load_network", "make_env", "nstep_targets", "per_actor_stats", "register_envs",
           "run_metadata", "save_checkpoint", "store_schema", "train",
           "train_distributed", "worker_status"]

register_envs()  # so that gym.make("HybridCartPole-v1") works once agent is imported

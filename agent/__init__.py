"""The hybrid DQN that writes and learns from a replaystore store, every frame tagged by its actor.

Public names: ``AgentConfig``, ``Agent``, ``HybridDQN``, ``TrainMetrics``, ``train``,
``load_network``, ``save_checkpoint``, ``per_actor_stats``, ``CartPoleExpert``, ``HybridCartPole``,
``make_env``, ``env_spec``, ``evaluate_greedy``, ``evaluate_expert``, ``evaluate_random``, ``errors``.
"""

from . import errors
from ._agent import Agent
from ._checkpoint import load_network, save_checkpoint
from ._config import AgentConfig
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
           "run_metadata", "save_checkpoint", "store_schema", "train"]

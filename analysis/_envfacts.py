"""What the audit knows of an environment from its id alone: the episode time limit, the rewards it
pays, which next states are terminal, whether resets are random, and which scripted policy the
agent mixes in. Checks that need a fact the run's environment does not have are skipped, with
the reason, rather than guessed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ._anomalies import run_setting

# gymnasium's CartPole terminates past 12 degrees or 2.4 units. It decides on its float64 state and
# stores a float32 observation, so a state within SLACK (relative) of a bound is neither surely
# terminal nor surely not: the checks leave such rows alone.
THETA_LIMIT = 12 * 2 * np.pi / 360
X_LIMIT = 2.4
SLACK = 1e-5


def cartpole_terminal(next_state: np.ndarray) -> np.ndarray:
    """+1 where a CartPole next state is surely past the termination bounds (pole fallen or cart
    out), -1 where it is surely inside them, 0 within rounding of a bound."""
    s = np.asarray(next_state, np.float64).reshape(len(next_state), -1)
    margin = np.maximum(np.abs(s[:, 0]) / X_LIMIT, np.abs(s[:, 2]) / THETA_LIMIT) - 1.0
    return np.where(margin > SLACK, 1, np.where(margin < -SLACK, -1, 0)).astype(np.int8)


@dataclass(frozen=True)
class EnvFacts:
    """``reward``: the per-step reward the environment pays (its sign and typical size);
    ``policy``: the name of the scripted policy the agent can mix in for this environment."""

    env_id: str
    max_steps: int | None
    reward: float | None
    random_reset: bool
    state_dim: int | None
    terminal: Callable[[np.ndarray], np.ndarray] | None
    policy: str | None


KNOWN = {
    "CartPole-v1": EnvFacts("CartPole-v1", 500, 1.0, True, 4, cartpole_terminal, "CartPoleExpert"),
    "CartPole-v0": EnvFacts("CartPole-v0", 200, 1.0, True, 4, cartpole_terminal, "CartPoleExpert"),
    # reward 1 - 0.1 * (scale**2 - 1) per frame, scale in [0.5, 1.5]: between 0.875 and 1.075
    "HybridCartPole-v1": EnvFacts("HybridCartPole-v1", 500, 1.0, True, 4, cartpole_terminal, "CartPoleExpert"),
}


def env_facts(meta: dict) -> EnvFacts | None:
    """The facts of the run's ``env_id`` (metadata, top level or ``config``), or None when unknown.
    A ``max_episode_steps`` setting in the metadata overrides the environment's default limit."""
    facts = KNOWN.get(str(run_setting(meta, "env_id", "")))
    if facts is None:
        return None
    limit = run_setting(meta, "max_episode_steps")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        facts = EnvFacts(**{**facts.__dict__, "max_steps": limit})
    return facts

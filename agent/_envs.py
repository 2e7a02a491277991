"""Environments: CartPole and a hybrid-action CartPole, and what the agent needs to know of them.

``HybridCartPole-v1`` has the action space ``Tuple(Discrete(2), Box(-1, 1, (1,)))``: the discrete
action picks the push direction and the continuous action scales the push force by ``1 + 0.5 c``
(0.5x to 1.5x of CartPole's 10 N). ``c = 0`` reproduces CartPole-v1, so an agent that ignores the
continuous head still balances; an effort term (the reward is ``1 - effort_cost * (scale**2 - 1)``
per frame, so 1 at ``c = 0``) gives the continuous action something to learn: push no harder than
the pole needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .errors import EnvironmentSpecError

HYBRID_CARTPOLE_ID = "HybridCartPole-v1"


class HybridCartPole(gym.Wrapper):
    """CartPole whose push force is scaled by a continuous action in [-1, 1]."""

    def __init__(self, env: gym.Env | None = None, effort_cost: float = 0.1, max_episode_steps: int = 500):
        if env is None:
            env = gym.make("CartPole-v1", max_episode_steps=max_episode_steps)
        super().__init__(env)
        if not hasattr(env.unwrapped, "force_mag"):
            raise EnvironmentSpecError(
                f"HybridCartPole wraps a CartPole environment (with a force_mag attribute); got {env.unwrapped!r}"
            )
        self._base_force = float(env.unwrapped.force_mag)
        self.effort_cost = float(effort_cost)
        self.action_space = spaces.Tuple((spaces.Discrete(2), spaces.Box(-1.0, 1.0, (1,), np.float32)))

    def step(self, action):
        try:
            discrete, continuous = action
        except (TypeError, ValueError):
            raise TypeError(
                f"HybridCartPole.step: action {action!r} is not a (discrete, continuous) pair; "
                "expected e.g. (1, np.array([0.0], 'f4'))"
            ) from None
        c = float(np.clip(np.asarray(continuous, np.float32).reshape(-1)[0], -1.0, 1.0))
        scale = 1.0 + 0.5 * c
        self.env.unwrapped.force_mag = self._base_force * scale
        obs, reward, terminated, truncated, info = self.env.step(int(discrete))
        return obs, float(reward) - self.effort_cost * (scale ** 2 - 1.0), terminated, truncated, info


def _make_hybrid(**kw) -> HybridCartPole:
    return HybridCartPole(**kw)


def register_envs() -> None:
    """Register ``HybridCartPole-v1`` with gymnasium (idempotent)."""
    if HYBRID_CARTPOLE_ID not in gym.registry:
        gym.register(HYBRID_CARTPOLE_ID, entry_point=_make_hybrid)


@dataclass(frozen=True)
class EnvSpec:
    """What the network and the store need to know of an environment's spaces.

    ``state_dtype``: the dtype states are stored in (``env_spec`` keeps an integer observation
    dtype, such as uint8 images, and stores float observations as float32).
    """

    state_shape: tuple[int, ...]
    n_discrete: int
    continuous_dim: int
    state_dtype: str = "float32"


def make_env(env_id: str) -> gym.Env:
    """``gym.make(env_id)`` with ``HybridCartPole-v1`` registered."""
    register_envs()
    try:
        return gym.make(env_id)
    except gym.error.Error as e:
        raise EnvironmentSpecError(
            f"env_id={env_id!r} could not be made ({e}); try 'CartPole-v1' or {HYBRID_CARTPOLE_ID!r}"
        ) from e


def env_spec(env: gym.Env) -> EnvSpec:
    """Read the spaces: a Box observation and a Discrete or Tuple(Discrete, Box) action space."""
    obs = env.observation_space
    if not isinstance(obs, spaces.Box):
        raise EnvironmentSpecError(f"observation space {obs} is not a Box; the hybrid DQN needs vector states")
    dtype = state_dtype(obs.dtype)
    act = env.action_space
    if isinstance(act, spaces.Discrete):
        return EnvSpec(tuple(obs.shape), int(act.n), 0, dtype)
    if (isinstance(act, spaces.Tuple) and len(act.spaces) == 2 and isinstance(act.spaces[0], spaces.Discrete)
            and isinstance(act.spaces[1], spaces.Box) and len(act.spaces[1].shape) == 1):
        box = act.spaces[1]
        if not (np.all(box.low == -1.0) and np.all(box.high == 1.0)):
            raise EnvironmentSpecError(f"continuous action space {box} must be bounded in [-1, 1] (tanh head)")
        return EnvSpec(tuple(obs.shape), int(act.spaces[0].n), int(box.shape[0]), dtype)
    raise EnvironmentSpecError(
        f"action space {act} is not supported; expected Discrete(n) or Tuple(Discrete(n), Box(-1, 1, (d,)))"
    )


def state_dtype(obs_dtype) -> str:
    """The stored dtype of observations of ``obs_dtype``: integers as they are (uint8 images stay 1 byte
    a pixel; the network scales uint8 by 1/255), floats and anything else as float32 (as before)."""
    dt = np.dtype(obs_dtype)
    return dt.name if dt.kind in "iu" else "float32"


def frame_stack_depth(env: gym.Env) -> int | None:
    """The depth of the stacks ``env`` observes when they are gymnasium ``FrameStackObservation`` stacks
    on the first axis, reaching the agent unchanged; else None.

    Wrappers between the stacker and the agent may only pass observations through (time limits,
    checkers): the outer observation space must be the stacker's own.
    """
    from gymnasium.wrappers import FrameStackObservation

    e = env
    while isinstance(e, gym.Wrapper):
        if isinstance(e, FrameStackObservation):
            depth = int(e.stack_size)
            inner, outer = e.observation_space, env.observation_space
            if (isinstance(outer, spaces.Box) and outer.shape == inner.shape and outer.dtype == inner.dtype
                    and len(outer.shape) >= 2 and outer.shape[0] == depth):
                return depth
            return None
        e = e.env
    return None


def env_action(spec: EnvSpec, discrete: int, continuous: np.ndarray):
    """The action to pass to ``env.step`` for a (discrete, continuous) decision."""
    return int(discrete) if spec.continuous_dim == 0 else (int(discrete), continuous)

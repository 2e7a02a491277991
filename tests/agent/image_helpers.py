"""A tiny image environment for the agent tests: catch a falling dot in 12x12 grey frames.

``DotCatch``: a dot falls one row a step (drifting sideways, bouncing off the walls); a paddle
three pixels wide on the bottom row moves left, stays or moves right (``Discrete(3)``). Catching
the dot gives +1 and drops a new one; missing it gives -1 and ends the episode. Frames are uint8
(dot 255, paddle 128), the layout of a grey Atari screen, small enough to train in seconds.

Registered ids (importing this module registers them, so ``"image_helpers:DotCatch-v0"`` works
from ``gym.make`` in any process that has ``tests/agent`` on its path):

- ``DotCatch-v0``: 4 frames stacked on the first axis by gymnasium's ``FrameStackObservation``
  (observations ``(4, 12, 12)`` uint8), episodes cut at 40 steps by a time limit, so a run holds
  terminated and truncated episodes.
- ``DotCatchFrame-v0``: the same game, one frame per observation (no stack).

``CatchExpert(spec)``: moves the paddle under the dot of the newest frame; the expert of a run is
named in ``AgentConfig.expert`` as ``"image_helpers:CatchExpert"``.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import FrameStackObservation

SIZE = 12
DOT, PADDLE = 255, 128
STACKED_ID = "DotCatch-v0"
FRAME_ID = "DotCatchFrame-v0"


class DotCatch(gym.Env):
    """Catch a falling dot with a paddle; one 12x12 uint8 frame per observation."""

    metadata = {"render_modes": []}

    def __init__(self):
        self.observation_space = spaces.Box(0, 255, (SIZE, SIZE), np.uint8)
        self.action_space = spaces.Discrete(3)
        self.paddle = self.dot_r = self.dot_c = self.drift = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.paddle = int(self.np_random.integers(1, SIZE - 1))
        self._drop()
        return self._frame(), {}

    def _drop(self) -> None:
        self.dot_r = 0
        self.dot_c = int(self.np_random.integers(0, SIZE))
        self.drift = int(self.np_random.integers(-1, 2))

    def step(self, action):
        self.paddle = int(np.clip(self.paddle + int(action) - 1, 1, SIZE - 2))
        self.dot_r += 1
        c = self.dot_c + self.drift
        if not 0 <= c < SIZE:  # bounce off the wall
            self.drift = -self.drift
            c = self.dot_c + self.drift
        self.dot_c = c
        reward, terminated = 0.0, False
        if self.dot_r == SIZE - 1:
            if abs(self.dot_c - self.paddle) <= 1:
                reward = 1.0
                self._drop()
            else:
                reward, terminated = -1.0, True
        return self._frame(), reward, terminated, False, {}

    def _frame(self) -> np.ndarray:
        f = np.zeros((SIZE, SIZE), np.uint8)
        f[SIZE - 1, self.paddle - 1:self.paddle + 2] = PADDLE
        f[self.dot_r, self.dot_c] = DOT
        return f


def _stacked() -> gym.Env:
    return FrameStackObservation(DotCatch(), 4)


def register() -> None:
    """Register both ids with gymnasium (idempotent)."""
    if STACKED_ID not in gym.registry:
        gym.register(STACKED_ID, entry_point=_stacked, max_episode_steps=40)
    if FRAME_ID not in gym.registry:
        gym.register(FRAME_ID, entry_point=DotCatch, max_episode_steps=40)


register()


class CatchExpert:
    """Moves the paddle towards the dot of the newest frame (the last of a stack)."""

    def __init__(self, spec):
        if spec.n_discrete != 3:
            raise ValueError(f"CatchExpert plays DotCatch (3 actions); got {spec.n_discrete}")
        self.continuous_dim = spec.continuous_dim

    def __call__(self, state) -> tuple[int, np.ndarray]:
        frame = np.asarray(state).reshape(-1, SIZE, SIZE)[-1]
        dot = np.argwhere(frame[:SIZE - 1] == DOT)
        paddle = np.flatnonzero(frame[SIZE - 1] == PADDLE)
        target = int(dot[0, 1]) if len(dot) else SIZE // 2
        centre = int(paddle.mean()) if len(paddle) else SIZE // 2
        return int(np.sign(target - centre)) + 1, np.zeros(self.continuous_dim, np.float32)

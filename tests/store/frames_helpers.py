"""Atari-like image rollouts for the frames-once tests: 84x84-style grey frames stacked ``depth`` deep."""

from __future__ import annotations

import numpy as np


def frame(rng: np.random.Generator, t: int, size: int, channels: int = 0) -> np.ndarray:
    """A grey frame: a dark field with a bright block that moves with ``t`` and a little noise
    (``channels`` > 0: an RGB-like frame, (size, size, channels), each channel its own block colour)."""
    f = rng.integers(0, 8, (size, size, *((channels,) if channels else ())), dtype=np.uint8)
    y, x = (3 * t) % (size - 6), (5 * t) % (size - 6)
    f[y:y + 6, x:x + 6] = 200 + (t % 50) if not channels else 150 + (t % 50) + 10 * np.arange(channels, dtype=np.uint8)
    return f


def rollout(seed: int, steps: int, envs: int = 1, depth: int = 4, size: int = 84, axis: int = -1,
            padding: str = "reset", max_len: int = 40, channels: int = 0) -> dict[str, np.ndarray]:
    """``steps`` rows per env, the envs' rows interleaved, as gymnasium's FrameStackObservation gives them.

    Episodes end by termination (``done``) or by truncation at ``max_len`` steps (the next row
    starts a new episode either way). ``padding``: ``"reset"`` repeats the first frame,
    ``"zero"`` pads with zero frames (gymnasium's two options). ``channels`` > 0: frames of that
    many channels concatenated along ``axis``, as Stable-Baselines3's ``VecFrameStack`` gives them
    (``(size, size, depth * channels)`` for axis -1).
    """
    join = (lambda fs: np.concatenate(fs, axis=axis)) if channels else (lambda fs: np.stack(fs, axis=axis))
    rng = np.random.default_rng(seed)
    stacks = [None] * envs
    t = [0] * envs
    length = [0] * envs
    rows = {"state": [], "next_state": [], "done": [], "reward": [], "discrete_action": []}
    for _ in range(steps):
        for e in range(envs):
            if stacks[e] is None:  # reset
                f0 = frame(rng, t[e], size, channels)
                pad = f0 if padding == "reset" else np.zeros_like(f0)
                stacks[e] = [pad] * (depth - 1) + [f0]
                length[e] = 0
            t[e] += 1
            length[e] += 1
            nxt = stacks[e][1:] + [frame(rng, t[e] + 1000 * e, size, channels)]
            terminated = rng.random() < 0.03
            truncated = length[e] >= max_len
            rows["state"].append(join(stacks[e]))
            rows["next_state"].append(join(nxt))
            rows["done"].append(terminated or truncated)
            rows["reward"].append(np.float32(rng.normal()))
            rows["discrete_action"].append(int(rng.integers(0, 6)))
            stacks[e] = None if (terminated or truncated) else nxt
    n = len(rows["done"])
    return {"state": np.stack(rows["state"]), "next_state": np.stack(rows["next_state"]),
            "done": np.array(rows["done"]), "reward": np.array(rows["reward"], np.float32),
            "discrete_action": np.array(rows["discrete_action"], np.int32),
            "continuous_action": np.zeros((n, 0), np.float32),
            "actor": np.where(np.arange(n) % 5 == 0, "expert", "dqn"), "time": np.arange(n, dtype=np.float64)}

"""Shared helpers of the analysis tests (a uniquely named module: tests/*/ have no __init__.py)."""

from __future__ import annotations

import os

import numpy as np

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
RECORDED = ("healthy", "incident", "corrupt", "negated")
TINY = dict(rows=1200, window=512, train_steps=80, batch_size=32, samples_every=2)


def recorded(name: str) -> str:
    return os.path.join(DATA, f"{name}.h5")


def golden(name: str) -> str:
    return os.path.join(DATA, f"{name}.report.json")


def rows_block(n: int, actor, seed: int = 0) -> dict:
    """``n`` valid transition rows of Schema.transition((4,), continuous_dim=1), all by ``actor``."""
    rng = np.random.default_rng(seed)
    state = rng.normal(size=(n + 1, 4)).astype("f4")
    done = (np.arange(n) % 10) == 9
    # next_state[t] is state[t + 1] inside episodes (the chain the audit follows holds); an
    # episode's last row has a terminal observation of its own, not the next reset state
    next_state = state[1:].copy()
    next_state[done] += 1.0
    return {"actor": np.array([actor] * n), "state": state[:-1], "next_state": next_state,
            "discrete_action": rng.integers(0, 3, n).astype("i4"),
            "continuous_action": np.zeros((n, 1), "f4"), "reward": rng.normal(size=n).astype("f4"),
            "done": done}

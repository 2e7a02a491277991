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


# ------------------------------------------------------------------ planted defects (CartPole runs)
# Healthy controls: several seeds, lengths and declared expert ratios (0.0 is an ablation).
CONTROLS = {"seed1_1500_r026": dict(seed=1, rows=1500, expert_ratio=0.26),
            "seed2_4000_r05": dict(seed=2, rows=4000, expert_ratio=0.5),
            "seed3_2500_r0": dict(seed=3, rows=2500, expert_ratio=0.0),
            "seed4_3000_r01": dict(seed=4, rows=3000, expert_ratio=0.1),
            "seed5_2000_r09": dict(seed=5, rows=2000, expert_ratio=0.9)}
BASE = dict(rows=3000, seed=7, expert_ratio=0.3)
# name -> (run settings, plant function name or None, its keyword arguments)
DEFECTS = {
    "negated_rewards": (BASE, "plant_negated_rewards", {"actor": "expert"}),
    "scaled_rewards": (BASE, "plant_scaled_rewards", {"actor": "dqn", "start": 1500}),
    "next_state_copy": (BASE, "plant_next_state_copy", {"actor": "expert"}),
    "broken_chain": (BASE, "plant_broken_chain", {"actor": "dqn", "start": 1000}),
    "duplicate_block": (BASE, "plant_duplicate_block", {"first_episode": 5, "episodes": 3}),
    "done_never_set": (BASE, "plant_done_never_set", {}),
    "done_always": (BASE, "plant_done_always", {"actor": "expert", "start": 1500}),
    "terminated_dropped": (BASE, "plant_terminated_dropped", {"actor": "dqn"}),
    "reset_as_next_state": (BASE, "plant_reset_as_next_state", {}),
    "reused_episode_ids": (BASE, "plant_reused_episode_ids", {"start": None}),
    "step_stuck": (BASE, "plant_step_stuck", {"start": 2000}),
    "truncated_at_terminal": (BASE, "plant_truncated_at_terminal", {"start": 1000}),
    "action_collapse": ({**BASE, "collapse_after": 1800}, None, {}),
    "swapped_tags": (dict(rows=3000, seed=8, expert_ratio=0.5), "plant_swapped_tags", {"start": 1500}),
    "shuffled_tags": (BASE, "plant_shuffled_tags", {}),
    "scaled_states": (BASE, "plant_scaled_states", {"actor": "expert"}),
}

"""Fixtures for the analysis tests: small stores made here (recorded ones are in tests/data)."""

from __future__ import annotations

import pytest
from analysis_helpers import TINY

from replaystore.analysis._synthetic import RunSpec, write_run
from replaystore.store import ReplayStore, Schema


@pytest.fixture
def make_run(tmp_path):
    """``make_run(**RunSpec fields) -> path`` of a fresh synthetic store (tiny by default)."""
    counter = iter(range(1000))

    def make(**kw):
        path = tmp_path / f"run{next(counter)}.h5"
        write_run(path, RunSpec(**{**TINY, **kw}))
        return str(path)

    return make


@pytest.fixture
def empty_store(tmp_path):
    """A closed store with no rows (metadata declares an expert ratio)."""
    path = tmp_path / "empty.h5"
    ReplayStore.create(path, Schema.transition((4,), continuous_dim=1), actors=("expert", "dqn"), window=64,
                       metadata={"expert_ratio": 0.26}).close()
    return str(path)


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


@pytest.fixture(scope="session")
def cartpole_audits(tmp_path_factory):
    """``{name: (report, planted rows or None, columns)}`` for every control and defect, audited once."""
    import numpy as np

    from replaystore.analysis import _cartpole as cp
    from replaystore.analysis import audit

    root = tmp_path_factory.mktemp("cartpole")
    out = {}
    for name, (settings, plant, kw) in {**{k: (v, None, {}) for k, v in CONTROLS.items()}, **DEFECTS}.items():
        run = cp.CartPoleRun(**settings)
        cols = cp.simulate(run)
        planted = None
        if plant:
            kw = dict(kw)
            if "start" in kw and kw["start"] is None:  # an episode start past the middle of the run
                kw["start"] = int(np.flatnonzero(cols["step"] == 0)[np.searchsorted(
                    np.flatnonzero(cols["step"] == 0), len(cols["step"]) // 2)])
            planted = getattr(cp, plant)(cols, **kw)
        elif run.collapse_after is not None:
            planted = np.flatnonzero(cols["actor"][run.collapse_after:] == 1) + run.collapse_after
        path = root / f"{name}.h5"
        cp.write(path, cols, cp.metadata(run))
        out[name] = (audit(path), planted, cols)
    return out


@pytest.fixture
def cartpole(tmp_path):
    """``cartpole(change=None, meta=None, **CartPoleRun fields) -> (report, columns)``: a simulated
    CartPole run, changed in place by ``change(cols)`` before it is written, then audited."""
    from replaystore.analysis import _cartpole as cp
    from replaystore.analysis import audit

    counter = iter(range(1000))

    def make(change=None, meta=None, **kw):
        run = cp.CartPoleRun(**{"rows": 1000, "seed": 1, "expert_ratio": 0.3, **kw})
        cols = cp.simulate(run)
        if change is not None:
            change(cols)
        path = tmp_path / f"cp{next(counter)}.h5"
        cp.write(path, cols, {**cp.metadata(run), **(meta or {})})
        return audit(path), cols

    return make

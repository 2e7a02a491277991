"""Fixtures for the analysis tests: small stores made here (recorded ones are in tests/data)."""

from __future__ import annotations

import pytest
from analysis_helpers import CONTROLS, DEFECTS, TINY

from replaystore.analysis._synthetic import RunSpec, write_run
from replaystore.store import ReplayStore, Schema


@pytest.fixture
def dask_scratch(tmp_path):
    """Dask's scratch space (its workers' local directories) inside this test's temporary folder,
    not the system temp folder that other runs and users share."""
    import dask

    scratch = tmp_path / "dask-tmp"
    with dask.config.set({"temporary-directory": str(scratch)}):
        yield scratch


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


# ------------------------------------------------------------------ real gymnasium runs (other environments)
from gym_helpers import gym_audits, gym_runs  # noqa: E402, F401 - session fixtures, shared by the test modules

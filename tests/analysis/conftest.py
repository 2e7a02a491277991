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

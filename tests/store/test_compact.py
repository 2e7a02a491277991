"""`replaystore compact`: old full segments rewritten with gzip/lzf, read back identically."""

from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from replaystore.store import ReplayStore, Sampler, errors
from replaystore.store._compact import compact
from replaystore.store._verify import verify

import writer_proc
from store_helpers import append_writer_rows, check_writer_rows, closed_store


@pytest.fixture
def old_store(store_path):
    """6,000 writer rows, window 1,000, 1,024-row segments: segments 0-3 lie wholly before the window."""
    return closed_store(store_path, 6000)


def _allocated(path) -> int:
    return sum(os.stat(os.path.join(f"{path}.d", n)).st_blocks * 512 for n in os.listdir(f"{path}.d"))


@pytest.mark.parametrize("filter", ["gzip", "lzf"])
def test_compact_keeps_every_row_and_shrinks_the_old_segments(old_store, filter):
    """Compacting rewrites segments 0-3 compressed, deletes the raw ones, and every read, gather,
    verify, composition and stock-h5py read gives what it gave before; appending goes on."""
    with ReplayStore.open(old_store) as r:
        before = r.read()
        comp = r.actor_composition(window=False)
    size = _allocated(old_store)
    out = subprocess.run([sys.executable, "-m", "replaystore", "compact", str(old_store), "--filter", filter],
                         capture_output=True, text=True)
    assert 0 == out.returncode, out.stderr
    assert "compacted 4 segment(s)" in out.stdout
    names = sorted(os.listdir(f"{old_store}.d"))
    assert [f"transitions-{k:06d}.z.h5" for k in range(4)] == [n for n in names if n.endswith(".z.h5")]
    assert not any(f"transitions-{k:06d}.h5" in names for k in range(4))
    assert _allocated(old_store) < size
    with ReplayStore.open(old_store) as r:
        after = r.read()
        assert all(before[c].tobytes() == after[c].tobytes() for c in before)
        rows = np.array([0, 1023, 1024, 4095, 4096, 5999, 17])
        np.testing.assert_array_equal(rows, r.gather(rows, ["row_id"])["row_id"])
        assert comp == r.actor_composition(window=False)
        assert [] == verify(r)
        with Sampler(r, 64, seed=0, as_torch=False) as sm:
            assert (sm.sample()["row"] >= 5000).all()
    with h5py.File(old_store, "r") as f:
        np.testing.assert_array_equal(before["row_id"], f["transitions/row_id"][:])
        assert f["transitions/state"].is_virtual
    with ReplayStore.open(old_store, "a") as s:
        append_writer_rows(s, 6000, 6100)
    with ReplayStore.open(old_store) as r:
        check_writer_rows(r, 0, 6100)
    assert [] == compact(old_store)  # nothing new before the window: nothing to do


def test_compact_refuses_a_live_writer(old_store):
    """compact takes the writer lock: with a writer open it is a StoreLockedError, nothing changed."""
    with ReplayStore.open(old_store, "a"):
        with pytest.raises(errors.StoreLockedError, match="one writer at a time"):
            compact(old_store)
    assert not [n for n in os.listdir(f"{old_store}.d") if n.endswith(".z.h5")]


def test_compact_then_retention_deletes_compacted_segments(store_path):
    """Retention deletes compacted segments like raw ones."""
    with ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1024,
                            chunk_bytes=4096, segment_rows=1024, retain=4096) as s:
        append_writer_rows(s, 0, 4096)
    assert [0, 1, 2] == compact(store_path)
    with ReplayStore.open(store_path, "a") as s:
        append_writer_rows(s, 4096, 8192)
    names = os.listdir(f"{store_path}.d")
    assert not [n for n in names if any(n.startswith(f"transitions-{k:06d}.") for k in range(4))], names
    with ReplayStore.open(store_path) as r:
        check_writer_rows(r, r._record.tables["transitions"].first_row, 8192)

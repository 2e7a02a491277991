"""`replaystore compact`: old full segments rewritten with gzip/lzf, read back identically."""

from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from replaystore.store import ReplayStore, Sampler, errors
from replaystore.store.tools._compact import compact
from replaystore.store.tools._verify import verify

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


COMPACT_ON_A_FULL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from replaystore.store import errors
from replaystore.store.tools._compact import compact
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, hard))  # above the record, below a compacted segment
for _ in range(2):
    try:
        compact(sys.argv[1])
    except errors.StoreWriteError as e:
        print("refused", e.errno)
"""


def test_compact_on_a_full_disk_is_an_errno_not_a_crash(store_path):
    """Compacting incompressible segments with the file size limit below a compacted segment
    raises StoreWriteError with errno 27, twice, in a child that exits normally (h5py writing the
    file itself crashed it with SIGSEGV); once the limit is gone, compact goes through and every
    row reads back."""
    rng = np.random.default_rng(0)
    n = 6000
    cols = {"actor": np.zeros(n, np.uint8), "state": rng.random((n, 64), dtype=np.float32),
            "next_state": rng.random((n, 64), dtype=np.float32), "discrete_action": np.zeros(n, "i4"),
            "continuous_action": np.zeros((n, 0), "f4"), "reward": np.zeros(n, "f4"), "done": np.zeros(n, bool)}
    from replaystore.store import Schema

    with ReplayStore.create(store_path, Schema.transition((64,)), actors=("a", "b"), window=1000, chunk_bytes=4096,
                            segment_rows=1024) as s:
        s.extend(cols)
    out = subprocess.run([sys.executable, "-c", COMPACT_ON_A_FULL_DISK, str(store_path)], capture_output=True,
                         text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert (0, "refused 27\nrefused 27") == (out.returncode, out.stdout.strip()), out.stderr[-2000:]
    assert [0, 1, 2, 3] == compact(store_path)
    with ReplayStore.open(store_path) as r:
        got = r.read(["state", "next_state"])
    assert np.array_equal(cols["state"], got["state"]) and np.array_equal(cols["next_state"], got["next_state"])

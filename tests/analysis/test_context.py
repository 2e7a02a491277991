"""The audit's shared context: the row pass keeps no per-row copy of the states, the checks that learn
from states gather the rows they sample, and the audit's memory grows with the store by less than
the store's own bytes."""

from __future__ import annotations

import tracemalloc

import numpy as np

from replaystore.analysis import _context, audit
from replaystore.analysis._context import HEAD, Context, row_pass
from replaystore.analysis._synthetic import RunSpec, write_run
from replaystore.store import ReplayStore

STATE = (16,)  # wide enough that a per-row copy of HEAD elements would show (32 of the row's 163 bytes)


def _data_bytes(path) -> int:
    with ReplayStore.open(path) as s:
        return len(s) * sum(c.dtype.itemsize * int(np.prod(c.shape, dtype=np.int64)) for c in s.schema)


def _audit_peak(path) -> int:
    """Peak bytes Python and numpy allocate while auditing ``path``, above what was held before."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        audit(path)
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        if started:
            tracemalloc.stop()


def test_audit_memory_grows_slower_than_the_data(tmp_path, monkeypatch):
    """Quadrupling the rows adds less memory to the audit's peak than half the bytes the rows add
    (the state columns, 128 of each row's 163 bytes, are read block by block and never held; what
    grows is the scalar columns, an 8-byte hash and a few flags per row). Before the row pass stopped
    keeping the first state elements of every row, the growth was 0.75 times the data's. Blocks of
    256 KiB per column (4096 rows here) and chunks of 4096 rows, so that both stores span many of
    them, as large stores do."""
    monkeypatch.setattr(_context, "BLOCK_BYTES", 256 << 10)
    monkeypatch.setattr(_context, "CHUNK_ROWS", 4096)
    small, big = tmp_path / "n.h5", tmp_path / "4n.h5"
    for path, rows in ((small, 20_000), (big, 80_000)):
        write_run(path, RunSpec(rows=rows, window=rows, state_shape=STATE, telemetry=False, seed=0,
                                commit_every=1 << 16))
    _audit_peak(small)  # warm: the first audit imports scipy, sklearn's pieces and fills caches
    grew = _audit_peak(big) - _audit_peak(small)
    added = _data_bytes(big) - _data_bytes(small)
    print(f"the audit's peak grew by {grew / added:.2f}x the added rows' bytes")
    assert grew < 0.5 * added, f"the audit's peak grew by {grew / added:.2f}x the added rows' bytes"


def test_heads_and_head_blocks_match_the_stored_states(make_run):
    """``Context.heads`` (gathered rows, any order) and ``Context.head_blocks`` (every row, in
    blocks) give the first HEAD elements of the stored states, as the row pass once kept them."""
    path = make_run(rows=3000, state_shape=(12,))
    with ReplayStore.open(path) as s:
        cols = s.read(["actor", "episode", "done", "reward"])
        ctx = Context(s, s.actors.names, dict(s.metadata), {}, cols, None)
        every = s.read(["state", "next_state"])
        rows = np.array([2999, 0, 17, 17, 1500])
        h, nh = ctx.heads(rows)
        assert h.dtype == np.float32 and h.shape == (5, HEAD)
        np.testing.assert_array_equal(h, every["state"][rows, :HEAD])
        np.testing.assert_array_equal(nh, every["next_state"][rows, :HEAD])
        parts = [(lo, hi, x) for lo, hi, x in ctx.head_blocks("next_state")]
        assert parts[0][0] == 0 and parts[-1][1] == 3000
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
        np.testing.assert_array_equal(np.concatenate([x for _, _, x in parts]), every["next_state"][:, :HEAD])


def test_row_pass_keeps_no_states(make_run):
    """The row pass's per-row arrays are the flags and the hash only: 10 bytes a row."""
    path = make_run(rows=3000, state_shape=(12,))
    with ReplayStore.open(path) as s:
        cols = s.read(["actor", "episode", "done", "reward"])
        rp = row_pass(Context(s, s.actors.names, dict(s.metadata), {}, cols, None))
        per_row = [v for v in vars(rp).values() if isinstance(v, np.ndarray) and v.shape[0] >= 2999]
        assert sum(v.nbytes for v in per_row) <= 10 * 3000
        assert not hasattr(rp, "head") and not hasattr(rp, "next_head")

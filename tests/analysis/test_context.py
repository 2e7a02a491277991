"""The audit's shared context: the row pass keeps no per-row copy of the states, the checks that learn
from states gather the rows they sample, and the audit's memory grows with the store by less than
the store's own bytes."""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest
from analysis_helpers import DEFECTS

from replaystore.analysis import _context, _credit, _report, _stats, audit
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


def _findings(report) -> list:
    return [(a["code"], a["severity"], a.get("actor"), a.get("rows")) for a in
            (x if isinstance(x, dict) else x.to_dict() for x in report.anomalies)]


def test_blocks_and_chunks_do_not_change_the_findings(tmp_path, monkeypatch):
    """CartPole runs with a planted bug each (a block appended twice, dropped terminal dones, tags
    swapped in a stretch) give the same anomalies, actors and rows when the row pass's blocks, the
    chunks and the gathers are cut far smaller than the store: the blocked and chunked paths (the
    duplicate search by parts, the terminal rule and the built-in expert read block by block, the
    per-segment counts) see every row exactly once."""
    from replaystore.analysis import _cartpole as cp

    reports = {}
    for code, name in (("DUPLICATE_BLOCK", "duplicate_block"), ("DONE_MISSING", "terminated_dropped"),
                       ("TAG_POLICY", "swapped_tags")):
        settings, plant, kw = DEFECTS[name]  # as the planted suite makes them
        run = cp.CartPoleRun(**settings)
        cols = cp.simulate(run)
        getattr(cp, plant)(cols, **kw)
        path = tmp_path / f"{plant}.h5"
        cp.write(path, cols, cp.metadata(run))
        reports[code] = (path, _findings(audit(path)))
        assert code in {f[0] for f in reports[code][1]}, reports[code][1]
    monkeypatch.setattr(_context, "BLOCK_ROWS", 256)
    monkeypatch.setattr(_context, "GATHER_ROWS", 37)
    for module in (_context, _credit, _report, _stats):
        monkeypatch.setattr(module, "CHUNK_ROWS", 300)
    for code, (path, whole) in reports.items():
        assert _findings(audit(path)) == whole, code


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="the parts of RSS are read from Linux's /proc")
def test_release_pages_drops_the_mapped_pages(tmp_path):
    """After a read, the store's mapped pages count in this process's RSS; ``release_pages`` drops
    them (the numbers read stay right, and reading again maps them again)."""

    def rss_file_kib() -> int:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("RssFile"))

    path = tmp_path / "wide.h5"
    write_run(path, RunSpec(rows=40_000, window=40_000, state_shape=(128,), telemetry=False, seed=0))
    with ReplayStore.open(path) as s:
        before = rss_file_kib()
        first = s.read(["state"])["state"]  # 20 MiB of mapped pages touched
        touched = rss_file_kib()
        _context.release_pages(s)
        released = rss_file_kib()
        again = s.read(["state"])["state"]
    assert touched - before > 10 * 1024, (before, touched)
    assert touched - released > 0.8 * (touched - before), (before, touched, released)
    np.testing.assert_array_equal(first, again)

"""Contract 4: a reader in another process sees a consistent committed prefix that only grows.

The writer is a real subprocess (``writer_proc.py``) appending self-describing rows; the test
process reads alongside it with ``refresh()``. Any torn row (columns or bytes from different
writes, or rows not yet written) differs from ``make_rows`` and fails the comparison.
"""

from __future__ import annotations

import numpy as np
import pytest

from replaystore.store import ReplayStore, errors

import writer_proc
from store_helpers import assert_columns_equal, check_writer_rows


def read_alongside(spawn_writer, path, total: int, seed: int, mode: str = "create") -> int:
    """Follow a live writer to ``total`` rows; returns how many distinct row counts were seen."""
    w = spawn_writer(path, "--mode", mode, "--rows", str(total), "--seed", str(seed), "--commit-every", "200")
    w.wait_ready()
    rng = np.random.default_rng(seed)
    seen = []
    with ReplayStore.open(path, "r") as r:
        assert r.writer_state["live"] is True
        prev = len(r)
        check_writer_rows(r, 0, prev)
        while True:
            running = w.proc.poll() is None
            n = r.refresh()
            assert n >= prev, f"reader's row count went back from {prev} to {n}"
            check_writer_rows(r, prev, n, f"rows [{prev}, {n}) after refresh: ")
            if n:
                # Old rows stay as they were, through the sampler's memory-mapped path too.
                rows = np.sort(rng.integers(0, n, size=min(n, 512)))
                got = r.gather(rows)
                want = writer_proc.rows_at(rows)
                assert_columns_equal(want, got, columns=[c for c in want if c in got], where=f"gather at {n}: ")
            counts = r.actor_counts()
            assert counts.tolist() == np.bincount(np.arange(n) % 3, minlength=3).tolist()
            seen.append(n)
            prev = n
            if not running:
                break
        w.finish()
        assert r.refresh() == total
        assert r.has_new_commits() is False
        assert r.writer_state == {"live": False, "died": False, "recovery": None}
    return len(set(seen))


def test_reader_follows_live_writer(spawn_writer, store_path):
    """A reader refreshing while another process appends 40,000 rows sees its count only grow,
    every row exactly as written (no torn or not-yet-written row), and the final count at the end."""
    distinct = read_alongside(spawn_writer, store_path, total=40_000, seed=3)
    assert distinct >= 2, "the reader never saw the store grow: the test did not overlap the writer"


def test_reader_follows_writer_that_resumed(spawn_writer, store_path):
    """A reader follows a second writer that reopened a closed store with mode 'a' and appends to it."""
    read_alongside(spawn_writer, store_path, total=5_000, seed=4)
    distinct = read_alongside(spawn_writer, store_path, total=25_000, seed=5, mode="append")
    assert distinct >= 2


def test_reader_opened_before_writer_process_is_killed(spawn_writer, store_path):
    """A reader holding the store while its writer is killed keeps reading the committed rows."""
    w = spawn_writer(store_path, "--mode", "create", "--seed", "9", "--commit-every", "50")
    w.wait_ready()
    with ReplayStore.open(store_path, "r") as r:
        while r.refresh() < 2_000:
            assert w.proc.poll() is None, f"writer exited early: {w.stderr()}"
        w.kill()
        n = r.refresh()
        assert n >= max(w.reported_commits())
        check_writer_rows(r, 0, n)
        assert r.writer_state["died"] is True


@pytest.mark.slow
def test_reader_follows_long_write(spawn_writer, store_path):
    """The same check over 400,000 rows."""
    assert read_alongside(spawn_writer, store_path, total=400_000, seed=11) >= 2


def test_second_writer_process_is_refused(spawn_writer, store_path):
    """While a writer process lives, opening the store 'a' from another process raises
    StoreLockedError naming that process; once it is killed, 'a' recovers the store."""
    w = spawn_writer(store_path, "--mode", "create", "--seed", "2", "--commit-every", "50")
    w.wait_ready()
    with pytest.raises(errors.StoreLockedError, match=rf"is being written by process {w.proc.pid} on .*one writer at a time"):
        ReplayStore.open(store_path, "a")
    w.kill()
    with ReplayStore.open(store_path, "a") as s:
        assert s.writer_state["recovery"]["dead_pid"] == w.proc.pid
        check_writer_rows(s, 0, len(s))

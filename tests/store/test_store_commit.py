"""When rows become visible: commit(), every commit_every rows, after commit_seconds, on close."""

from __future__ import annotations

import gc
import time

import pytest

from replaystore.store import ReplayStore

import writer_proc
from store_helpers import append_writer_rows, check_writer_rows


def one(s: ReplayStore, i: int) -> None:
    s.append(**{k: v[0] for k, v in writer_proc.given(writer_proc.make_rows(i, i + 1)).items()})


def visible(path) -> int:
    with ReplayStore.open(path, "r") as r:
        return len(r)


def test_rows_are_invisible_until_commit(store_path):
    """Appended rows are not visible to a reader (or the writer's len) before commit(), all are after."""
    s = ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, commit_every=10**6,
                           commit_seconds=3600.0)
    append_writer_rows(s, 0, 50)
    one(s, 50)
    assert (len(s), visible(store_path)) == (0, 0)
    assert s.commit() == 51
    assert (len(s), visible(store_path)) == (51, 51)
    assert s.commit() == 51  # nothing new: same count
    s.close()
    with ReplayStore.open(store_path) as r:
        check_writer_rows(r, 0, 51)


def test_commit_every_rows(store_path):
    """With commit_every=7, a commit happens as soon as 7 or more rows are pending, from append or extend."""
    s = ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, commit_every=7,
                           commit_seconds=3600.0)
    for i in range(6):
        one(s, i)
    assert visible(store_path) == 0
    one(s, 6)
    assert visible(store_path) == 7
    append_writer_rows(s, 7, 12)
    assert visible(store_path) == 7
    append_writer_rows(s, 12, 30)
    assert visible(store_path) == 30
    s.close()


def test_commit_seconds(store_path):
    """With commit_seconds=0.05, the first row appended after that long commits everything pending."""
    s = ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, commit_every=10**6,
                           commit_seconds=0.05)
    s.commit()
    one(s, 0)
    time.sleep(0.2)
    one(s, 1)
    assert visible(store_path) == 2
    s.close()


def test_close_commits_and_context_manager(store_path):
    """Leaving a with-block closes and commits; so does close() after an error inside the block."""
    with pytest.raises(RuntimeError, match="boom"):
        with ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, commit_every=10**6,
                                commit_seconds=3600.0) as s:
            append_writer_rows(s, 0, 20)
            raise RuntimeError("boom")
    assert s.closed
    with ReplayStore.open(store_path) as r:
        check_writer_rows(r, 0, 20)
        assert r.writer_state == {"live": False, "died": False, "recovery": None}


def test_garbage_collected_writer_commits(store_path):
    """A writer dropped without close() commits its rows when collected (documented in __del__)."""
    s = ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, commit_every=10**6,
                           commit_seconds=3600.0)
    append_writer_rows(s, 0, 33)
    del s
    gc.collect()
    with ReplayStore.open(store_path, "a") as s2:  # not refused as locked: the old writer is closed
        assert len(s2) == 33
        check_writer_rows(s2, 0, 33)


def test_fsync_mode_keeps_the_same_rows(store_path):
    """fsync=True changes durability, not content: rows, reopen and append behave the same."""
    with ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, fsync=True,
                            commit_every=100) as s:
        append_writer_rows(s, 0, 250)
        one(s, 250)
    with ReplayStore.open(store_path, "a", fsync=True) as s:
        append_writer_rows(s, 251, 400)
    with ReplayStore.open(store_path) as r:
        check_writer_rows(r, 0, 400)


@pytest.mark.parametrize("kwargs, match", [
    (dict(commit_every=0), r"commit_every=0: expected a positive number of rows"),
    (dict(commit_seconds=-1), r"commit_seconds=-1: expected a positive number of seconds"),
])
def test_bad_commit_policy_on_open(store_path, kwargs, match):
    """open(..., 'a') refuses a commit policy that would never (or always) commit, before touching the store."""
    with ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS) as s:
        append_writer_rows(s, 0, 5)
    with pytest.raises(ValueError, match=match):
        ReplayStore.open(store_path, "a", **kwargs)
    with ReplayStore.open(store_path, "a") as s:
        assert len(s) == 5

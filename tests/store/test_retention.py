"""retain=N keeps at least the last N rows on disk, deleting whole old segments; row ids stay global."""

from __future__ import annotations

import os

import numpy as np
import pytest

from replaystore.store import ReplayStore, Schema, errors

WINDOW = 4096
SCHEMA = Schema.transition((256,))


def _block(start: int, n: int) -> dict:
    i = np.arange(start, start + n)
    return {"actor": (i % 3 == 0).astype("u1"), "state": np.repeat(i[:, None], 256, axis=1).astype("f4"),
            "next_state": np.zeros((n, 256), "f4"), "discrete_action": (i % 2).astype("i4"),
            "continuous_action": np.zeros((n, 0), "f4"), "reward": i.astype("f4"), "done": i % 50 == 49}


def _allocated(path) -> int:
    files = [path, f"{path}.commit"] + [os.path.join(f"{path}.d", n) for n in os.listdir(f"{path}.d")]
    return sum(os.stat(p).st_blocks * 512 for p in files)


def test_retain_window_bounds_the_bytes_on_disk(tmp_path):
    """Writing 5x the window with retain=window keeps allocated bytes under 1.5x the window's rows,
    and every kept row, the counts and the composition stay exact."""
    path = str(tmp_path / "run.h5")
    row_bytes = sum(c.row_bytes for c in SCHEMA)
    with ReplayStore.create(path, SCHEMA, actors=("dqn", "expert"), window=WINDOW, retain=WINDOW) as s:
        for start in range(0, 5 * WINDOW, 1000):
            s.extend(_block(start, min(1000, 5 * WINDOW - start)))
            s.commit()
            assert _allocated(path) < 1.5 * WINDOW * row_bytes, f"after {len(s)} rows"
    n = 5 * WINDOW
    with ReplayStore.open(path) as r:
        assert n == len(r)
        first = r._record.tables["transitions"].first_row
        assert n - 1.25 * WINDOW <= first <= n - WINDOW
        got = r.read(["state", "reward"], first, n)
        np.testing.assert_array_equal(np.arange(first, n, dtype="f4"), got["reward"])
        np.testing.assert_array_equal(np.arange(first, n, dtype="f4"), got["state"][:, 7])
        rows = np.array([n - 1, first, n - WINDOW])
        np.testing.assert_array_equal(rows.astype("f4"), r.gather(rows, ["reward"])["reward"])
        win = r.actor_composition(window=True)
        expect = np.bincount((np.arange(n - WINDOW, n) % 3 == 0).astype(int), minlength=2)
        assert {"dqn": int(expect[0]), "expert": int(expect[1])} == win["counts"]
        assert [int((np.arange(n) % 3 != 0).sum()), int((np.arange(n) % 3 == 0).sum())] == r.actor_counts().tolist()
        with pytest.raises(errors.RowsDeletedError, match=r"deleted by retention"):
            r.read(["reward"], 0, 10)
        with pytest.raises(errors.RowsDeletedError, match=r"deleted by retention"):
            r.gather(np.array([first - 1]), ["reward"])
        with pytest.raises(errors.RowsDeletedError, match=r"deleted by retention"):
            r.actor_counts(first - 1)


def test_retention_resumes_after_reopen(tmp_path):
    """A reopened writer keeps the retention: old segments keep being deleted, row ids keep counting."""
    path = str(tmp_path / "run.h5")
    with ReplayStore.create(path, SCHEMA, actors=("dqn", "expert"), window=WINDOW, retain=WINDOW) as s:
        s.extend(_block(0, 2 * WINDOW))
    with ReplayStore.open(path, "a") as s:
        assert WINDOW == s.retain
        s.extend(_block(2 * WINDOW, 2 * WINDOW))
    with ReplayStore.open(path) as r:
        assert 4 * WINDOW == len(r)
        assert r._record.tables["transitions"].first_row >= 4 * WINDOW - 1.25 * WINDOW
        segs = sorted(n for n in os.listdir(f"{path}.d") if n.endswith(".h5"))
        assert len(segs) <= 6, segs


def test_retain_below_window_is_refused(tmp_path):
    """retain must keep at least the replay window."""
    with pytest.raises(ValueError, match=r"retain=100: expected None \(keep every row\) or a row count >= window"):
        ReplayStore.create(tmp_path / "r.h5", SCHEMA, actors=("a",), window=4096, retain=100)
    assert not (tmp_path / "r.h5").exists()


def test_default_keeps_every_row(tmp_path):
    """Without retain, every row ever written stays readable (the forensic record)."""
    path = str(tmp_path / "run.h5")
    with ReplayStore.create(path, SCHEMA, actors=("dqn", "expert"), window=1024) as s:
        s.extend(_block(0, 5000))
    with ReplayStore.open(path) as r:
        assert None is r.retain
        np.testing.assert_array_equal(np.arange(5000, dtype="f4"), r.read(["reward"])["reward"])

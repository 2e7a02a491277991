"""Actor counts over ranges of committed rows, from the maintained counts and the prefix index."""

from __future__ import annotations

import numpy as np

from replaystore.store import ReplayStore

import writer_proc
from store_helpers import append_writer_rows


def test_actor_counts_past_the_end(store_path):
    """actor_counts(start) with start at or past the committed rows counts no rows (like a slice),
    also past the next 4096-row prefix boundary, whose index row is not committed yet."""
    with ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS) as s:
        append_writer_rows(s, 0, 5000)
    with ReplayStore.open(store_path) as r:
        assert r.actor_counts(4999).tolist() == [0, 1, 0]  # row 4999 is actor 4999 % 3 == 1
        for start in (5000, 5001, 8191, 8192, 9000, 10**9):
            assert r.actor_counts(start).tolist() == [0, 0, 0], start


def test_actor_counts_across_prefix_boundaries(store_path):
    """actor_counts(start) equals a bincount of the rows [start, len) for starts around every
    4096-row boundary of the prefix index, also after a reopen in the middle of an index step."""
    rng = np.random.default_rng(3)
    codes = rng.choice(3, size=20_000, p=[0.7, 0.2, 0.1]).astype(np.uint8)
    rows = writer_proc.given(writer_proc.make_rows(0, 20_000))
    rows["actor"] = codes
    with ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=5000) as s:
        s.extend({k: v[:9000] for k, v in rows.items()})
    with ReplayStore.open(store_path, "a") as s:
        for a in range(9000, 20_000, 700):
            s.extend({k: v[a:a + 700] for k, v in rows.items()})
    with ReplayStore.open(store_path) as r:
        starts = sorted({0, 1, 19_999, 20_000} | {b + d for b in range(4096, 20_000, 4096) for d in (-1, 0, 1)})
        for start in starts:
            assert r.actor_counts(start).tolist() == np.bincount(codes[start:], minlength=3).tolist(), start
        comp = r.actor_composition(window=True)
        want = np.bincount(codes[15_000:], minlength=3)
        assert comp["total"] == 5000
        assert comp["counts"] == dict(zip(writer_proc.ACTORS, want.tolist()))
        assert comp["fractions"] == dict(zip(writer_proc.ACTORS, (want / 5000).tolist()))
        assert r.actor_composition(window=False)["counts"] == dict(zip(writer_proc.ACTORS, np.bincount(codes).tolist()))

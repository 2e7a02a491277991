"""One address range per column across segments (SegmentSpans): gathers over several segments
read the same bytes as the segments' own mappings, follow growth and retention, and never hold
a segment a table let go of."""

from __future__ import annotations

import numpy as np
import pytest

from replaystore.store import Column, ReplayStore, Sampler, Schema
from replaystore.store.files._mapped import SegmentSpans
from replaystore.store.format._format import TRANSITIONS
from replaystore.store.read import _views
from replaystore.store.read._views import _SPANS

SEG = 4096  # rows per segment: every column's bytes in a segment then fill whole pages
# 544-byte rows: 2.2 MB a segment, so their slots are placed 2 MiB-congruent, 65,536 rows apart
SCHEMA = Schema.transition((2,), extra=[Column("img", np.dtype("uint8"), (32, 17))])


def _block(start: int, n: int) -> dict:
    i = np.arange(start, start + n)
    img = (i[:, None, None] * 7 + np.arange(32)[:, None] * 17 + np.arange(17)) % 251
    return {"actor": (i % 3 == 0).astype("u1"), "state": np.stack([i, -i], axis=1).astype("f4"),
            "next_state": np.stack([i + 1, i], axis=1).astype("f4"), "discrete_action": (i % 5).astype("i4"),
            "continuous_action": np.zeros((n, 0), "f4"), "reward": i.astype("f4"), "done": i % 50 == 49,
            "img": img.astype("u1")}


def _spans(store: ReplayStore) -> SegmentSpans | None:
    got = store._views[TRANSITIONS]._cache.get(_SPANS)
    return got if isinstance(got, SegmentSpans) else None


@pytest.fixture(autouse=True)
def spans_at_once(monkeypatch):
    """Spans from the first batch over several segments (the store waits for _SPANS_AFTER of them)."""
    monkeypatch.setattr(_views, "_SPANS_AFTER", 0)


@pytest.fixture(scope="module")
def four_segments(tmp_path_factory):
    path = tmp_path_factory.mktemp("spans") / "run.h5"
    with ReplayStore.create(path, SCHEMA, actors=("a", "b"), segment_rows=SEG) as s:
        s.extend(_block(0, 3 * SEG + 1000))
    r = ReplayStore.open(path)
    yield r, r.read()
    r.close()


def test_the_fixture_takes_the_spans_with_gapped_slots(four_segments):
    """The store's layout allows spans, a gather over two segments builds them, and the wide column's
    slots are a whole number of 2 MiB pages apart while the small ones are packed."""
    r, _ = four_segments
    assert SegmentSpans.usable(r._views[TRANSITIONS]._cols, SEG)
    r.gather(np.array([5, SEG + 5]))
    sp = _spans(r)
    assert sp is not None
    assert 65536 == sp.stride["img"] and SEG == sp.stride["reward"] and SEG == sp.stride["state"]
    assert [0, 1] == [i for i, seg in enumerate(sp.held) if seg is not None]


@pytest.mark.parametrize("order", ["ascending", "descending", "random", "repeats", "edges"])
def test_gather_over_segments_matches_read(four_segments, order):
    """Rows from every segment, in any order and with repeats, come back as read() has them."""
    r, full = four_segments
    n = len(full["reward"])
    rng = np.random.default_rng(5)
    rows = np.sort(rng.integers(0, n, 700))
    edges = np.array([k * SEG + d for k in range(4) for d in (-1, 0, 1) if 0 <= k * SEG + d < n] + [n - 1])
    rows = {"ascending": rows, "descending": rows[::-1], "random": rng.permutation(rows),
            "repeats": np.repeat(rows[:40], 5), "edges": edges}[order]
    got = r.gather(rows)
    assert _spans(r) is not None
    for c in SCHEMA.names:
        assert full[c][rows].tobytes() == got[c].tobytes(), c


def test_spans_follow_a_growing_store_and_retention(tmp_path):
    """A reader's spans grow with the writer's new segments; once retention deletes segments, the
    spans that held them are dropped (the files' space is not kept by this process) and gathers
    of the kept rows stay exact."""
    path = str(tmp_path / "run.h5")
    w = ReplayStore.create(path, SCHEMA, actors=("a", "b"), segment_rows=SEG, window=SEG, retain=2 * SEG)
    w.extend(_block(0, 2 * SEG))
    w.commit()
    with Sampler(path, 64, seed=1) as sampler:
        r = sampler.store
        rows = np.array([3, SEG + 3])
        assert r.gather(rows)["reward"].tolist() == rows.tolist()
        first = _spans(r)
        assert first is not None and first.held[0] is not None
        for start in range(2 * SEG, 6 * SEG, SEG):
            w.extend(_block(start, SEG))
            w.commit()
            b = sampler.sample()  # refreshes: segments dropped by retention are forgotten
            assert b["reward"].tolist() == b["row"].astype("f4").tolist()
            assert (b["img"] == _block(0, 6 * SEG)["img"][b["row"]]).all()
        t = r._record.tables[TRANSITIONS]
        assert t.first_segment >= 2
        lo = t.first_row
        rows = np.array([lo, lo + SEG, len(r) - 1])
        assert r.gather(rows)["reward"].tolist() == rows.tolist()
        sp = _spans(r)
        assert sp is not first
        held = [sp.first + i for i, seg in enumerate(sp.held) if seg is not None]
        assert held and min(held) >= t.first_segment, held
    w.close()


def test_columns_that_do_not_fill_pages_take_the_segments_own_mappings(tmp_path):
    """With 1,024-row segments an int16 column is 2 KB a segment: no spans, and gathers stay exact."""
    schema = Schema.transition((3,), discrete_dtype="int16")
    path = tmp_path / "run.h5"
    rng = np.random.default_rng(0)
    n = 3000
    with ReplayStore.create(path, schema, actors=("a",), segment_rows=1024) as s:
        s.extend({"actor": np.zeros(n, "u1"), "state": rng.standard_normal((n, 3)).astype("f4"),
                  "next_state": rng.standard_normal((n, 3)).astype("f4"),
                  "discrete_action": np.arange(n).astype("i2"), "continuous_action": np.zeros((n, 0), "f4"),
                  "reward": np.arange(n).astype("f4"), "done": np.zeros(n, bool)})
    with ReplayStore.open(path) as r:
        assert not SegmentSpans.usable(r._views[TRANSITIONS]._cols, 1024)
        rows = np.array([2999, 5, 1500, 1023, 1024])
        got = r.gather(rows)
        assert _spans(r) is None
        assert got["discrete_action"].tolist() == rows.tolist()


def test_closing_the_store_lets_go_of_the_spans(four_segments, tmp_path):
    """close() drops the spans with the segments; arrays a caller still holds keep their bytes."""
    path = tmp_path / "c.h5"
    with ReplayStore.create(path, SCHEMA, actors=("a", "b"), segment_rows=SEG) as s:
        s.extend(_block(0, 2 * SEG))
    r = ReplayStore.open(path)
    r.gather(np.array([1, SEG + 1]))
    sp = _spans(r)
    kept = sp.arrays["reward"]
    r.close()
    assert {} == sp.arrays and all(seg is None for seg in sp.held)
    assert [1.0, float(SEG + 1)] == kept[[1, SEG + 1]].tolist()


def test_spans_wait_for_a_few_batches(tmp_path, monkeypatch):
    """A reopened store's first batches over several segments go through the segments' own
    mappings (cheaper page faults for a first batch); spans come after _SPANS_AFTER of them, and
    the batches are the same either way."""
    monkeypatch.setattr(_views, "_SPANS_AFTER", 3)
    path = tmp_path / "w.h5"
    with ReplayStore.create(path, SCHEMA, actors=("a", "b"), segment_rows=SEG) as s:
        s.extend(_block(0, 2 * SEG))
    with ReplayStore.open(path) as r:
        full = r.read()
        rows = np.array([7, SEG + 7, 2 * SEG - 1])
        for i in range(5):
            assert (i > 3) == (_spans(r) is not None), i  # made by the 4th batch
            got = r.gather(rows)
            for c in SCHEMA.names:
                assert full[c][rows].tobytes() == got[c].tobytes(), c


def test_spans_too_large_for_the_address_space_fall_back(four_segments, monkeypatch):
    """Spans that would take more address space than allowed are made without 2 MiB gaps, or not
    at all; the gathers stay exact either way."""
    import replaystore.store.files._mapped as mapped

    r, full = four_segments
    rows = np.array([1, SEG + 2, 3 * SEG + 3, 2 * SEG])
    for limit, want in ((160 << 20, SEG), (1 << 20, None)):  # room for packed slots only; for nothing
        r._views[TRANSITIONS]._cache.pop(_SPANS, None)
        r._views[TRANSITIONS]._spannable = True
        monkeypatch.setattr(mapped, "_MAX_RESERVE", limit)
        got = r.gather(rows)
        sp = _spans(r)
        assert (None if sp is None else sp.stride["img"]) == want
        for c in SCHEMA.names:
            assert full[c][rows].tobytes() == got[c].tobytes(), c


def test_release_pages_covers_the_spans(tmp_path):
    """Pages a batch mapped through the spans are given back by ReplayStore.release_pages too."""
    from store_helpers import rss_kb

    from replaystore.store import ReplayStore, Schema

    n, width = 32_768, 256
    path = tmp_path / "s.h5"
    state = np.random.default_rng(1).standard_normal((n, width), dtype=np.float32)
    with ReplayStore.create(path, Schema.transition((width,)), actors=("a",), segment_rows=4096) as w:
        w.extend(dict(state=state, next_state=state, discrete_action=np.zeros(n, "i4"),
                      continuous_action=np.zeros((n, 0), "f4"), reward=np.zeros(n, "f4"), done=np.zeros(n, bool),
                      actor=np.zeros(n, "u1")))
    with ReplayStore.open(path) as r:
        rows = np.arange(n)
        for _ in range(40):  # past the batches after which a table gets its spans
            got = r.gather(rows, ["state"])["state"]
        np.testing.assert_array_equal(got, state)
        before_release = rss_kb("RssFile")
        r.release_pages()
        assert before_release - rss_kb("RssFile") > n * width * 4 * 0.8 / 1024
        np.testing.assert_array_equal(r.gather(rows[::7], ["state"])["state"], state[::7])

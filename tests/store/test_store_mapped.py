"""Memory-mapped access: gather and read agree with a full read across segment and checksum-block edges."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replaystore.store import Column, ReplayStore, Schema
from replaystore.store.files._mapped import ColumnMap, MappedFile

N_ROWS = 9_000
SEG = 1024
SCHEMA = Schema.transition((3,), continuous_dim=0, discrete_dtype="int16", extra=[
    Column("img", np.dtype("uint8"), (2, 5)),
    Column("value", np.dtype("float64")),
    Column("wide", np.dtype("float32"), (37,)),  # 148-byte rows: a chunk is not a whole number of them
])


@pytest.fixture(scope="module")
def mapped_store(tmp_path_factory):
    """A store of 9,000 rows in segments of 1,024 rows with 4 KiB checksum blocks (27 to 1,024 rows
    per block), reopened for appending once, then read in full through store.read."""
    path = tmp_path_factory.mktemp("mapped") / "run.h5"
    rng = np.random.default_rng(1)
    s = ReplayStore.create(path, SCHEMA, actors=("a", "b", "c"), chunk_bytes=4096, segment_rows=SEG)
    for start in range(0, N_ROWS, 1500):
        n = min(1500, N_ROWS - start)
        s.extend({
            "actor": rng.integers(0, 3, n), "state": rng.standard_normal((n, 3)).astype("f4"),
            "next_state": rng.standard_normal((n, 3)).astype("f4"),
            "discrete_action": rng.integers(-30000, 30000, n).astype("i2"),
            "continuous_action": np.zeros((n, 0), "f4"), "reward": rng.standard_normal(n).astype("f4"),
            "done": rng.random(n) < 0.1, "img": rng.integers(0, 256, (n, 2, 5), dtype=np.uint8),
            "value": rng.standard_normal(n), "wide": rng.standard_normal((n, 37)).astype("f4"),
        })
        if start == 3000:
            s.close()
            s = ReplayStore.open(path, "a")
    s.close()
    r = ReplayStore.open(path, "r")
    yield r, r.read()
    r.close()


def boundary_rows() -> np.ndarray:
    """The first and last row of every segment and every checksum block, and their neighbours."""
    rows = set()
    for step in (SEG, 4096 // 148, 4096 // 12):
        for b in range(0, N_ROWS + 1, step):
            rows.update(x for x in (b - 2, b - 1, b, b + 1) if 0 <= x < N_ROWS)
    return np.array(sorted(rows), np.int64)


def test_segments_and_blocks_split_rows_unevenly(mapped_store):
    """The fixture covers what the test is about: many segments, rows per checksum block that differ by column."""
    r, _ = mapped_store
    t = r._record.tables["transitions"]
    assert (t.segment_rows, t.first_segment, t.rows) == (SEG, 0, N_ROWS)
    assert t.check_rows["wide"] == 4096 // 148 and t.check_rows["done"] == SEG and t.check_rows["state"] == 4096 // 12
    assert "continuous_action" not in t.offsets  # width 0: nothing stored, nothing to map


def test_gather_segment_boundaries(mapped_store):
    """gather() of every segment's and block's edge rows equals store.read() at those rows, in every column."""
    r, full = mapped_store
    rows = boundary_rows()
    got = r.gather(rows)
    for name in SCHEMA.names:
        assert got[name].dtype == full[name].dtype and got[name].shape == (len(rows), *SCHEMA[name].shape)
        assert got[name].tobytes() == full[name][rows].tobytes(), name


@pytest.mark.parametrize("order", ["ascending", "rotated", "descending", "random"])
def test_gather_in_runs_and_scattered(mapped_store, order):
    """gather() keeps the order asked whether a batch's rows come in a few runs per segment
    (ascending, two ascending pieces as prioritized draws give, descending) or in many (random)."""
    r, full = mapped_store
    rows = np.sort(np.random.default_rng(3).integers(0, N_ROWS, 2000))
    rows = {"ascending": rows, "rotated": np.roll(rows, 700), "descending": rows[::-1],
            "random": np.random.default_rng(4).permutation(rows)}[order]
    runs = 1 + int(np.count_nonzero(np.diff(rows // SEG)))
    assert (runs > 64) == (order == "random")  # both of gather's ways are taken
    got = r.gather(rows)
    for name in SCHEMA.names:
        assert got[name].tobytes() == full[name][rows].tobytes(), name


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, N_ROWS - 1), max_size=300))
def test_gather_random_rows(mapped_store, rows):
    """gather() of random rows (any order, repeats, across segments) equals store.read() at those rows."""
    r, full = mapped_store
    rows = np.array(rows, np.int64)
    got = r.gather(rows)
    for name in SCHEMA.names:
        assert got[name].tobytes() == full[name][rows].tobytes(), name


@settings(max_examples=60, deadline=None)
@given(st.integers(0, N_ROWS), st.integers(0, N_ROWS))
def test_read_ranges(mapped_store, a, b):
    """read(start=, stop=) equals the full read's slice, across segment edges."""
    r, full = mapped_store
    start, stop = min(a, b), max(a, b)
    part = r.read(start=start, stop=stop)
    for name in SCHEMA.names:
        assert part[name].tobytes() == full[name][start:stop].tobytes(), name


def test_read_slice_rules(mapped_store):
    """read() follows Python slice rules for negative and out-of-range bounds."""
    r, full = mapped_store
    assert r.read(["value"], start=-5)["value"].tobytes() == full["value"][-5:].tobytes()
    assert r.read(["value"], stop=-N_ROWS + 3)["value"].tobytes() == full["value"][:3].tobytes()
    assert len(r.read(["value"], start=N_ROWS + 10)["value"]) == 0
    assert len(r.read(["value"], start=10, stop=5)["value"]) == 0
    with pytest.raises(KeyError, match=r"read: unknown column\(s\) \['nope'\]"):
        r.read(["nope"])


def test_every_chunk_is_aligned_in_small_stores(tmp_path):
    """Every column of every table starts on a 4 KiB boundary of its segments, so the mapped views
    (which need offsets that are multiples of the dtype's size) can read them."""
    path = tmp_path / "small.h5"
    schema = Schema.transition((3,), state_dtype="float64", extra=[Column("odd", np.dtype("int32"), (3,))])
    log = Schema((Column("per_actor", np.dtype("int32"), (3,)), Column("x", np.dtype("float64"), (3,))))
    with ReplayStore.create(path, schema, actors=("a", "b", "c"), window=1, chunk_bytes=4096) as s:
        s.create_table("log", log)
        for k in range(6):
            s.extend_table("log", {"per_actor": np.full((400, 3), k, "i4"), "x": np.full((400, 3), k, "f8")})
            n = 700
            s.extend({"actor": np.arange(n) % 3, "state": np.full((n, 3), k, "f8"), "next_state": np.zeros((n, 3)),
                      "discrete_action": np.zeros(n, "i4"), "continuous_action": np.zeros((n, 0), "f4"),
                      "reward": np.zeros(n, "f4"), "done": np.zeros(n, bool), "odd": np.full((n, 3), k, "i4")})
            s.commit()
    with ReplayStore.open(path) as r:
        for table in ("transitions", "log"):
            offsets = r._record.tables[table].offsets
            assert offsets and all(off % 4096 == 0 for off in offsets.values()), (table, offsets)
        assert r.read(["state"])["state"][:, 0].tolist() == np.repeat(np.arange(6.0), 700).tolist()
        assert r.read_table("log", ["x"])["x"][:, 2].tolist() == np.repeat(np.arange(6.0), 400).tolist()


def test_public_gather_matches_read_and_refuses_uncommitted_rows(tmp_path):
    """store.gather(rows, columns) returns the rows read() returns, in the order asked, and only committed ones."""
    path = str(tmp_path / "g.h5")
    schema = Schema.transition((3,))
    with ReplayStore.create(path, schema, actors=("expert", "dqn")) as s:
        n = 300
        s.extend({"actor": ["expert", "dqn", "dqn"] * (n // 3), "state": np.arange(n * 3).reshape(n, 3),
                  "next_state": np.arange(n * 3).reshape(n, 3) + 1, "discrete_action": np.arange(n) % 2,
                  "continuous_action": np.zeros((n, 0)), "reward": np.arange(n) / 7, "done": np.arange(n) % 9 == 8})
        s.commit()
        rows = np.array([299, 0, 5, 5, 150])
        got = s.gather(rows, ["state", "actor", "reward"])
        full = s.read()
        for c in ("state", "actor", "reward"):
            np.testing.assert_array_equal(full[c][rows], got[c])
        assert list(s.gather(rows)) == list(schema.names)
        with pytest.raises(IndexError, match=r"\[0, 300\).*max 300"):
            s.gather(np.array([300]), "state")
        with pytest.raises(TypeError, match="integer row ids"):
            s.gather(np.array([0.5]), "state")
        with pytest.raises(KeyError, match="unknown column"):
            s.gather(rows, "nope")


def test_format1_column_gather_reads_in_place(tmp_path):
    """A format-1 column's gather equals its read() at those rows and allocates about the rows it
    returns, never a copy of the mapped column (an np.take on the overlapping view once copied
    the whole file, `width` times over)."""
    data = np.random.default_rng(0).standard_normal((16384, 16)).astype("f4")  # 1 MiB, chunks of 1024 rows
    path = tmp_path / "chunks.bin"
    path.write_bytes(bytes(4096) + data.tobytes())
    mf = MappedFile(path)
    mf.ensure(4096 + data.nbytes)
    col = ColumnMap(Column("x", np.dtype("f4"), (16,)), 1024, 4096 + np.arange(16) * 1024 * 64)
    flat = ColumnMap(Column("y", np.dtype("f4")), 1024, 4096 + np.arange(16 * 16) * 1024 * 4)
    rows = np.array([5, 16383, 0, 7000, 5, 1023, 1024], np.int64)
    for cm, whole in ((col, data), (flat, data.reshape(-1))):
        assert np.array_equal(cm.read(mf, 0, len(whole)), whole)
        tracemalloc.start()
        try:
            got = cm.gather(mf, rows)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert np.array_equal(got, whole[rows])
        assert peak < 64 * 1024, f"gather of {len(rows)} rows allocated {peak} bytes (the column is {whole.nbytes})"
    mf.close()


def test_gather_into_given_arrays(tmp_path):
    """gather(out=) fills the given arrays (views of a larger batch too) with what gather returns; a wrong
    shape or dtype is refused with the expected shape named."""
    path = str(tmp_path / "o.h5")
    with ReplayStore.create(path, Schema.transition((3,)), actors=("expert", "dqn"), segment_rows=1024) as s:
        n = 5000
        s.extend({"actor": ["expert", "dqn"] * (n // 2), "state": np.arange(n * 3).reshape(n, 3),
                  "next_state": np.arange(n * 3).reshape(n, 3) + 1, "discrete_action": np.arange(n) % 2,
                  "continuous_action": np.zeros((n, 0)), "reward": np.arange(n) / 7, "done": np.arange(n) % 9 == 8})
        s.commit()
        rows = np.random.default_rng(0).integers(0, n, 300)
        want = s.gather(rows, ["state", "reward"])
        big = {"state": np.zeros((400, 3), np.float32), "reward": np.zeros(400, np.float32)}
        got = s.gather(rows, ["state", "reward"], out={c: v[50:350] for c, v in big.items()})
        for c in ("state", "reward"):
            np.testing.assert_array_equal(want[c], got[c])
            np.testing.assert_array_equal(want[c], big[c][50:350])
            assert not big[c][:50].any() and not big[c][350:].any()
        for sorted_rows in (np.sort(rows), np.full(10, 7)):
            out = {"state": np.empty((len(sorted_rows), 3), np.float32)}
            np.testing.assert_array_equal(s.gather(sorted_rows, "state")["state"],
                                          s.gather(sorted_rows, "state", out=out)["state"])
        with pytest.raises(ValueError, match=r"out\['state'\] must be a writable array of shape \(300, 3\)"):
            s.gather(rows, ["state"], out={"state": np.zeros((300, 4), np.float32)})
        with pytest.raises(ValueError, match=r"out\['reward'\].*got missing"):
            s.gather(rows, ["state", "reward"], out={"state": np.zeros((300, 3), np.float32)})


def test_release_pages_drops_the_mapped_pages_and_reads_stay_right(tmp_path):
    """``release_pages`` gives back the segment pages a pass mapped into this process (RssFile falls
    by most of what the pass added); the rows read again are the same."""
    from store_helpers import rss_kb

    n, width = 40_000, 256
    path = tmp_path / "big.h5"
    rng = np.random.default_rng(0)
    state = rng.standard_normal((n, width), dtype=np.float32)
    with ReplayStore.create(path, Schema.transition((width,)), actors=("a", "b")) as w:
        w.extend(dict(state=state, next_state=state, discrete_action=np.zeros(n, "i4"),
                      continuous_action=np.zeros((n, 0), "f4"), reward=np.zeros(n, "f4"), done=np.zeros(n, bool),
                      actor=np.zeros(n, "u1")))
    with ReplayStore.open(path) as r:
        before = rss_kb("RssFile")
        assert float(r.read(["state"])["state"].sum()) == pytest.approx(float(state.sum()), rel=1e-4)
        mapped = rss_kb("RssFile") - before
        assert mapped > n * width * 4 * 0.8 / 1024  # the pass mapped the column's pages
        r.release_pages()
        assert rss_kb("RssFile") - before < mapped * 0.2
        np.testing.assert_array_equal(state[123:130], r.read(["state"], 123, 130)["state"])

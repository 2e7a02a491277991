"""Memory-mapped access: ColumnMap.gather and ColumnMap.read agree with store.read across chunks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replaystore.store import Column, ReplayStore, Schema

N_ROWS = 9_000
SCHEMA = Schema.transition((3,), continuous_dim=0, discrete_dtype="int16", extra=[
    Column("img", np.dtype("uint8"), (2, 5)),
    Column("value", np.dtype("float64")),
    Column("wide", np.dtype("float32"), (37,)),  # 148-byte rows: a chunk is not a whole number of them
])


@pytest.fixture(scope="module")
def mapped_store(tmp_path_factory):
    """A store of 9,000 rows in 4 KiB chunks (27 to 4,096 rows per chunk), reopened once so
    that its chunk offsets come from the file, then read in full through store.read."""
    path = tmp_path_factory.mktemp("mapped") / "run.h5"
    rng = np.random.default_rng(1)
    s = ReplayStore.create(path, SCHEMA, actors=("a", "b", "c"), chunk_bytes=4096)
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


def boundary_rows(maps) -> np.ndarray:
    """The first and last row of every chunk of every column, and their neighbours."""
    rows = set()
    for m in maps.values():
        for b in range(0, N_ROWS + 1, m.rpc):
            rows.update(x for x in (b - 2, b - 1, b, b + 1) if 0 <= x < N_ROWS)
    return np.array(sorted(rows), np.int64)


def test_chunks_split_rows_unevenly(mapped_store):
    """The fixture covers what the test is about: many chunks, rows per chunk that differ by column."""
    r, _ = mapped_store
    rpc = {n: m.rpc for n, m in r.column_maps().items()}
    assert rpc["wide"] == 4096 // 148 and rpc["done"] == 4096 and rpc["state"] == 4096 // 12
    assert "continuous_action" not in rpc  # width 0: nothing stored, nothing to map


def test_gather_chunk_boundaries(mapped_store):
    """gather() of every chunk's edge rows equals store.read() at those rows, in every column."""
    r, full = mapped_store
    maps = r.column_maps()
    rows = boundary_rows(maps)
    for name, m in maps.items():
        got = m.gather(r.mapped_file, rows)
        assert got.dtype == full[name].dtype and got.shape == (len(rows), *SCHEMA[name].shape)
        assert got.tobytes() == full[name][rows].tobytes(), name


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, N_ROWS - 1), max_size=300), st.booleans())
def test_gather_random_rows(mapped_store, rows, use_out):
    """gather() of random rows (any order, repeats) equals store.read() at those rows; out= is filled."""
    r, full = mapped_store
    rows = np.array(rows, np.int64)
    for name, m in r.column_maps().items():
        if use_out:
            out = np.empty((len(rows), *SCHEMA[name].shape), SCHEMA[name].dtype)
            got = m.gather(r.mapped_file, rows, out=out)
            assert got is out or np.shares_memory(got, out)
        else:
            got = m.gather(r.mapped_file, rows)
        assert got.tobytes() == full[name][rows].tobytes(), name


@settings(max_examples=60, deadline=None)
@given(st.integers(0, N_ROWS), st.integers(0, N_ROWS))
def test_read_ranges(mapped_store, a, b):
    """ColumnMap.read(start, stop) and store.read(start=, stop=) equal the full read's slice."""
    r, full = mapped_store
    start, stop = min(a, b), max(a, b)
    part = r.read(start=start, stop=stop)
    for name, m in r.column_maps().items():
        got = m.read(r.mapped_file, start, stop)
        assert got.tobytes() == full[name][start:stop].tobytes(), name
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
    """With 4 KiB chunks and rows that do not divide them (24- and 12-byte rows give 4,080- and
    4,092-byte chunks), every chunk of every table still starts on a 4 KiB boundary, so the mapped
    views (which need offsets that are multiples of the dtype's size) can read them."""
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
            for name, m in r.column_maps(table).items():
                assert (m.chunk_elem * m.column.dtype.itemsize % 4096 == 0).all(), (table, name)
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

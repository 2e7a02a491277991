"""Helpers shared by the store tests (imported by name; conftest.py keeps only fixtures).

A module of its own, not conftest: tests/analysis has a conftest.py too, and ``from conftest import``
finds whichever was imported first when both folders run in one pytest command.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from replaystore.store import ReplayStore

import writer_proc

WRITER_SCRIPT = str(Path(writer_proc.__file__).resolve())


def same_bits(expected: np.ndarray, actual: np.ndarray) -> bool:
    """Equal dtype, shape and bytes (so NaN == NaN and -0.0 != 0.0): what bit-identical means."""
    expected, actual = np.asarray(expected), np.asarray(actual)
    return (expected.dtype == actual.dtype and expected.shape == actual.shape
            and np.ascontiguousarray(expected).tobytes() == np.ascontiguousarray(actual).tobytes())


def assert_columns_equal(expected: dict, actual: dict, columns=None, where: str = "") -> None:
    """Assert bit-identical columns, naming the first differing row on failure."""
    for c in (columns if columns is not None else expected):
        e, a = np.asarray(expected[c]), np.asarray(actual[c])
        if same_bits(e, a):
            continue
        assert e.dtype == a.dtype, f"{where}column {c!r}: dtype {a.dtype}, expected {e.dtype}"
        assert e.shape == a.shape, f"{where}column {c!r}: shape {a.shape}, expected {e.shape}"
        diff = [i for i in range(len(e)) if e[i].tobytes() != a[i].tobytes()]
        raise AssertionError(f"{where}column {c!r}: {len(diff)} rows differ, first row {diff[0]}: "
                             f"got {a[diff[0]]!r}, expected {e[diff[0]]!r}")


def check_writer_rows(store: ReplayStore, start: int, stop: int, where: str = "") -> None:
    """Rows ``[start, stop)`` of ``store`` are exactly what ``writer_proc`` writes for those ids."""
    got = store.read(start=start, stop=stop)
    want = writer_proc.make_rows(start, stop)
    assert_columns_equal(want, got, where=where)
    assert np.isfinite(got["time"]).all() and (got["time"] > 1.0e9).all(), f"{where}time column not wall-clock"


def append_writer_rows(store: ReplayStore, start: int, stop: int) -> None:
    store.extend(writer_proc.given(writer_proc.make_rows(start, stop)))


COMMITTED = 300  # rows in the writer_store fixture
DROP = object()  # in row()/block() changes: leave that column out


def row(i: int, **changes) -> dict:
    """The writer_proc row ``i`` as append() keywords (actor included), with ``changes`` applied."""
    r = {k: v[0] for k, v in writer_proc.given(writer_proc.make_rows(i, i + 1)).items()}
    r["actor"] = writer_proc.ACTORS[int(r["actor"])]
    r.update(changes)
    return {k: v for k, v in r.items() if v is not DROP}


def block(start: int, stop: int, **changes) -> dict:
    """The writer_proc rows ``[start, stop)`` as an extend() block, with ``changes`` applied."""
    b = writer_proc.given(writer_proc.make_rows(start, stop))
    b.update(changes)
    return {k: v for k, v in b.items() if v is not DROP}


def assert_nothing_lost(s: ReplayStore, committed: int = COMMITTED) -> None:
    """The store holds exactly its committed rows and accepts the next valid row after them."""
    assert s.commit() == committed, "a rejected call left rows behind"
    check_writer_rows(s, 0, committed)
    s.append(**row(committed))
    assert s.commit() == committed + 1
    check_writer_rows(s, 0, committed + 1)
    with ReplayStore.open(s.path, "r") as r:
        check_writer_rows(r, 0, committed + 1)


def closed_store(path, rows: int, segment_rows: int = 1024):
    """A cleanly closed store at ``path`` of ``rows`` writer rows (window 1,000, 4 KiB chunks) in
    ``segment_rows``-row segments; returns ``path``."""
    with ReplayStore.create(path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000,
                            chunk_bytes=4096, segment_rows=segment_rows) as s:
        append_writer_rows(s, 0, rows)
    return path


def rss_kb(field: str) -> int:
    """This process's ``field`` (``"RssFile"``, ``"RssAnon"``) from /proc/self/status, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")

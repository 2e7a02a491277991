"""Fixtures and helpers shared by the store tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

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


@pytest.fixture
def store_path(tmp_path) -> Path:
    return tmp_path / "run.h5"


@pytest.fixture
def writer_store(store_path):
    """A store of ``writer_proc``'s schema holding 300 committed rows, open for appending."""
    s = ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=100,
                           commit_seconds=3600.0, chunk_bytes=4096)
    append_writer_rows(s, 0, 300)
    assert s.commit() == 300
    yield s
    s.close()


class WriterProcess:
    """A ``writer_proc`` subprocess whose stdout goes to a file (a pipe left unread would block it)."""

    def __init__(self, path, out: Path, *args: str):
        self.out = out
        self._fh = open(out, "wb")
        self._err = open(f"{out}.err", "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, WRITER_SCRIPT, os.fspath(path), *args],
                                     stdout=self._fh, stderr=self._err, env=env)

    def lines(self) -> list[str]:
        return Path(self.out).read_text().splitlines()

    def wait_ready(self, timeout: float = 60.0) -> int:
        """Block until the writer has its store open; returns the row count it started from."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ls = self.lines()
            if ls and ls[0].startswith("ready "):
                return int(ls[0].split()[1])
            if self.proc.poll() is not None:
                raise AssertionError(f"writer exited with {self.proc.returncode}: {self.stderr()}")
            time.sleep(0.005)
        raise AssertionError("writer did not become ready")

    def stderr(self) -> str:
        return Path(f"{self.out}.err").read_text()

    def reported_commits(self) -> list[int]:
        """Every count the writer printed after commit() returned (a complete last line only)."""
        text = Path(self.out).read_text()
        done = text if text.endswith("\n") else text.rsplit("\n", 1)[0]
        return [int(x) for x in done.splitlines() if x and x[0].isdigit()]

    def wait_for_commits(self, rows: int, poll: float = 0.01) -> None:
        """Block until the writer has reported a commit of at least ``rows`` rows (it must keep running)."""
        while max(self.reported_commits(), default=0) < rows:
            if self.proc.poll() is not None:
                raise AssertionError(f"writer exited early: {self.stderr()}")
            time.sleep(poll)

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL
        self.proc.wait()
        self._fh.close()
        self._err.close()

    def finish(self, timeout: float = 120.0) -> None:
        self.proc.wait(timeout=timeout)
        self._fh.close()
        self._err.close()
        assert self.proc.returncode == 0, f"writer failed ({self.proc.returncode}): {self.stderr()}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self._fh.close()
        self._err.close()


@pytest.fixture
def spawn_writer(tmp_path):
    """Start ``writer_proc`` subprocesses; any still running at teardown are killed."""
    procs: list[WriterProcess] = []

    def spawn(path, *args: str) -> WriterProcess:
        w = WriterProcess(path, tmp_path / f"writer{len(procs)}.out", *args)
        procs.append(w)
        return w

    yield spawn
    for w in procs:
        w.close()

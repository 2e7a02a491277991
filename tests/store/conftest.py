"""Fixtures shared by the store tests (plain helpers are in store_helpers.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from replaystore.store import ReplayStore

from store_helpers import WRITER_SCRIPT, append_writer_rows

import writer_proc


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

"""The change gate (store/files/_watch.py): a sampler skips the per-segment fstat and the record's
lstat while the kernel reports no change, and every change a check was there to catch is still
caught at the next batch: a truncated segment (SIGBUS otherwise), a segment rewritten in place
(checksums), a commit by another process, changes the kernel does not report (the sweep), a
forked child, a process without inotify. Files are changed by other processes where it matters."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from replaystore.store import ReplayStore, Sampler, errors
from replaystore.store.files import _watch
from replaystore.store.files._watch import GATE, ChangeGate
from replaystore.store.format import _segment

import writer_proc
from store_helpers import append_writer_rows, closed_store

HERE = os.path.dirname(__file__)
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def in_child(code: str, *args) -> subprocess.CompletedProcess:
    src = f"import sys; sys.path.insert(0, {HERE!r})\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", src, *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=ENV)


@pytest.fixture
def closed(store_path):
    """2,500 rows in 256-row segments (a window of 1,000 rows: segments 5-9): a batch touches several sealed ones."""
    return closed_store(store_path, 2500, segment_rows=256)


@pytest.fixture
def checks(monkeypatch):
    """How many full checks (fstat) of sealed or unsealed segments ran."""
    n = [0]
    real = _segment.SegmentMap.check

    def counted(self):
        n[0] += 1
        return real(self)

    monkeypatch.setattr(_segment.SegmentMap, "check", counted)
    return n


def test_quiet_batches_check_no_segment_and_a_sweep_checks_them_again(closed, checks, monkeypatch):
    """Once every segment was checked, batches run no fstat while nothing changes; after
    SWEEP_SECONDS every segment counts as changed (what inotify does not report) and is checked."""
    monkeypatch.setattr(_watch, "SWEEP_SECONDS", 3600.0)
    GATE._sweep(time.monotonic_ns())  # the next sweep an hour away
    with Sampler(closed, 64, seed=0) as s:
        for _ in range(60):
            s.sample()
        assert checks[0] > 0
        before = checks[0]
        for _ in range(60):
            s.sample()
        assert before == checks[0], "quiet batches ran full checks"
        GATE._sweep_at = 0  # as if SWEEP_SECONDS had passed
        for _ in range(5):
            s.sample()
        assert checks[0] > before


SHRINK = """
import glob, os, sys, subprocess
from replaystore.store import Sampler, errors
from replaystore.store.tools._compact import compact
path, compacted = sys.argv[1], sys.argv[2] == "compacted"
if compacted:
    compact(path, sealed=True)  # every full segment compacted: mapped too, chunks decompressed as read
segs = sorted(glob.glob(path + ".d/transitions-*.z.h5")) if compacted else [path + ".d/transitions-000007.h5"]
assert segs, os.listdir(path + ".d")
with Sampler(path, 64, seed=0) as s:
    for _ in range(200):  # the gate is quiet; every segment was checked once
        s.sample()
    for seg in segs:  # cut by another process
        subprocess.run([sys.executable, "-c", f"import os; os.truncate({seg!r}, os.path.getsize({seg!r}) // 10)"],
                       check=True)
    try:
        for _ in range(200):
            s.sample()
        print("sampled")
    except errors.TruncatedStoreError as e:
        print("refused", "shrank" in str(e))
"""


@pytest.mark.parametrize("kind", ["raw", "compacted"])
def test_segment_truncated_by_another_process_after_quiet_batches_is_refused(closed, kind):
    """A segment (raw, or compacted: mapped too) cut under a sampler after quiet batches is a
    TruncatedStoreError at the next batch. Run in a child, so a SIGBUS would show as its exit
    status rather than kill the tests."""
    out = in_child(SHRINK, closed, kind)
    assert 0 == out.returncode, f"child died ({out.returncode}): {out.stderr}"
    assert "refused True" == out.stdout.strip()


def test_segment_rewritten_in_place_by_another_process_is_reverified(closed):
    """Same size, other bytes where committed rows are (a backup copied over it): ChecksumError."""
    with ReplayStore.open(closed) as r, Sampler(r, 64, seed=1) as s:
        for _ in range(50):
            s.sample()
        t = r._record.tables["transitions"]
        seg = f"{closed}.d/transitions-000008.h5"
        subprocess.run([sys.executable, "-c", f"import os; fd = os.open({seg!r}, os.O_WRONLY); "
                        f"os.pwrite(fd, bytes(4 * 256), {t.offsets['reward']}); os.close(fd)"], check=True)
        with pytest.raises(errors.ChecksumError, match=r"transitions-000008.*changed after its rows were committed"):
            for _ in range(200):
                s.sample()


def test_commit_by_another_process_is_seen_at_the_next_batch(store_path):
    """The record's lstat is skipped while quiet: a commit (a pwrite of the record) is an event."""
    with ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000) as w:
        append_writer_rows(w, 0, 100)
    with Sampler(store_path, 16, seed=2) as s:
        for _ in range(30):
            s.sample()
        assert (0, 100) == s.rows_in_window
        for stop in (150, 230):
            out = in_child("""
                import sys
                from replaystore.store import ReplayStore
                from store_helpers import append_writer_rows
                with ReplayStore.open(sys.argv[1], "a") as w:
                    append_writer_rows(w, len(w), int(sys.argv[2]))
                    w.commit()
            """, store_path, stop)
            assert 0 == out.returncode, out.stderr
            assert stop - 1 == max(int(s.sample()["row"].max()) for _ in range(60))
            assert (0, stop) == s.rows_in_window


def test_a_forked_child_watches_on_its_own(closed):
    """A forked child does not read its parent's inotify queue: it makes its own, and still sees a
    segment its parent truncates."""
    with Sampler(closed, 64, seed=3) as s:
        for _ in range(20):
            s.sample()
        assert GATE._fd >= 0 and GATE.stamps
        go_r, go_w = os.pipe()
        done_r, done_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: sample with its own gate, wait for the truncation, sample again
            code = 1
            try:
                os.close(go_w)
                os.close(done_r)
                fresh = GATE._fd == -1 and not GATE.stamps
                for _ in range(20):
                    s.sample()
                segs = [m for k, m in s.store._views["transitions"]._cache.items() if k >= 0]
                # its segments watched again, by its own inotify: its watch numbers start at 1 again,
                # so a token of the parent's (the same numbers, other files) must never count
                own = bool(GATE.stamps) and all(m.wd is not None and m.wd >> 32 == GATE._gen for m in segs)
                os.write(done_w, b"x")
                os.read(go_r, 1)
                try:
                    for _ in range(100):
                        s.sample()
                except errors.TruncatedStoreError:
                    code = 0 if fresh and own else 3
            finally:
                os._exit(code)
        os.close(go_r)
        os.close(done_w)
        assert b"x" == os.read(done_r, 1)
        seg = f"{closed}.d/transitions-000006.h5"
        os.truncate(seg, os.path.getsize(seg) // 2)
        os.write(go_w, b"x")
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status), f"child killed by signal {os.WTERMSIG(status)}"
        assert 0 == os.WEXITSTATUS(status)


def test_without_inotify_every_batch_checks(closed, checks, monkeypatch):
    """No gate (not Linux, or the user's inotify instances used up): every batch runs its checks."""
    gate = ChangeGate()
    gate._broken = True
    for mod in ("replaystore.store.format._segment", "replaystore.store.read._views",
                "replaystore.store.read._frames", "replaystore.store.sample._sampling_source"):
        monkeypatch.setattr(sys.modules[mod], "GATE", gate)
    with Sampler(closed, 64, seed=4) as s:
        s.sample()
        before = checks[0]
        for _ in range(10):
            s.sample()
        assert checks[0] >= before + 10


def test_events_are_read_as_the_kernel_writes_them(tmp_path):
    """The parser, fed through a pipe: a write names its watch; an overflow (events lost) changes
    every stamp; IN_IGNORED (the watch gone) leaves the file never quiet again."""
    gate = ChangeGate()
    r, w = os.pipe()
    os.set_blocking(r, False)
    gate._fd = r
    g = gate._gen << 32
    gate.stamps = {g | 1: 0, g | 2: 0, g | 3: 0}
    ev = struct.Struct("iIII")
    os.write(w, ev.pack(2, _watch.IN_MODIFY, 0, 0))
    gate._drain()
    assert gate.stamps[g | 1] == 0 and gate.stamps[g | 3] == 0 and gate.stamps[g | 2] > 0
    os.write(w, ev.pack(-1, _watch.IN_Q_OVERFLOW, 0, 0) + ev.pack(3, _watch.IN_IGNORED, 0, 16) + bytes(16))
    gate._drain()
    assert g | 3 not in gate.stamps
    assert gate.stamps[g | 1] == gate.stamps[g | 2] > 0
    os.close(w)
    os.close(r)


def test_a_file_watched_twice_stays_watched_until_both_let_go(tmp_path):
    """Two mappings of one file share the kernel's watch: closing one keeps the other's."""
    p = tmp_path / "f"
    p.write_bytes(b"x" * 10)
    a, b = os.open(p, os.O_RDONLY), os.open(p, os.O_RDONLY)
    try:
        wa, wb = GATE.watch(a), GATE.watch(b)
        if wa is None:
            pytest.fail("no inotify on this Linux machine: the gate is what this test is about")
        assert wa == wb
        GATE.unwatch(wa)
        assert wb in GATE.stamps
        stamp = GATE.stamps[wb]
        with open(p, "r+b") as f:
            f.write(b"y")
        GATE.poll()
        assert GATE.stamps[wb] != stamp
        GATE.unwatch(wb)
        assert wb not in GATE.stamps
    finally:
        os.close(a)
        os.close(b)


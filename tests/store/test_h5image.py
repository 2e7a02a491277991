"""A full disk at every point of the write path, segment creation included, with real processes
and files: HDF5 files are built in memory (``store/files/_h5image.py``), so a failing write is an
``OSError`` with its real errno, never a crash inside h5py, and the writer goes on once space is back."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from replaystore.store import ReplayStore, errors

import writer_proc
from store_helpers import check_writer_rows

ENV = dict(os.environ, OMP_NUM_THREADS="1")

# One child runs every limit on a fresh store each (a crash kills the child: returncode -11).
# Segments of 1,024 writer rows are 163,872 bytes; limits cluster where HDF5 wrote its last
# metadata (the identity dataset at 163,840), the measured crash, and cover the record and manifest.
SWEEP = """
import resource, signal, sys, shutil
import numpy as np
from replaystore.store import ReplayStore, errors
import writer_proc
from store_helpers import append_writer_rows
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # as a shell with `ulimit -f` does: EFBIG, no signal
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
base, how = sys.argv[1], sys.argv[2]
for limit in map(int, sys.argv[3:]):
    path = f"{base}-{limit}.h5"
    s = ReplayStore.create(path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000,
                           commit_every=10**9, commit_seconds=3600.0, chunk_bytes=4096, segment_rows=1024)
    append_writer_rows(s, 0, 1000)
    s.commit()
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    accepted, errnos = 1000, set()
    size = {"rows": 300, "through": 2048, "row": 1}[how]
    for i in range({"rows": 8, "through": 3, "row": 700}[how]):
        try:
            if how == "row":
                r = writer_proc.given(writer_proc.make_rows(accepted, accepted + 1))
                s.append(**{k: v[0] for k, v in r.items()})
            else:
                append_writer_rows(s, accepted, accepted + size)
            accepted += size
        except OSError as e:   # a full stage, or the commit after the row (then it was accepted)
            assert isinstance(e, errors.StoreWriteError), repr(e)
            errnos.add(e.errno)
            if "were accepted" in str(e) or "was accepted" in str(e):
                accepted += size
        try:
            if how != "row" or i % 64 == 0:
                s.commit()
        except errors.StoreWriteError as e:
            errnos.add(e.errno)
        assert s.actor_counts().sum() == len(s) <= accepted
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))   # space is back: the same writer goes on
    append_writer_rows(s, accepted, accepted + 1500)
    assert s.commit() == accepted + 1500, (s.commit(), accepted + 1500)
    s.close()
    print(limit, accepted + 1500, sorted(errnos), flush=True)
"""

SEG = 163_872
LIMITS = [0, 1, 600, 4096, 20_000, 80_000, SEG - 40_000, SEG - 2_000, SEG - 33, SEG - 32, SEG - 1, SEG, SEG + 1,
          2 * SEG - 1]


@pytest.mark.parametrize("how", ["rows", "through", "row"],
                         ids=["300-row extends", "2048-row extends (written through)", "one-row appends"])
def test_full_disk_at_every_point_raises_errno_and_loses_nothing(tmp_path, how):
    """With the file size limit at many points (segment creation, row writes, checksums, record,
    manifest), every failure is a StoreWriteError with errno 27 (never None, never a crash), and
    once the limit is lifted the same writer extends, commits and closes, keeping every row it accepted."""
    here = os.path.dirname(__file__)
    src = f"import sys; sys.path.insert(0, {here!r})\n" + textwrap.dedent(SWEEP)
    out = subprocess.run([sys.executable, "-c", src, str(tmp_path / "s"), how, *map(str, LIMITS)],
                         capture_output=True, text=True, timeout=300, env=ENV)
    assert 0 == out.returncode, out.stdout + out.stderr[-3000:]
    lines = [ln.split(" ", 2) for ln in out.stdout.splitlines()]
    assert [str(x) for x in LIMITS] == [ln[0] for ln in lines]
    refused = []
    for limit, (_, rows, errnos) in zip(LIMITS, lines):
        assert errnos in ("[]", "[27]"), f"limit {limit}: errnos {errnos}"
        if errnos == "[27]":
            refused.append(limit)
        with ReplayStore.open(tmp_path / f"s-{limit}.h5") as r:
            assert int(rows) == len(r)
            check_writer_rows(r, 0, len(r), where=f"limit {limit}: ")
            assert r.writer_state["died"] is False
        assert not [n for n in os.listdir(tmp_path / f"s-{limit}.h5.d") if n.endswith(".tmp")]
    assert [x for x in LIMITS if x < SEG] == refused   # a segment file cannot be made below its size


def test_huge_segment_rows_is_refused_at_create(store_path):
    """``segment_rows=2**40`` (a segment of tens of TiB) is a clear ValueError at create, naming the
    size and the fix, and leaves nothing behind."""
    with pytest.raises(ValueError, match=r"segment_rows=1099511627776 .* bytes per segment.*at most"):
        ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, segment_rows=2**40)
    assert [] == os.listdir(store_path.parent)


def test_segment_creation_on_a_full_disk_is_an_errno_not_a_crash(store_path):
    """Creating a store whose first segment cannot be written (file size limit below it) raises a
    StoreWriteError with errno 27 in a child process that then exits normally, and the name stays
    free: a create after the limit is lifted succeeds."""
    code = f"""
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from replaystore.store import ReplayStore, errors
import writer_proc
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, hard))
try:
    ReplayStore.create({str(store_path)!r}, writer_proc.SCHEMA, actors=writer_proc.ACTORS, segment_rows=1024,
                       chunk_bytes=4096)
except errors.StoreWriteError as e:
    print("refused", e.errno)
"""
    here = os.path.dirname(__file__)
    out = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {here!r})\n" + textwrap.dedent(code)],
                         capture_output=True, text=True, timeout=60, env=ENV)
    assert (0, "refused 27") == (out.returncode, out.stdout.strip()), out.stderr[-2000:]
    with ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, segment_rows=1024) as s:
        assert 0 == len(s)

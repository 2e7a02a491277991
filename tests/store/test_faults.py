"""Fault injection with real processes and files: a full disk, damaged or stale commit records,
files truncated or copied over under a reader, special files. Every failure is a clear store
error (never a raw h5py/JSON/Unicode error, a hang or a SIGBUS), and no committed row is lost."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from replaystore.store import ReplayStore, errors
from replaystore.store.format._record import read_record_json, record_path, write_record_json

import writer_proc
from store_helpers import append_writer_rows, check_writer_rows, closed_store

ENV = dict(os.environ, OMP_NUM_THREADS="1")


@pytest.fixture
def closed(store_path):
    """A cleanly closed store of 2,500 writer rows in 1,024-row segments."""
    return closed_store(store_path, 2500)


def run_child(code: str, *args, timeout: float = 60) -> subprocess.CompletedProcess:
    here = os.path.dirname(__file__)
    src = f"import sys; sys.path.insert(0, {here!r})\n" + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", src, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


# --------------------------------------------------------------------------- a full disk
FULL_DISK = """
import resource, sys
import numpy as np
from replaystore.store import ReplayStore, errors
import writer_proc
from store_helpers import append_writer_rows
path, limit, more = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = ReplayStore.create(path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000, commit_every=10**9,
                       commit_seconds=3600.0, chunk_bytes=4096, segment_rows=1024)
append_writer_rows(s, 0, 1000)
assert s.commit() == 1000
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))   # files may not grow past `limit` bytes now
append_writer_rows(s, 1000, 1000 + more)                    # accepted (staged)
for attempt in range(2):
    try:
        s.commit()
        raise SystemExit("commit succeeded on a full disk")
    except errors.StoreWriteError as e:
        print("refused", e.errno, isinstance(e, OSError), flush=True)
    assert s.actor_counts().sum() == len(s) == 1000
if sys.argv[4] == "close":  # give up while the disk is still full: close() refuses loudly, releases all
    try:
        s.close()
        raise SystemExit("close succeeded on a full disk")
    except errors.StoreWriteError as e:
        print("close refused", e.errno, s.closed, flush=True)
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    s = ReplayStore.open(path, "a")   # the lock was released; the last commit is what is kept
    assert len(s) == 1000 and s.actor_counts().sum() == 1000
    append_writer_rows(s, 1000, 1000 + more)
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))    # space is back
assert s.commit() == 1000 + more, len(s)
assert s.actor_counts().tolist() == np.bincount(np.arange(1000 + more) % 3).tolist()
s.close()
print("ok", flush=True)
"""


@pytest.mark.parametrize("limit, more", [(1024, 20), (20_000, 1000)],
                         ids=["record cannot be written", "segment cannot be created"])
@pytest.mark.parametrize("then", ["retry", "close"])
def test_full_disk_refuses_then_a_retry_keeps_every_accepted_row(store_path, limit, more, then):
    """With the file size limit hit (errno 27) a commit raises StoreWriteError, twice; once space is
    back the retried commit keeps every accepted row, counts equal rows, and close() is clean. A
    close() while the disk is still full raises too, releases the store, and keeps the last commit."""
    out = run_child(FULL_DISK, store_path, limit, more, then)
    assert 0 == out.returncode, out.stdout + out.stderr
    expect = ["refused 27 True", "refused 27 True"] + (["close refused 27 True"] if then == "close" else []) + ["ok"]
    assert expect == out.stdout.split("\n")[:len(expect)]
    with ReplayStore.open(store_path) as r:
        assert 1000 + more == len(r)
        check_writer_rows(r, 0, 1000 + more)
        assert r.writer_state["died"] is False
    assert not [n for n in os.listdir(f"{store_path}.d") if n.endswith(".tmp")]


# --------------------------------------------------------------------------- damaged records
def test_bit_flips_in_the_record_never_give_raw_errors(closed):
    """200 single-bit flips in the record's header and slots: every open gives the committed rows bit
    for bit (the other slot or the manifest's last clean close stands in) or a store error; never
    JSON/Unicode/Key errors."""
    rp = record_path(closed)
    good = open(rp, "rb").read()
    used = [i for i in range(len(good)) if good[i]] + list(range(64))  # header and written slot bytes
    rng = random.Random(5)
    opened = 0
    for _ in range(200):
        bad = bytearray(good)
        i = rng.choice(used)
        bad[i] ^= 1 << rng.randrange(8)
        with open(rp, "wb") as f:
            f.write(bad)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                r = ReplayStore.open(closed)
        except errors.StoreError:
            continue
        with r:
            assert 2500 == len(r), f"flip at byte {i}"
            check_writer_rows(r, 0, 2500, f"flip at byte {i}: ")
            opened += 1
    assert opened > 150  # the clean close covers nearly every flip
    with open(rp, "wb") as f:
        f.write(good)


def test_record_past_the_written_rows_is_not_trusted(closed):
    """A record claiming more rows than were written (and checksummed) gives way to the clean close."""
    d = read_record_json(closed)
    d["tables"]["transitions"]["rows"] += 300
    d["actor_counts"][0] += 300
    write_record_json(closed, d)
    with pytest.warns(RuntimeWarning, match=r"damaged .*disagree with the checksums.*last clean close"):
        r = ReplayStore.open(closed)
    with r:
        assert 2500 == len(r)
        check_writer_rows(r, 0, 2500)


def test_stale_record_never_truncates_cleanly_closed_rows(closed):
    """An old .commit restored after more rows were committed and the store closed cleanly: readers
    and writers keep every row (the manifest's clean close wins), and appending continues after them."""
    rp = record_path(closed)
    old = open(rp, "rb").read()
    with ReplayStore.open(closed, "a") as s:
        append_writer_rows(s, 2500, 3300)
    open(rp, "wb").write(old)  # "restore from backup"
    with pytest.warns(RuntimeWarning, match=r"older .* than the store's last clean close"):
        r = ReplayStore.open(closed)
    with r:
        assert 3300 == len(r)
        check_writer_rows(r, 0, 3300)
    with pytest.warns(RuntimeWarning, match="older"):
        s = ReplayStore.open(closed, "a")
    with s:
        assert 3300 == len(s)
        append_writer_rows(s, 3300, 3310)
    with ReplayStore.open(closed) as r:
        check_writer_rows(r, 0, 3310)


def test_foreign_record_is_not_trusted(closed, tmp_path):
    """Another store's .commit beside this file is ignored in favour of this store's clean close."""
    other = tmp_path / "other.h5"
    with ReplayStore.create(other, writer_proc.SCHEMA, actors=writer_proc.ACTORS) as s:
        append_writer_rows(s, 0, 10)
    shutil.copyfile(record_path(other), record_path(closed))
    with pytest.warns(RuntimeWarning, match="belongs to another store"):
        r = ReplayStore.open(closed)
    with r:
        assert 2500 == len(r)


def test_missing_record_after_a_dead_writer_refuses_to_append(store_path):
    """Record gone and the last writer killed: appending is refused (rows may be missing), reading
    gives the last clean close with a warning."""
    out = run_child("""
        import os, signal, sys
        from replaystore.store import ReplayStore
        import writer_proc
        from store_helpers import append_writer_rows
        s = ReplayStore.create(sys.argv[1], writer_proc.SCHEMA, actors=writer_proc.ACTORS, segment_rows=1024)
        append_writer_rows(s, 0, 50)
        s.commit()
        os.kill(os.getpid(), signal.SIGKILL)
    """, store_path)
    assert -9 == out.returncode, out.stderr
    os.remove(record_path(store_path))
    with pytest.raises(errors.DamagedStoreError, match=r"did not close cleanly.*Refusing to append"):
        ReplayStore.open(store_path, "a")
    with pytest.warns(RuntimeWarning, match="did not close cleanly"):
        ReplayStore.open(store_path).close()


def test_hard_link_does_not_open_anothers_rows(closed, tmp_path):
    """A hard link to the store's file has no segment folder: opening it is a clear error and the
    original store is untouched."""
    link = tmp_path / "link.h5"
    os.link(closed, link)
    for mode in ("r", "a"):
        with pytest.raises(errors.StoreError):
            ReplayStore.open(link, mode)
    with ReplayStore.open(closed) as r:
        assert 2500 == len(r)


def test_fifo_at_the_record_path_does_not_hang(closed):
    """A FIFO named <store>.commit: open() answers at once (clean close used) in a child with a timeout."""
    rp = record_path(closed)
    os.remove(rp)
    os.mkfifo(rp)
    out = run_child("""
        import sys, warnings
        from replaystore.store import ReplayStore
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            with ReplayStore.open(sys.argv[1]) as r:
                print(len(r), any("not a regular file" in str(x.message) for x in w))
    """, closed, timeout=60)
    assert 0 == out.returncode, out.stderr
    assert "2500 True" == out.stdout.strip()


def test_special_file_at_the_store_path(tmp_path):
    """A FIFO at the store's own path is refused as not a store, without hanging."""
    p = tmp_path / "fifo.h5"
    os.mkfifo(p)
    with pytest.raises(errors.NotAStoreError, match="not a regular file"):
        ReplayStore.open(p)


# --------------------------------------------------------------------------- files changed under a reader
def test_segment_shrunk_under_a_reader_is_an_error_not_sigbus(closed):
    """A segment truncated while a reader maps it: the next read raises TruncatedStoreError (run in a
    child, so a SIGBUS would show as its exit status)."""
    out = run_child("""
        import os, sys
        from replaystore.store import ReplayStore, errors
        path = sys.argv[1]
        r = ReplayStore.open(path)
        r.read(start=0, stop=2500)
        seg = path + ".d/transitions-000001.h5"
        os.truncate(seg, os.path.getsize(seg) // 3)
        for call in (lambda: r.read(start=1000, stop=2500), lambda: r.gather([1500]), lambda: r.read(start=0, stop=5)):
            try:
                call()
                print("read")
            except errors.TruncatedStoreError as e:
                print("refused", "shrank" in str(e))
    """, closed)
    assert 0 == out.returncode, f"child died ({out.returncode}): {out.stderr}"
    assert ["refused True", "refused True", "read"] == out.stdout.splitlines()


def test_backup_copied_over_a_segment_under_a_reader(closed, tmp_path):
    """`cp backup seg` over a full segment a reader has mapped: the reader refuses the changed rows
    (their checksums no longer match) instead of returning the backup's bytes or zeros."""
    seg = f"{closed}.d/transitions-000001.h5"
    backup = tmp_path / "backup.h5"
    shutil.copyfile(seg, backup)
    with ReplayStore.open(closed) as r:
        before = r.read(start=1024, stop=2048)
        with open(backup, "r+b") as f:  # an older backup: other bytes where the rows are
            t = r._record.tables["transitions"]
            f.seek(t.offsets["reward"])
            f.write(np.zeros(1024, "f4").tobytes())
        os.utime(seg, ns=(0, 0))
        shutil.copyfile(backup, seg)  # in place: same inode, new bytes
        with pytest.raises(errors.ChecksumError, match=r"changed after its rows were committed.*'reward'"):
            r.read(start=1024, stop=2048)
    shutil.copyfile(tmp_path / "backup.h5", seg)
    os.remove(backup)
    assert before["row_id"].tolist() == list(range(1024, 2048))


def test_actor_names_as_bytes(store_path):
    """Names given as UTF-8 bytes are names; bytes that are not UTF-8 are a clear UnknownActorError."""
    with ReplayStore.create(store_path, writer_proc.SCHEMA, actors=[b"expert", "dqn", "random"]) as s:
        assert ("expert", "dqn", "random") == s.actors.names
        b = writer_proc.given(writer_proc.make_rows(0, 3))
        b["actor"] = [b"dqn", b"expert", b"dqn"]
        s.extend(b)
        b = writer_proc.given(writer_proc.make_rows(3, 4))
        b["actor"] = [b"\xff\xfe"]
        with pytest.raises(errors.UnknownActorError, match="not UTF-8"):
            s.extend(b)
        assert s.commit() == 3
        assert [1, 0, 1] == s.read(["actor"])["actor"].tolist()


def test_opening_marks_the_manifest_only_at_the_first_commit_that_changes_something(closed):
    """Opening for append leaves the manifest as it is (fast); the first commit with new rows marks it
    "writer open" before its record, so a damaged record after that is refused, not silently replaced."""
    import h5py

    before = os.stat(closed).st_ino
    s = ReplayStore.open(closed, "a")
    try:
        assert before == os.stat(closed).st_ino
        s.commit()  # nothing new: still no rewrite
        assert before == os.stat(closed).st_ino
        append_writer_rows(s, 2500, 2600)
        s.commit()
        assert before != os.stat(closed).st_ino
        with h5py.File(closed, "r") as f:
            assert "open" == json.loads(f.attrs["session"])["state"]
    finally:
        s.close()


def test_dead_writer_that_committed_nothing_loses_nothing(store_path):
    """A writer killed after opening, with no commit of its own, then its record lost: the last clean
    close holds every row, and appending goes on from it."""
    closed_store(store_path, 1500)
    out = run_child("""
        import os, signal, sys
        from replaystore.store import ReplayStore
        s = ReplayStore.open(sys.argv[1], "a")
        os.kill(os.getpid(), signal.SIGKILL)
    """, store_path)
    assert -9 == out.returncode, out.stderr
    os.remove(record_path(store_path))
    with ReplayStore.open(store_path, "a") as s:
        assert 1500 == len(s)
        append_writer_rows(s, 1500, 1600)
    with ReplayStore.open(store_path) as r:
        assert list(range(1600)) == r.read(["row_id"])["row_id"].tolist()

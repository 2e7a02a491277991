"""`replaystore compact`: sealed segments rewritten compressed (blosc, gzip, lzf), read back identically."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replaystore.store import FrameStack, ReplayStore, Sampler, Schema, errors
from replaystore.store.read import _archive
from replaystore.store.read._archive import archive_cache_bytes
from replaystore.store.format._codec import CHUNK_BYTES
from replaystore.store.tools._compact import compact, compact_tables
from replaystore.store.tools._verify import verify

import writer_proc
from store_helpers import append_writer_rows, check_writer_rows, closed_store


@pytest.fixture
def old_store(store_path):
    """6,000 writer rows, window 1,000, 1,024-row segments: segments 0-3 lie wholly before the window."""
    return closed_store(store_path, 6000)


def _allocated(path) -> int:
    return sum(os.stat(os.path.join(f"{path}.d", n)).st_blocks * 512 for n in os.listdir(f"{path}.d"))


@pytest.mark.parametrize("flag,filter", [("--codec", "blosc-lz4"), ("--codec", "blosc-zstd"), ("--filter", "gzip"),
                                         ("--codec", "lzf")])
def test_compact_keeps_every_row_and_shrinks_the_old_segments(old_store, flag, filter):
    """Compacting rewrites segments 0-3 compressed, deletes the raw ones, and every read, gather,
    verify, composition and stock-h5py read (hdf5plugin imported) gives what it gave before;
    appending goes on."""
    import hdf5plugin  # noqa: F401  stock h5py reads Blosc chunks once it is imported

    with ReplayStore.open(old_store) as r:
        before = r.read()
        comp = r.actor_composition(window=False)
    size = _allocated(old_store)
    out = subprocess.run([sys.executable, "-m", "replaystore", "compact", str(old_store), flag, filter],
                         capture_output=True, text=True)
    assert 0 == out.returncode, out.stderr
    assert "compacted 4 segment(s)" in out.stdout
    names = sorted(os.listdir(f"{old_store}.d"))
    assert [f"transitions-{k:06d}.z.h5" for k in range(4)] == [n for n in names if n.endswith(".z.h5")]
    assert not any(f"transitions-{k:06d}.h5" in names for k in range(4))
    with h5py.File(os.path.join(f"{old_store}.d", "transitions-000000.z.h5"), "r") as f:
        assert filter == f.attrs["codec"]
    assert _allocated(old_store) < size
    with ReplayStore.open(old_store) as r:
        after = r.read()
        assert all(before[c].tobytes() == after[c].tobytes() for c in before)
        rows = np.array([0, 1023, 1024, 4095, 4096, 5999, 17])
        np.testing.assert_array_equal(rows, r.gather(rows, ["row_id"])["row_id"])
        assert comp == r.actor_composition(window=False)
        assert [] == verify(r)
        with Sampler(r, 64, seed=0, as_torch=False) as sm:
            assert (sm.sample()["row"] >= 5000).all()
    with h5py.File(old_store, "r") as f:
        np.testing.assert_array_equal(before["row_id"], f["transitions/row_id"][:])
        assert f["transitions/state"].is_virtual
    with ReplayStore.open(old_store, "a") as s:
        append_writer_rows(s, 6000, 6100)
    with ReplayStore.open(old_store) as r:
        check_writer_rows(r, 0, 6100)
    assert [] == compact(old_store)  # nothing new before the window: nothing to do


def test_compact_refuses_a_live_writer(old_store):
    """compact takes the writer lock: with a writer open it is a StoreLockedError, nothing changed."""
    with ReplayStore.open(old_store, "a"):
        with pytest.raises(errors.StoreLockedError, match="one writer at a time"):
            compact(old_store)
    assert not [n for n in os.listdir(f"{old_store}.d") if n.endswith(".z.h5")]


def test_compact_then_retention_deletes_compacted_segments(store_path):
    """Retention deletes compacted segments like raw ones."""
    with ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1024,
                            chunk_bytes=4096, segment_rows=1024, retain=4096) as s:
        append_writer_rows(s, 0, 4096)
    assert [0, 1, 2] == compact(store_path)
    with ReplayStore.open(store_path, "a") as s:
        append_writer_rows(s, 4096, 8192)
    names = os.listdir(f"{store_path}.d")
    assert not [n for n in names if any(n.startswith(f"transitions-{k:06d}.") for k in range(4))], names
    with ReplayStore.open(store_path) as r:
        check_writer_rows(r, r._record.tables["transitions"].first_row, 8192)


def _frames_store(path, steps=1500):
    """A frames-once store of 16x16 frames (3 interleaved envs), 256-row segments, window 256:
    rows and frames fill several sealed segments."""
    from frames_helpers import rollout

    rows = rollout(5, steps // 3, envs=3, size=16)
    schema = Schema.transition(rows["state"].shape[1:], state_dtype="uint8")
    with ReplayStore.create(path, schema, actors=("expert", "dqn"), window=256, segment_rows=256,
                            frames=FrameStack(4)) as s:
        s.extend(rows)
    return rows


def test_sealed_frames_once_store_samples_reads_verifies_and_exports_the_same(tmp_path):
    """``compact --sealed`` on a frames-once store compresses every full segment of both tables
    (frames too); reads, gathers, sampler batches and the Parquet export equal those of the
    uncompressed store, verify finds nothing, and stock h5py reads the compacted frames."""
    import hdf5plugin  # noqa: F401
    import pyarrow.parquet as pq

    from replaystore.analysis import export_parquet

    path = tmp_path / "framed.h5"
    rows = _frames_store(path)
    with ReplayStore.open(path) as r:
        before = r.read()
        frames = r.read_table("frames")["frame"]
        with Sampler(r, 64, seed=3, as_torch=False) as sm:
            batches = [sm.sample() for _ in range(4)]
    raw = pq.read_table([f.path for f in export_parquet(path, str(tmp_path / "raw"), progress=False)]).to_pydict()
    assert {"transitions": [0, 1, 2, 3, 4], "frames": [0, 1, 2, 3, 4, 5]} == compact_tables(path, sealed=True)
    names = os.listdir(f"{path}.d")
    assert "frames-000005.z.h5" in names and "frames-000005.h5" not in names
    with ReplayStore.open(path) as r:
        after = r.read()
        for c in before:
            assert before[c].tobytes() == after[c].tobytes(), c
        assert rows["state"].tobytes() == after["state"].tobytes()
        idx = np.array([1400, 3, 700, 255, 256, 1299, 3])  # unsorted, repeated, across segments
        got = r.gather(idx, ["state", "next_state"])
        np.testing.assert_array_equal(rows["next_state"][idx], got["next_state"])
        with Sampler(r, 64, seed=3, as_torch=False) as sm:
            for want in batches:
                got = sm.sample()
                for c in want:
                    np.testing.assert_array_equal(want[c], got[c], err_msg=c)
        assert [] == verify(r)
    packed = pq.read_table([f.path for f in export_parquet(path, str(tmp_path / "z"), progress=False)]).to_pydict()
    assert raw == packed
    with h5py.File(os.path.join(f"{path}.d", "frames-000001.z.h5"), "r") as f:
        assert "blosc-lz4" == f.attrs["codec"]
        np.testing.assert_array_equal(frames[256:512], f["frame"][:])


def test_default_compaction_of_a_frames_once_store_keeps_the_window_raw(tmp_path):
    """Without --sealed, the frames a window row names stay raw (the sampler maps them) and the
    frames before the first of them are compacted."""
    path = tmp_path / "framed.h5"
    _frames_store(path)
    with ReplayStore.open(path) as r:
        ids = r._views["transitions"]._t.read(["state_frames", "next_state_frames"], len(r) - r.window, len(r))
        first = min(int(v.min()) for v in ids.values())
    done = compact_tables(path)
    assert list(range(first // 256)) == done["frames"]
    assert [0, 1, 2, 3] == done["transitions"]  # 1,500 rows, window 256: segments 0-3 lie before it
    with ReplayStore.open(path) as r:
        assert [] == verify(r)


def test_reading_compacted_rows_stays_within_the_chunk_cache_budget(tmp_path):
    """Gathers over every compacted segment keep at most the cache budget of decompressed chunks
    (plus one chunk), and a budget that is not a positive int is refused."""
    path = tmp_path / "framed.h5"
    rows = _frames_store(path)
    compact_tables(path, sealed=True)
    old = archive_cache_bytes()
    try:
        archive_cache_bytes(64 << 10)
        with ReplayStore.open(path) as r:
            for seed in range(5):
                idx = np.sort(np.random.default_rng(seed).integers(0, 1500, 200))
                np.testing.assert_array_equal(rows["state"][idx], r.gather(idx, ["state"])["state"])
                assert _archive._CACHE.used <= (64 << 10) + CHUNK_BYTES
        assert 0 == _archive._CACHE.used  # closing the store dropped its chunks
        for bad in (0, -1, 1.5, True):
            with pytest.raises(ValueError, match="expected a positive number of bytes"):
                archive_cache_bytes(bad)
    finally:
        archive_cache_bytes(old)


def _resident_bytes(slab) -> int:
    """Bytes of ``slab``'s mapping in memory now (mincore), whatever the cache's own count says."""
    import ctypes
    import mmap

    libc = ctypes.CDLL(None, use_errno=True)
    length = slab.data.nbytes
    vec = (ctypes.c_ubyte * (-(-length // mmap.PAGESIZE)))()
    assert 0 == libc.mincore(ctypes.c_void_p(slab.data.ctypes.data), ctypes.c_size_t(length), vec), ctypes.get_errno()
    return sum(b & 1 for b in vec) * mmap.PAGESIZE


def test_sampling_an_archive_larger_than_the_cache_keeps_memory_within_the_budget(tmp_path):
    """Sampling a compacted frames-once store whose decompressed chunks are ~6x the budget, with
    gathers of unsorted rows and a slice read between batches: batches stay right, the cache counts
    at most the budget, and the pages its slabs hold in memory (mincore, not the cache's count)
    stay within the budget plus a page per slab."""
    import mmap

    path = tmp_path / "framed.h5"
    rows = _frames_store(path, 6000)
    compact_tables(path, sealed=True)
    budget = 256 << 10
    old = archive_cache_bytes()
    try:
        archive_cache_bytes(budget)
        with ReplayStore.open(path) as r:
            archive = sum(c.nbytes * c.n_chunks for name in ("transitions", "frames")
                          for k in sorted(r._views[name]._compacted)
                          for c in getattr(r._views[name], "_t", r._views[name]).segment(k).arrays.values()
                          if isinstance(c, _archive.ArchiveColumn))  # narrow columns are mapped in place
            assert archive > 5 * budget
            with Sampler(r, 64, seed=1, as_torch=False) as sm:
                for i in range(60):
                    got = sm.sample()
                    np.testing.assert_array_equal(rows["state"][got["row"]], got["state"])
                    idx = np.random.default_rng(i).integers(0, len(r), 50)
                    np.testing.assert_array_equal(rows["next_state"][idx], r.gather(idx, ["next_state"])["next_state"])
                    lo = (i * 97) % (len(r) - 300)
                    np.testing.assert_array_equal(rows["reward"][lo:lo + 300], r.read(["reward"], lo, lo + 300)["reward"])
                    assert _archive._CACHE.used <= budget
                    slabs = list(_archive._CACHE._slabs.values())
                    assert sum(map(_resident_bytes, slabs)) <= budget + len(slabs) * mmap.PAGESIZE, [(s.nbytes, s.cap, s.top, s.n, len(s.free), _resident_bytes(s)) for s in slabs]
    finally:
        archive_cache_bytes(old)


def test_threads_gathering_from_compacted_segments_under_evictions_get_their_own_rows(tmp_path):
    """Four threads gather and slice a compacted store at once with a budget of a few chunks, so
    slots are evicted and reused by other threads' chunks all the time: every result equals the
    rows written."""
    import threading

    path = tmp_path / "framed.h5"
    rows = _frames_store(path, 3000)
    compact_tables(path, sealed=True)
    old = archive_cache_bytes()
    errors_seen = []
    try:
        archive_cache_bytes(200 << 10)
        with ReplayStore.open(path) as r:
            n = len(r)

            def work(seed):
                try:
                    rng = np.random.default_rng(seed)
                    for _ in range(40):
                        idx = np.sort(rng.integers(0, n, 64))
                        got = r.gather(idx, ["state", "next_state", "reward"])
                        for c in got:
                            np.testing.assert_array_equal(rows[c][idx], got[c], err_msg=c)
                        lo = int(rng.integers(0, n - 500))
                        np.testing.assert_array_equal(rows["state"][lo:lo + 500], r.read(["state"], lo, lo + 500)["state"])
                except Exception as e:  # noqa: BLE001  reported by the main thread
                    errors_seen.append(e)

            threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert _archive._CACHE.used <= 200 << 10
    finally:
        archive_cache_bytes(old)
    assert [] == errors_seen


def test_a_damaged_compressed_chunk_is_named_by_verify(tmp_path):
    """A chunk whose blosc header claims another size is refused with DamagedStoreError on read, and
    verify names its segment's rows; the other segments still read."""
    path = tmp_path / "framed.h5"
    rows = _frames_store(path)
    compact_tables(path, sealed=True)
    seg = os.path.join(f"{path}.d", "transitions-000001.z.h5")
    with h5py.File(seg, "r") as f:
        info = f["done"].id.get_chunk_info(0)
    with open(seg, "r+b") as f:  # nbytes in the header: 4 bytes at offset 4
        f.seek(info.byte_offset + 4)
        f.write((1 << 30).to_bytes(4, "little"))
    with ReplayStore.open(path) as r:
        with pytest.raises(errors.DamagedStoreError, match="claims 1073741824 bytes"):
            r.read(["done"], 256, 300)
        np.testing.assert_array_equal(rows["done"][:256], r.read(["done"], 0, 256)["done"])
        found = verify(r)
    assert [[256, 512]] == [f["rows"] for f in found]


def test_a_blosc_codec_without_the_archive_extra_names_it(tmp_path, monkeypatch):
    """Without hdf5plugin, compact --codec blosc-lz4 fails in one line naming the [archive] extra,
    before it changes anything; an unknown codec is a ValueError listing the codecs."""
    import importlib.util

    from replaystore.common.extras import EXTRAS
    from replaystore.store.format._codec import ARCHIVE_MODULES

    assert ARCHIVE_MODULES == EXTRAS["archive"]  # store/ cannot import common/: the two lists agree
    path = closed_store(tmp_path / "run.h5", 2500)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda m, *a: None if m == "hdf5plugin" else real(m, *a))
    with pytest.raises(errors.ArchiveExtraError, match=r"needs the \[archive\] extra \(hdf5plugin is not installed\)"):
        compact(path, "blosc-lz4")
    out = subprocess.run([sys.executable, "-c", "import importlib.util as u, sys; real = u.find_spec; "
                          "u.find_spec = lambda m, *a: None if m == 'hdf5plugin' else real(m, *a); "
                          "from replaystore.cli import main; sys.exit(main(['compact', sys.argv[1]]))", str(path)],
                         capture_output=True, text=True)
    assert 2 == out.returncode
    assert "needs the [archive] extra (hdf5plugin is not installed): pip install 'replaystore[archive]'" in out.stderr
    assert 1 == len(out.stderr.strip().splitlines())
    with pytest.raises(ValueError, match="expected one of"):
        compact(path, "zip")
    assert not [n for n in os.listdir(f"{path}.d") if ".z.h5" in n]


@pytest.mark.parametrize("at", [".z.h5.tmp", ".z.h5"])
def test_kill_9_during_compaction_leaves_a_readable_store(tmp_path, at):
    """A compaction killed (SIGKILL) once its first temporary or its first finished compacted file
    appears leaves a store whose every row reads as before and verifies; compacting again finishes."""
    path = tmp_path / "framed.h5"
    _frames_store(path, 3000)
    with ReplayStore.open(path) as r:
        before = r.read()
    proc = subprocess.Popen([sys.executable, "-m", "replaystore", "compact", str(path), "--sealed"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while proc.poll() is None and not any(n.endswith(at) for n in os.listdir(f"{path}.d")):
            time.sleep(0.0005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert -signal.SIGKILL == proc.returncode, proc.stderr.read()
    with ReplayStore.open(path) as r:
        after = r.read()
        assert all(before[c].tobytes() == after[c].tobytes() for c in before)
        assert [] == verify(r)
    assert compact_tables(path, sealed=True)["frames"]
    with ReplayStore.open(path) as r:
        after = r.read()
        assert all(before[c].tobytes() == after[c].tobytes() for c in before)
        assert [] == verify(r)


@pytest.fixture(scope="module")
def packed_columns(tmp_path_factory):
    """A store of 2,500 writer rows compacted with --sealed (segments 0 and 1, blosc-lz4) in 256-byte
    chunks (16-64 rows: many per segment), its rows read before compaction, and the store open on
    the compacted segments."""
    from replaystore.store.format import _codec

    path = closed_store(tmp_path_factory.mktemp("packed") / "run.h5", 2500)
    with ReplayStore.open(path) as r:
        want = r.read(None, 0, 2048)
    chunk, _codec.CHUNK_BYTES = _codec.CHUNK_BYTES, 256
    try:
        assert [0, 1] == compact(path, sealed=True)
    finally:
        _codec.CHUNK_BYTES = chunk
    with ReplayStore.open(path) as r:
        yield want, r


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2047), max_size=300), st.integers(0, 2048), st.integers(0, 2048),
       st.sampled_from(["state", "reward", "row_id", "continuous_action"]), st.sampled_from([1 << 20, 1 << 12]))
def test_compacted_gathers_and_slices_equal_the_raw_rows(packed_columns, rows, lo, hi, column, budget):
    """Any gather (unsorted, repeated, across both segments) and any slice of a compacted column
    equals the same rows read before compaction, with a cache that holds everything or one chunk."""
    want, r = packed_columns
    old = archive_cache_bytes()
    try:
        archive_cache_bytes(budget)
        idx = np.array(rows, np.int64)
        np.testing.assert_array_equal(want[column][idx], r.gather(idx, [column])[column])
        lo, hi = min(lo, hi), max(lo, hi)
        np.testing.assert_array_equal(want[column][lo:hi], r.read([column], lo, hi)[column])
        col = r._views["transitions"].segment(0).arrays[column]
        assert col.n_chunks >= 16
        local = idx[idx < 1024]
        np.testing.assert_array_equal(want[column][local], np.take(col, local, axis=0))  # numpy's own take
    finally:
        archive_cache_bytes(old)


def test_take_out_of_range_raises_index_error(packed_columns):
    """A compacted column's take with numpy's default mode refuses a row outside the segment, naming it."""
    _, r = packed_columns
    col = r._views["transitions"].segment(0).arrays["reward"]
    with pytest.raises(IndexError, match="rows 0..1024 of column 'reward' lie outside its 1024 rows"):
        col.take(np.array([0, 1024]))


def test_a_truncated_compacted_segment_is_refused_not_read_past_its_end(tmp_path):
    """A compacted segment cut to half its length (its chunks indexed past the end of the file)
    is refused with DamagedStoreError on read, and verify names its rows; no byte past the file
    is mapped or read."""
    path = tmp_path / "framed.h5"
    _frames_store(path)
    compact_tables(path, sealed=True)
    seg = os.path.join(f"{path}.d", "frames-000002.z.h5")
    os.truncate(seg, os.path.getsize(seg) // 2)
    with ReplayStore.open(path) as r:
        with pytest.raises(errors.DamagedStoreError, match="frames-000002.z.h5"):
            r.read_table("frames", ["frame"], 512, 520)
        assert [[512, 768]] == [f["rows"] for f in verify(r) if f["table"] == "frames"]

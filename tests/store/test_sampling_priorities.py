"""Prioritized-replay priorities in ``<store>.priorities``: round trips, damage, foreign files, kill -9."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from replaystore.store import ReplayStore, Sampler, Schema
from replaystore.store.sample._sampling_priorities import PriorityFile, sidecar_path
from replaystore.store.errors import SamplerError

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Schema.transition((1,))
ACTORS = ("expert", "dqn")


def make_store(path, rows: int, window: int) -> None:
    with ReplayStore.create(path, SCHEMA, actors=ACTORS, window=window, commit_every=10**9) as s:
        s.extend({"actor": np.arange(rows) % 2, "state": np.zeros((rows, 1), "f4"),
                  "next_state": np.zeros((rows, 1), "f4"), "discrete_action": np.zeros(rows, "i4"),
                  "continuous_action": np.zeros((rows, 0), "f4"), "reward": np.zeros(rows, "f4"),
                  "done": np.zeros(rows, bool)})


@pytest.fixture
def saved(tmp_path):
    """A 300-row store (window 200) whose writer-side sampler saved priorities 1 + row % 7 and closed."""
    path = tmp_path / "run.h5"
    make_store(path, 300, 200)
    with ReplayStore.open(path, "a") as w, Sampler(w, 32, strategy="prioritized", seed=0) as sm:
        sm.sample()
        rows = np.arange(100, 300)
        sm.update_priorities(rows, 1.0 + rows % 7)
    return path


def reader_priorities(path) -> np.ndarray:
    with Sampler(path, 8, strategy="prioritized", seed=0) as r:
        return r.priorities(np.arange(100, 300))


def test_saved_priorities_load_in_a_reader(saved):
    """A reader's prioritized sampler loads what the writer's saved, with no warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = reader_priorities(saved)
    np.testing.assert_array_equal(got, 1.0 + np.arange(100, 300) % 7)


def test_a_reader_never_writes_the_file(saved):
    """A reader's updates stay in memory: the file's bytes do not change."""
    before = Path(sidecar_path(saved)).read_bytes()
    with Sampler(saved, 8, strategy="prioritized", seed=0) as r:
        r.sample()
        r.update_priorities(np.array([150]), np.array([40.0]))
        assert r.priorities(np.array([150])).tolist() == [40.0]
    assert Path(sidecar_path(saved)).read_bytes() == before


def test_newest_slot_wins_and_a_torn_one_falls_back(tmp_path):
    """Saves alternate slots; flipping a byte in the newest slot's data brings back the save before."""
    path = os.fspath(tmp_path / "p")
    f = PriorityFile(path, "u-1", 8, writable=True)
    assert f.load() is None
    for k in (1, 2, 3):
        f.save(np.full(8, float(k)), rows=8, max_priority=k)
    f.close()
    got = PriorityFile(path, "u-1", 8, writable=False).load()
    assert (got.seq, got.raw.tolist(), got.max_priority) == (3, [3.0] * 8, 3.0)
    data_of_slot_1 = 4096 + 64  # seq 3 lives in slot 1 (seq % 2)
    with open(path, "r+b") as fh:
        fh.seek(data_of_slot_1 + 4096 + 5)
        byte = fh.read(1)
        fh.seek(data_of_slot_1 + 4096 + 5)
        fh.write(bytes([byte[0] ^ 0x10]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = PriorityFile(path, "u-1", 8, writable=False).load()
    assert (got.seq, got.raw.tolist()) == (2, [2.0] * 8)


@pytest.mark.parametrize("damage, match", [
    ("flip_header", r"is damaged \(its header checksum does not match\)"),
    ("flip_both_slots", r"is damaged \(no slot with a valid checksum\)"),
    ("truncate", r"is damaged \(truncated to"),
    ("garbage", r"is not a replaystore priority file"),
    ("directory", r"is not a regular file"),
])
def test_damaged_file_warns_and_restarts_at_max(saved, damage, match):
    """Each kind of damage gives a RuntimeWarning naming it, then every row at the max priority (1.0)."""
    side = Path(sidecar_path(saved))
    raw = bytearray(side.read_bytes())
    if damage == "flip_header":
        raw[20] ^= 0x01
    elif damage == "flip_both_slots":
        raw[4096 + 64 + 8] ^= 0x01
        slot_bytes = -(-(64 + 4 * 200) // 4096) * 4096
        raw[4096 + slot_bytes + 64 + 8] ^= 0x01
    elif damage == "truncate":
        raw = raw[:5000]
    elif damage == "garbage":
        raw = bytearray(b"not priorities" * 100)
    if damage == "directory":
        side.unlink()
        side.mkdir()
    else:
        side.write_bytes(bytes(raw))
    with pytest.warns(RuntimeWarning, match=match + r".*starts every row at the maximum priority"):
        got = reader_priorities(saved)
    np.testing.assert_array_equal(got, np.ones(200))


def test_foreign_file_is_refused_then_replaced_by_the_writer(saved, tmp_path):
    """Another store's priority file warns (both uuids named); the writer then makes it its own."""
    other = tmp_path / "other.h5"
    make_store(other, 300, 200)
    shutil.copyfile(sidecar_path(saved), sidecar_path(other))
    with pytest.warns(RuntimeWarning, match=r"belongs to another store \(uuid .*, this store's is"):
        got = reader_priorities(other)
    np.testing.assert_array_equal(got, np.ones(200))
    with ReplayStore.open(other, "a") as w:
        with pytest.warns(RuntimeWarning, match="belongs to another store.*and overwrites that file"):
            sm = Sampler(w, 8, strategy="prioritized", seed=0)
        sm.sample()
        sm.update_priorities(np.array([299]), np.array([5.0]))
        sm.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = reader_priorities(other)
    assert got[-1] == 5.0 and (got[:-1] == 1.0).all()


def test_window_mismatch_warns(saved):
    """A file made for another window (same uuid) is not used: its leaves would map to other rows."""
    with ReplayStore.open(saved, "r") as s:
        f = PriorityFile(sidecar_path(saved), s.uuid, 100, writable=False)
        with pytest.warns(RuntimeWarning, match="was made for a window of 200 rows, the store's is 100"):
            assert f.load() is None


def test_writer_refuses_a_directory_in_the_way(saved):
    """The writer's sampler cannot save into a directory: a SamplerError says to move it."""
    side = Path(sidecar_path(saved))
    side.unlink()
    side.mkdir()
    with ReplayStore.open(saved, "a") as w:
        with pytest.raises(SamplerError, match=r"\.priorities is not a regular file.*move it away"):
            Sampler(w, 8, strategy="prioritized")


def test_saves_at_most_every_save_seconds(tmp_path):
    """With save_seconds, updates in between stay in memory; close() saves the last ones."""
    from replaystore.store import Prioritized

    path = tmp_path / "run.h5"
    make_store(path, 50, 50)
    with ReplayStore.open(path, "a") as w:
        sm = Sampler(w, 8, strategy=Prioritized(save_seconds=3600.0), seed=0)
        sm.sample()
        sm.update_priorities(np.array([3]), np.array([9.0]))
        assert reader_priorities_of(path, [3]) == [1.0]  # not saved yet
        sm.close()
        assert reader_priorities_of(path, [3]) == [9.0]


def reader_priorities_of(path, rows) -> list:
    with Sampler(path, 8, strategy="prioritized", seed=0) as r:
        return r.priorities(np.array(rows)).tolist()


# ---------------------------------------------------------------- kill -9 during saves
CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from replaystore.store import Prioritized, ReplayStore, Sampler
    path = sys.argv[1]
    w = ReplayStore.open(path, "a")
    sm = Sampler(w, 64, strategy=Prioritized(save_seconds=0.0), seed=0)
    sm.sample()
    lo, n = sm.rows_in_window
    rng = np.random.default_rng(7)
    k = 0
    while True:
        k += 1
        sm.update_priorities(rng.choice(np.arange(lo, n), 500, replace=False), np.full(500, float(k)))
        print(k, flush=True)  # this save is complete
""")


def expected_after(k: int, lo: int, n: int) -> np.ndarray:
    """The child's priorities after its k-th update (and save), replayed."""
    rng = np.random.default_rng(7)
    pr = np.ones(n - lo)
    for j in range(1, k + 1):
        pr[rng.choice(np.arange(lo, n), 500, replace=False) - lo] = float(j)
    return pr


def torn_slots(path, window: int) -> int:
    """Slots of the priority file whose checksum fails (a save the kill interrupted)."""
    import struct
    import zlib

    raw = Path(sidecar_path(path)).read_bytes()
    slot_bytes = -(-(64 + 4 * window) // 4096) * 4096
    torn = 0
    for off in (4096, 4096 + slot_bytes):
        seq, rows, count, _ = struct.unpack_from("<QQQd", raw, off)
        crc = struct.unpack_from("<I", raw, off + 32)[0]
        torn += seq > 0 and crc != zlib.crc32(raw[off + 64:off + 64 + 4 * count], zlib.crc32(raw[off:off + 32]))
    return torn


def kill_trials(tmp_path, trials: int) -> int:
    """Kill a saving child ``trials`` times; returns how many kills left a torn slot behind."""
    path = tmp_path / "run.h5"
    rows, window = 60_000, 50_000
    make_store(path, rows, window)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    rng = np.random.default_rng(0)
    torn = 0
    for trial in range(trials):
        out = tmp_path / f"child{trial}.out"
        Path(sidecar_path(path)).unlink(missing_ok=True)  # each child starts from max priorities
        with open(out, "wb") as fh:
            child = subprocess.Popen([sys.executable, str(script), str(path)], stdout=fh, stderr=subprocess.PIPE,
                                     env=env)
            try:
                while not out.read_text().count("\n") >= 3:  # a few saves made: now kill at a random point
                    assert child.poll() is None, child.stderr.read().decode()
                    time.sleep(0.002)
                time.sleep(float(rng.uniform(0, 0.05)))
            finally:
                child.kill()
                child.wait()
                child.stderr.close()
        reported = [int(x) for x in out.read_text().split("\n")[:-1]]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a torn save must fall back silently, never look damaged
            with Sampler(path, 8, strategy="prioritized", seed=0) as r:
                got = r.priorities(np.arange(rows - window, rows))
        k = int(got.max())
        assert reported[-1] <= k <= reported[-1] + 1, (trial, reported[-1], k)  # the last save or the one after
        np.testing.assert_array_equal(got, expected_after(k, rows - window, rows), err_msg=f"trial {trial}")
        torn += torn_slots(path, window)
    return torn


def test_kill_minus_nine_during_saves_leaves_a_whole_save(tmp_path):
    """A writer-side sampler killed while saving leaves priorities equal to one whole save, the last one."""
    kill_trials(tmp_path, 6)


@pytest.mark.slow
def test_kill_minus_nine_during_saves_many(tmp_path):
    """The same, 100 times; some kills must have torn a save (else the trial proves little)."""
    assert kill_trials(tmp_path, 100) > 0  # measured: 7 of 100 kills landed inside a save


@pytest.mark.parametrize("bad", [1e39, float("inf"), float("nan"), -1.0, 0.0, 1e-40])
def test_priorities_past_float32_or_not_finite_are_refused_on_write(tmp_path, bad):
    """A priority the file cannot hold (above float32's max, saved as inf; below its smallest normal)
    or not finite and positive (zero: a row never drawn) is
    refused with a SamplerError naming it, and nothing changes: later batches keep finite weights."""
    path = tmp_path / "run.h5"
    make_store(path, 300, 200)
    with ReplayStore.open(path, "a") as w, Sampler(w, 32, strategy="prioritized", seed=0) as sm:
        sm.sample()
        rows = np.arange(100, 110)
        with pytest.raises(SamplerError, match=r"priority .* for row 100 .*finite, in \[1\.175494e-38, 3\.4"):
            sm.update_priorities(rows, np.r_[bad, np.ones(9)])
        np.testing.assert_array_equal(np.ones(10), sm.priorities(rows))
        assert np.isfinite(sm.sample()["weight"]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the saved file is whole and finite: no warning
        assert np.isfinite(reader_priorities(path)).all()


def test_priorities_whose_power_overflows_the_tree_are_refused(tmp_path):
    """With alpha 9, 1e38 ** alpha overflows float64: refused, not a tree whose total is inf."""
    path = tmp_path / "run.h5"
    make_store(path, 300, 200)
    with ReplayStore.open(path, "a") as w, Sampler(w, 32, strategy="prioritized", seed=0, alpha=9.0) as sm:
        sm.sample()
        with pytest.raises(SamplerError, match=r"alpha=9\.0.*overflows"):
            sm.update_priorities(np.array([100]), np.array([1e38]))
        assert np.isfinite(sm.sample()["weight"]).all()


@pytest.mark.parametrize("value", [float("nan"), -1.0, float("inf"), 0.0])
def test_checksummed_priorities_holding_nan_or_negative_warn_and_restart_at_max(saved, value):
    """A priority file whose slots pass their checksums but hold NaN, -1, inf or 0 (written by another
    program, or an older replaystore) is treated as damaged: a RuntimeWarning naming the file and the
    value, every row at the max priority, and sample() works, in a reader and in a writer."""
    side = sidecar_path(saved)
    f = PriorityFile(side, ReplayStore.open(saved).uuid, 200, writable=True)
    got = f.load()
    raw = got.raw.copy()
    raw[5] = value
    f._seq = got.seq
    f.save(raw, got.rows, got.max_priority)  # a checksummed save of the bad value, as the newest slot
    f.close()
    with pytest.warns(RuntimeWarning, match=r"priorities.*holds priority .* at leaf 5.*starts every row at the maximum"):
        np.testing.assert_array_equal(np.ones(200), reader_priorities(saved))
    with ReplayStore.open(saved, "a") as w, \
            pytest.warns(RuntimeWarning, match=r"at leaf 5"), Sampler(w, 32, strategy="prioritized", seed=0) as sm:
        b = sm.sample()
        assert np.isfinite(b["weight"]).all() and (b["weight"] > 0).all()

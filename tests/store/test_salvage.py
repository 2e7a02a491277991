"""A store whose HDF5 metadata is destroyed is still read, and rebuilt before appending."""

import os
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest

from replaystore.store import ReplayStore, errors

WRITER = """
import os, signal, sys
import numpy as np
from replaystore.store import ReplayStore, Schema
s = ReplayStore.create(sys.argv[1], Schema.transition((8,)), actors=("expert", "dqn"), window=10000)
for i in range(5000):
    s.append(actor="expert" if i % 3 == 0 else "dqn", state=np.full(8, i, "f4"), next_state=np.full(8, i + 1, "f4"),
             discrete_action=i % 2, continuous_action=np.zeros(0, "f4"), reward=float(i), done=i % 100 == 99)
s.commit()
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture
def wrecked(tmp_path):
    """A store whose writer was killed after a commit, then whose HDF5 superblock was zeroed."""
    path = str(tmp_path / "run.h5")
    proc = subprocess.run([sys.executable, "-c", WRITER, path])
    assert proc.returncode == -signal.SIGKILL
    with open(path, "r+b") as f:
        f.write(b"\0" * 64)
    return path


def test_reader_needs_no_hdf5_metadata(wrecked):
    """Readers map committed chunks through the commit record, so they see every committed row, and say
    that the HDF5 metadata is unreadable."""
    with pytest.warns(RuntimeWarning, match="HDF5 metadata is unreadable.*reading the committed rows through the "
                                            "commit record"), ReplayStore.open(wrecked, "r") as r:
        d = r.read(["reward", "state"])
        assert 5000 == len(r)
        np.testing.assert_array_equal(np.arange(5000, dtype="f4"), d["reward"])
        np.testing.assert_array_equal(np.arange(5000, dtype="f4"), d["state"][:, 3])
        assert r.summary()["writer"]["died"] is True


def test_writer_rebuilds_and_appends(wrecked):
    """Opening for append rebuilds the file from the record, keeps the damaged one, and continues."""
    with pytest.warns(RuntimeWarning, match="rebuilt it from the commit record with all 5000 committed rows"):
        s = ReplayStore.open(wrecked, "a")
    with s:
        assert 5000 == len(s)
        s.append(actor="dqn", state=np.full(8, 5000, "f4"), next_state=np.full(8, 5001, "f4"),
                 discrete_action=0, continuous_action=np.zeros(0, "f4"), reward=5000.0, done=False)
    damaged = [f for f in os.listdir(os.path.dirname(wrecked)) if ".damaged-" in f]
    assert 1 == len(damaged)
    with ReplayStore.open(wrecked, "r") as r:
        d = r.read()
        np.testing.assert_array_equal(np.arange(5001, dtype="f4"), d["reward"])
        assert [49, 49, 50] == d["episode"][-3:].tolist()  # episode 49 ended at row 4999
        assert {"expert": 1667, "dqn": 3334} == r.actor_composition(window=False)["counts"]
        assert r.summary()["writer"]["last_recovery"]["rows_kept"] == 5000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ReplayStore.open(wrecked, "a").close()  # healthy now: no second rebuild


def _manifest_damages(size: int) -> list:
    """64 ways to damage a manifest of ``size`` bytes: 48 bytes inverted across the file (the
    superblock, attributes, virtual dataset metadata, ...), 12 truncations, and deletion or
    replacement by a directory-free stand-in (empty, zeros, text)."""
    out = [("flip", i * size // 48 + (7 * i) % 13) for i in range(48)]
    out += [("truncate", j * size // 12) for j in range(12)]
    out += [("delete", 0), ("zeros", size), ("text", 0), ("flip-uuid", 0)]
    return out


def _damage(path: str, kind: str, at: int) -> None:
    data = bytearray(open(path, "rb").read())
    if kind == "flip":
        data[at] ^= 0xFF
    elif kind == "truncate":
        data = data[:at]
    elif kind == "zeros":
        data = bytearray(at)
    elif kind == "text":
        data = bytearray(b"not a store\n")
    elif kind == "flip-uuid":  # one damaged byte inside the uuid attribute's text
        import h5py

        with h5py.File(path, "r") as f:
            u = str(f.attrs["uuid"]).encode()
        i = data.find(u)
        assert i >= 0
        data[i + 3] = ord("g")  # not a hex digit
    if kind == "delete":
        os.remove(path)
        return
    with open(path, "wb") as f:
        f.write(data)


def test_damaged_manifest_is_rebuilt_from_an_intact_record_and_segments(tmp_path):
    """64 damages of the manifest of a cleanly closed store (bytes at many offsets, truncation,
    deletion, replacement): with the commit record and the segments intact, a reader sees all 2,500
    rows bit for bit and a writer rebuilds the manifest, appends, and leaves a healthy store. Never
    a refusal."""
    import shutil

    from store_helpers import append_writer_rows, check_writer_rows, closed_store

    os.makedirs(tmp_path / "pristine")
    pristine = closed_store(str(tmp_path / "pristine" / "run.h5"), 2500)
    size = os.path.getsize(pristine)
    refused = []
    for t, (kind, at) in enumerate(_manifest_damages(size)):
        d = tmp_path / f"t{t}"
        shutil.copytree(tmp_path / "pristine", d)
        path = str(d / "run.h5")
        _damage(path, kind, at)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                with ReplayStore.open(path) as r:
                    assert 2500 == len(r), (kind, at)
                    check_writer_rows(r, 0, 2500, f"{kind} at {at}: ")
                with ReplayStore.open(path, "a") as w:
                    assert 2500 == len(w), (kind, at)
                    append_writer_rows(w, 2500, 2510)
        except errors.StoreError as e:
            refused.append((kind, at, str(e)))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # healthy again: no warning, no second rebuild
            with ReplayStore.open(path) as r:
                assert 2510 == len(r), (kind, at)
                check_writer_rows(r, 0, 2510, f"{kind} at {at}, after the rebuild: ")
        shutil.rmtree(d)
    assert [] == refused


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reader says the manifest is unreadable first
def test_damaged_manifest_with_a_damaged_record_is_refused_clearly(tmp_path):
    """When the record cannot stand in (both slots damaged), a damaged manifest is refused with a store
    error that names both problems; with a segment missing, with one naming the segment."""
    from store_helpers import closed_store

    path = closed_store(str(tmp_path / "run.h5"), 2500)
    with open(path, "r+b") as f:
        f.write(b"\0" * 64)
    seg = os.path.join(path + ".d", "transitions-000001.h5")
    os.rename(seg, seg + ".away")
    for mode in ("r", "a"):
        with pytest.raises(errors.TruncatedStoreError, match=r"transitions-000001\.h5 is missing"):
            ReplayStore.open(path, mode)
    os.rename(seg + ".away", seg)
    with open(path + ".commit", "r+b") as f:
        f.write(b"\xff" * 64)
    for mode in ("r", "a"):
        with pytest.raises(errors.DamagedStoreError, match=r"commit record .* is damaged"):
            ReplayStore.open(path, mode)

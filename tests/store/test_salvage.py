"""A store whose HDF5 metadata is destroyed is still read, and rebuilt before appending."""

import os
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest

from replaystore.store import ReplayStore

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

"""create() is all-or-nothing under kill -9; a damaged commit record does not lock a store away."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from replaystore.store import ReplayStore, Schema
from replaystore.store.errors import StoreNotFoundError

CREATOR = """
import sys
from replaystore.store import ReplayStore, Schema
print("go", flush=True)
while True:
    ReplayStore.create(sys.argv[1], Schema.transition((64,), continuous_dim=2), actors=("a", "b"), window=100_000).close()
    import os, shutil; os.remove(sys.argv[1]); os.remove(sys.argv[1] + ".commit"); shutil.rmtree(sys.argv[1] + ".d")
"""


def _row(i):
    return dict(state=np.full(4, i, "f4"), next_state=np.full(4, i + 1, "f4"), discrete_action=i % 2,
                continuous_action=np.zeros(0, "f4"), reward=float(i), done=False)


@pytest.mark.parametrize("trial", range(6))
def test_kill_during_create_leaves_no_half_made_store(tmp_path, trial):
    """A creator killed at a random moment leaves either a whole empty store or none; create() then works."""
    path = str(tmp_path / "run.h5")
    proc = subprocess.Popen([sys.executable, "-c", CREATOR, path], stdout=subprocess.PIPE)
    proc.stdout.readline()
    time.sleep(0.005 + 0.02 * trial)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if os.path.exists(path):
        with ReplayStore.open(path, "a") as s:  # a whole store: it opens and takes rows
            assert 0 == len(s)
        for leftover in (path, path + ".commit"):
            if os.path.exists(leftover):
                os.remove(leftover)
        shutil.rmtree(path + ".d")
    with ReplayStore.create(path, Schema.transition((4,)), actors=("expert", "dqn"), window=100) as s:
        s.append(actor="dqn", **_row(0))
    with ReplayStore.open(path) as r:
        assert 1 == len(r)
    assert not [n for n in os.listdir(path + ".d") if n.endswith(".tmp")]


def test_create_in_missing_folder(tmp_path):
    """A path in a folder that does not exist gets an error naming the folder."""
    with pytest.raises(StoreNotFoundError, match="the folder .*nope does not exist; create it first"):
        ReplayStore.create(str(tmp_path / "nope" / "run.h5"), Schema.transition((4,)), actors=("a",))


@pytest.mark.parametrize("damage", ["{not json", json.dumps({"format": "replaystore", "format_version": 1}),
                                    b"\xff\xfe not utf-8", json.dumps({"format": "replaystore", "format_version": 2})])
def test_damaged_record_falls_back_to_the_last_clean_close(tmp_path, damage):
    """A damaged .commit warns, then the committed rows come from the manifest's last clean close; appending rewrites it."""
    path = str(tmp_path / "run.h5")
    with ReplayStore.create(path, Schema.transition((4,)), actors=("expert", "dqn"), window=100) as s:
        for i in range(10):
            s.append(actor="expert" if i < 3 else "dqn", **_row(i))
    with open(path + ".commit", "wb") as f:
        f.write(damage if isinstance(damage, bytes) else damage.encode())
    with pytest.warns(RuntimeWarning, match=r"commit record .* damaged.*using the store's last clean close \(seq \d+, 10 rows\)"):
        r = ReplayStore.open(path)
    with r:
        assert 10 == len(r)
        assert {"expert": 3, "dqn": 7} == r.actor_composition()["counts"]
    with pytest.warns(RuntimeWarning, match="using the store's last clean close"):
        s = ReplayStore.open(path, "a")
    with s:
        s.append(actor="dqn", **_row(10))
    with ReplayStore.open(path) as r:  # the record is whole again: no warning
        np.testing.assert_array_equal(np.arange(11, dtype="f4"), r.read(["reward"])["reward"])


def test_signature_changes_with_every_commit(tmp_path):
    """Commits in quick succession with records of equal size still change the signature
    (inode numbers are reused and mtimes tick coarsely; the seq in the record's head is unique)."""
    from replaystore.store.format import _record

    path = str(tmp_path / "run.h5")
    with ReplayStore.create(path, Schema.transition((4,)), actors=("expert", "dqn"), window=100) as s:
        s.append(actor="dqn", **_row(0))
        s.commit()
        sigs = []
        for _ in range(50):
            s.commit()  # nothing new: same counts, same size, only seq moves
            sigs.append(_record.record_signature(path))
    assert len(sigs) == len(set(sigs))

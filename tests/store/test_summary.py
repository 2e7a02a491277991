"""`replaystore info` / ReplayStore.summary(): what a user reads about a store."""

import json
import os
import subprocess
import sys

import numpy as np

from replaystore.store import ReplayStore, Schema


def _store(path, n=300):
    with ReplayStore.create(path, Schema.transition((4,)), actors=("expert", "dqn"), window=100, metadata={"expert_ratio": 0.25}) as s:
        s.extend({"actor": np.where(np.arange(n) % 4 == 0, 0, 1), "state": np.zeros((n, 4)),
                  "next_state": np.zeros((n, 4)), "discrete_action": np.zeros(n, np.int32),
                  "continuous_action": np.zeros((n, 0)), "reward": np.ones(n), "done": np.arange(n) % 50 == 49})


def test_summary_counts_and_sizes(tmp_path):
    """Counts and fractions for the whole store and the window; bytes on disk are the allocated ones."""
    path = str(tmp_path / "run.h5")
    _store(path)
    with ReplayStore.open(path) as r:
        s = r.summary()
    assert 300 == s["rows"] and 100 == s["window_rows"]
    assert {"code": 0, "count": 75, "fraction": 0.25, "window_count": 25, "window_fraction": 0.25} == s["actors"]["expert"]
    files = [path, path + ".commit"] + [os.path.join(path + ".d", n) for n in os.listdir(path + ".d")]
    assert sum(os.stat(p).st_blocks * 512 for p in files) == s["size_bytes"]
    assert sum(os.path.getsize(p) for p in files) == s["apparent_bytes"]
    assert s["size_bytes"] < s["apparent_bytes"]  # a segment's unwritten space is a hole
    assert {"live": False, "died": False, "rows_recovery_keeps": None, "last_recovery": None} == s["writer"]


def test_info_cli(tmp_path):
    """The command prints the summary, as text or JSON; a missing path is an error, not a traceback."""
    path = str(tmp_path / "run.h5")
    _store(path)
    cmd = [sys.executable, "-m", "replaystore.cli", "info"]
    out = subprocess.run(cmd + [path, "--json"], capture_output=True, text=True, check=True).stdout
    assert 300 == json.loads(out)["rows"]
    text = subprocess.run(cmd + [path], capture_output=True, text=True, check=True).stdout
    assert "expert" in text and "75 ( 25.0%)" in text and "closed cleanly" in text
    bad = subprocess.run(cmd + [str(tmp_path / "nope.h5")], capture_output=True, text=True)
    assert 2 == bad.returncode
    assert "error: no store at" in bad.stderr and "Traceback" not in bad.stderr

"""``replaystore watch``: against a real writer process, frames grow and match the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

from replaystore.cli import main
from replaystore.store import ReplayStore

HEALTHY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "healthy.h5")

# Appends blocks of 50 rows (actors drawn at random) with telemetry, committing each, until the
# file STOP appears; it prints READY after its first commit.
WRITER = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import replaystore as rs

    path, stop = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(0)
    store = rs.ReplayStore.create(path, rs.Schema.transition((2,), 0), actors=("expert", "dqn"),
                                  metadata={"expert_ratio": 0.3})
    tel = rs.Telemetry(store, block=1)
    step = 0
    while not os.path.exists(stop):
        n = 50
        store.extend({"state": rng.normal(size=(n, 2)).astype("f4"), "next_state": np.zeros((n, 2), "f4"),
                      "discrete_action": np.zeros(n, int), "continuous_action": np.zeros((n, 0), "f4"),
                      "reward": np.ones(n, "f4"), "done": np.arange(n) % 25 == 24,
                      "actor": np.where(rng.random(n) < 0.3, "expert", "dqn")})
        step += 1
        tel.log_step(step, loss=0.1, actors=["dqn", "expert"], td=[0.5, 0.25], reward=[1, 1], q=[2.0, 3.0])
        tel.flush()
        store.commit()
        if step == 1:
            print("READY", flush=True)
        time.sleep(0.02)
    store.close()
""")


def test_watch_follows_a_live_writer(tmp_path):
    """Frames from a second process show the rows growing, and each frame's counts are the store's."""
    path, stop = str(tmp_path / "live.h5"), str(tmp_path / "STOP")
    (tmp_path / "writer.py").write_text(WRITER)
    writer = subprocess.Popen([sys.executable, str(tmp_path / "writer.py"), path, stop], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert "READY" == writer.stdout.readline().strip()
        r = subprocess.run([sys.executable, "-m", "replaystore", "watch", path, "--interval", "0.5", "--frames", "4",
                            "--json", "--audit-every", "0.5"], capture_output=True, text=True, timeout=120)
        human = subprocess.run([sys.executable, "-m", "replaystore", "watch", path, "--once"],
                               capture_output=True, text=True, timeout=120)
    finally:
        open(stop, "w").close()
        writer.wait(timeout=60)
    assert 0 == r.returncode, r.stderr
    frames = [json.loads(line) for line in r.stdout.splitlines()]
    assert 4 == len(frames)
    rows = [f["rows"] for f in frames]
    assert rows == sorted(rows) and rows[-1] > rows[0]
    assert all(f["writer"] == "live" for f in frames)
    assert frames[0]["rows_per_s"] is None and all(f["rows_per_s"] >= 0 for f in frames[1:])
    with ReplayStore.open(path) as s:
        codes = s.read(["actor"])["actor"]
    for f in frames:
        counts = np.bincount(codes[:f["rows"]], minlength=2)
        assert {"expert": int(counts[0]), "dqn": int(counts[1])} == {k: v["count"] for k, v in f["actors"].items()}
        assert f["tables"]["train_steps"] == f["rows"] // 50 == f["last_step"]["step"]
        assert {"batch_fraction": 0.5, "td_abs_mean": 0.5, "q_mean": 2.0} == f["last_step"]["per_actor"]["dqn"]
        assert isinstance(f["anomalies"], list)
    assert 0 == human.returncode, human.stderr
    assert "writer live" in human.stdout and "composition expert" in human.stdout and "\x1b[" not in human.stdout


def test_watch_once_on_a_finished_store_and_fail_on(capsys, tmp_path):
    """--once draws one frame of a closed store; --fail-on exits 1 on a store with such anomalies."""
    assert 0 == main(["watch", HEALTHY, "--once"])
    out = capsys.readouterr().out
    assert "3,072 committed" in out and "writer closed" in out and "anomalies   none" in out
    incident = HEALTHY.replace("healthy", "incident")
    assert 1 == main(["watch", incident, "--once", "--fail-on", "ERROR"])
    out, err = capsys.readouterr()
    assert "SINGLE_ACTOR" in out and "failing:" in err
    assert 2 == main(["watch", str(tmp_path / "missing.h5"), "--once"])
    assert capsys.readouterr().err.startswith("error: ")


def test_watch_on_a_terminal_redraws_in_place():
    """With stdout a terminal (a pseudo-terminal here), each frame starts by clearing the screen."""
    import pty

    leader, follower = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "replaystore", "watch", HEALTHY, "--frames", "2", "--interval", "0.1",
                          "--audit-every", "0"], stdout=follower, stderr=subprocess.PIPE)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert 0 == p.wait(timeout=60)
    os.close(leader)
    out = b"".join(chunks).decode()
    assert 2 == out.count("\x1b[H\x1b[2J") and 2 == out.count("3,072 committed")

"""Distributed acting: workers write their own shards, one learner samples across them; a worker
killed with SIGKILL is restarted, loses at most its uncommitted rows, and the run finishes."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import numpy as np
import pytest

from replaystore.agent import AgentConfig, train_distributed, worker_status
from replaystore.analysis import audit
from replaystore.cli import main
from replaystore.store import Run
from replaystore.store.errors import StoreError

# Small and quick: 2 workers x 400 frames, a tiny network, a training step every 8 frames.
CONFIG = AgentConfig(total_steps=800, learning_starts=100, train_every=8, batch_size=32, hidden=(16,),
                     commit_every=50, log_batch_every=10, log_buffer_every=20, n_step=3)
KILL_AT = 150  # committed rows of worker-0's shard when it is killed


class Killer(threading.Thread):
    """SIGKILLs worker ``index`` once its shard holds ``rows`` committed rows; keeps what was committed."""

    def __init__(self, run_path, index: int, rows: int):
        super().__init__(daemon=True)
        self.run_path, self.index, self.rows = str(run_path), index, rows
        self.kept = None
        self.pid = None

    def run(self):
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and self.kept is None:
            pid = worker_status(self.run_path, self.index).get("pid")
            try:
                with Run.open(self.run_path).open_shard(f"worker-{self.index}") as s:
                    if pid and len(s) >= self.rows:
                        self.kept = s.read()  # every committed row, before the kill
                        self.pid = pid
                        os.kill(pid, signal.SIGKILL)
            except (StoreError, OSError):
                pass  # the run or shard is not there yet, or its writer is making it
            time.sleep(0.01)


def check_killed_run(run_path, summary, killer):
    """The killed worker restarted, kept every row it had committed, and finished its frames."""
    assert killer.kept is not None, "the worker was never killed"
    assert summary["restarts"][0] >= 1 and worker_status(run_path, 0)["starts"] >= 2
    assert summary["worker_metrics"][0]["pid"] != killer.pid
    frames = CONFIG.total_steps // 2
    with Run.open(run_path).open_shard("worker-0") as s:
        assert len(s) == frames
        after = s.read(stop=len(killer.kept["actor"]))
        assert s.writer_state["recovery"] is not None or summary["worker_metrics"][0]["resumed_from"] > 0
    for c, v in killer.kept.items():
        assert np.array_equal(v, after[c]), f"column {c} changed after the restart"
    assert summary["worker_metrics"][0]["resumed_from"] >= len(killer.kept["actor"])
    assert summary["frames"] == CONFIG.total_steps
    assert summary["train_steps"] >= (CONFIG.total_steps - CONFIG.learning_starts) // CONFIG.train_every
    rep = audit(run_path)
    assert rep.run["shards"] == ["worker-0", "worker-1"]
    assert rep.pooled["training"]["steps"]["count"] == summary["train_steps"]  # the learner's telemetry
    # (EXPERT_FRACTION on 400 rows is a 2-sigma matter, so only the tagging checks are asserted)
    assert not {code for _, code in rep.codes()} & {"SINGLE_ACTOR", "SHARD_COMPOSITION", "UNKNOWN_ACTOR_CODE"}


def test_mp_worker_killed_mid_run_is_restarted(tmp_path, caplog):
    """multiprocessing engine: SIGKILL worker-0 mid-run; it restarts from its committed rows."""
    run_path = tmp_path / "run"
    killer = Killer(run_path, 0, KILL_AT)
    killer.start()
    with caplog.at_level(logging.INFO, logger="replaystore.agent"):
        summary = train_distributed(CONFIG, run_path, workers=2, engine="mp", progress=False)
    killer.join(timeout=5)
    check_killed_run(run_path, summary, killer)
    text = caplog.text
    assert "[BATCH] Step 10:" in text and "[BUFFER] Step 20:" in text
    assert "worker-0 died" in text
    assert {m["worker"] for m in summary["worker_metrics"]} == {"worker-0", "worker-1"}


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory):
    """One local Ray for the tests that need it (2 CPUs, no dashboard), shut down at the end; its
    sessions, logs, sockets and spilled objects go to the tests' temporary folder, not /tmp/ray
    (a short name: Ray's socket paths must stay under 107 bytes)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=str(tmp_path_factory.mktemp("ray")))
    yield ray
    ray.shutdown()


def test_ray_actor_killed_mid_run_is_restarted(tmp_path, tmp_path_factory, ray_session):
    """Ray engine: SIGKILL worker-0's actor process; Ray restarts it and it reopens its shard."""
    run_path = tmp_path / "run"
    killer = Killer(run_path, 0, KILL_AT)
    killer.start()
    summary = train_distributed(CONFIG, run_path, workers=2, engine="ray", progress=False)
    killer.join(timeout=5)
    check_killed_run(run_path, summary, killer)
    assert ray_session.is_initialized()  # the session's Ray is left to its owner
    # Ray's scratch space is in the tests' temporary folder (the session fixture's ray*/ folder)
    assert list(tmp_path_factory.getbasetemp().glob("ray*/session_latest"))


def test_cli_train_with_workers(tmp_path, capsys):
    """`replaystore train --workers 2` writes a run of two shards and prints each worker's metrics."""
    out = tmp_path / "run"
    code = main(["train", "--workers", "2", "--engine", "mp", "--steps", "200", "--out", str(out), "--quiet",
                 "--eval-episodes", "0", "--set", "learning_starts=50", "--set", "train_every=8",
                 "--set", "batch_size=16", "--set", "hidden=[8]", "--set", "commit_every=50"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "200 frames from 2 workers (mp)" in text and "worker-1: 100 frames" in text
    assert Run.open(out).rows() == {"worker-0": 100, "worker-1": 100}
    with pytest.raises(FileExistsError, match="not an empty folder"):
        train_distributed(CONFIG, out, workers=2)


def test_bad_engine_or_worker_count_is_refused_before_any_folder(tmp_path):
    """An unknown engine or a worker count below 1 is refused, and no run folder is left behind."""
    from replaystore.agent.errors import ConfigError

    with pytest.raises(ConfigError, match=r"engine='spark': expected one of \['mp', 'ray'\]"):
        train_distributed(CONFIG, tmp_path / "a", workers=2, engine="spark")
    with pytest.raises(ConfigError, match="workers=0: expected a positive number"):
        train_distributed(CONFIG, tmp_path / "b", workers=0)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()

"""Helpers of the remote tests: real servers in subprocesses, and deterministic client rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from replaystore.store import Run, Schema

HERE = Path(__file__).parent
ACTORS = ("expert", "dqn", "scripted")
SCHEMA = Schema.transition((3,), continuous_dim=2)
SENT = ("state", "next_state", "discrete_action", "continuous_action", "reward", "done")  # what clients send


def make_run(path, window: int = 100_000) -> Run:
    return Run.create(path, SCHEMA, actors=ACTORS, window=window, metadata={"expert_ratio": 0.25})


def client_block(client: int, start: int, n: int) -> dict:
    """Rows ``[start, start + n)`` of client ``client``'s one deterministic sequence (any split of
    the sequence into blocks gives the same rows), actor as names."""
    i = np.arange(start, start + n, dtype=np.int64)
    base = (client * 1_000_003 + i).astype(np.float64)
    state = np.stack([np.sin(base), np.cos(base), base / 7.0], axis=1).astype(np.float32)
    return {"actor": np.array(ACTORS, dtype=object)[(i * 7 + client) % 3],
            "state": state, "next_state": state + np.float32(0.5),
            "discrete_action": ((i + client) % 4).astype(np.int32),
            "continuous_action": np.stack([np.tanh(base / 1e6), -np.tanh(base / 1e6)], axis=1).astype(np.float32),
            "reward": (np.sin(base * 3.0)).astype(np.float32), "done": (i % 37) == 36}


class Server:
    """``replaystore serve`` in a subprocess; ``location`` once it printed its line."""

    def __init__(self, path, *args: str, env: dict | None = None):
        self.proc = subprocess.Popen([sys.executable, "-m", "replaystore", "serve", str(path), "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=dict(os.environ, **(env or {})))
        line = self.proc.stdout.readline()
        if not line.startswith("serving "):
            self.proc.kill()
            raise RuntimeError(f"the server did not start: {line!r} {self.proc.stderr.read()}")
        self.location = line.rsplit(" at ", 1)[1].strip()

    def kill(self) -> None:
        """SIGKILL: no close, no commit, no cleanup."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode


def shard_columns(run_path, name: str) -> dict:
    """Every committed row of shard ``name``, read locally."""
    with Run.open(run_path).open_shard(name) as s:
        return s.read(list(SENT) + ["actor"])

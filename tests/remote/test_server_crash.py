"""Many clients, a killed client, a bad client and a server killed with SIGKILL, on real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from remote_helpers import ACTORS, HERE, SENT, Server, client_block, make_run, shard_columns

import replaystore as rs
from replaystore.remote import RemoteWriter
from replaystore.store import Actors
from replaystore.store.errors import NonFiniteError, ShapeError, UnknownColumnError

STREAMERS = 14  # client processes' threads; with the killed client and the bad client: 16 clients
DEADLINE = 120  # seconds before a wait gives up (a failure, not a measurement)


def _acks(out, k: int) -> list[int]:
    try:
        with open(os.path.join(out, f"client-{k:02d}.acks")) as fh:
            return [int(line) for line in fh if line.strip() and not line.startswith("#")]
    except FileNotFoundError:
        return []


def _ended(out, k: int) -> str:
    """How client k's thread ended: the class of the error it saw."""
    with open(os.path.join(out, f"client-{k:02d}.acks")) as fh:
        return [line.split(": ", 1)[1].strip() for line in fh if line.startswith("# ended: ")][-1]


def _wait(condition, what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def _assert_prefix(run_path, k: int, acked: int) -> int:
    """Shard ``client-k`` holds a prefix of client k's sequence, bit for bit with its actors,
    at least as long as what the server acknowledged; returns its length."""
    got = shard_columns(run_path, f"client-{k:02d}")
    n = len(got["actor"])
    assert n >= acked, f"client {k}: {acked} rows acknowledged, {n} in its shard"
    want = client_block(k, 0, n)
    for c in SENT:
        assert got[c].tobytes() == np.ascontiguousarray(want[c], got[c].dtype).tobytes(), f"client {k}, column {c}"
    assert got["actor"].tolist() == Actors(ACTORS).codes(want["actor"]).tolist()
    return n


def test_sixteen_clients_a_killed_client_a_bad_client_and_a_killed_server(tmp_path):
    """16 clients stream at once; one client process is SIGKILLed, one client sends bad blocks, then
    the server is SIGKILLed mid-stream and restarted: every acknowledged row of every client is in
    its own shard, bit for bit with its actor, the refused blocks left nothing, a client resumes
    its shard on the restarted server, and the run's audit names each client's shard."""
    run = make_run(tmp_path / "run")
    out = tmp_path / "acks"
    out.mkdir()
    # no automatic commits: only what a client asked for (and was told) is durable
    server = Server(run.path, "--commit-every", "100000000", "--commit-seconds", "3600")
    script = str(HERE / "client_proc.py")
    many = subprocess.Popen([sys.executable, script, server.location, str(out), *map(str, range(STREAMERS))], cwd=HERE)
    victim = subprocess.Popen([sys.executable, script, server.location, str(out), str(STREAMERS)], cwd=HERE)
    try:
        bad = STREAMERS + 1
        with RemoteWriter(server.location, f"client-{bad:02d}") as w:
            w.extend(client_block(bad, 0, 40))
            assert w.commit() == 40
            nan = client_block(bad, 40, 10)
            nan["reward"][3] = np.nan
            with pytest.raises(NonFiniteError, match="reward"):
                w.extend(nan)
                w.commit()
            wide = client_block(bad, 40, 10)
            wide["state"] = np.zeros((10, 4), np.float32)
            with pytest.raises(ShapeError, match="state"):
                w.extend(wide)
                w.commit()
            with pytest.raises(UnknownColumnError, match="bonus"):
                w.extend(dict(client_block(bad, 40, 10), bonus=np.ones(10, np.float32)))
                w.commit()
            w.extend(client_block(bad, 40, 40))  # the stream is reopened; the shard goes on at row 40
            assert w.commit() == 80
            assert w.acknowledged == 80

        _wait(lambda: all(len(_acks(out, k)) >= 2 for k in range(STREAMERS + 1)), "every client to be acknowledged")
        victim.kill()
        victim.wait()
        before = {k: len(_acks(out, k)) for k in range(STREAMERS)}
        _wait(lambda: all(len(_acks(out, k)) > before[k] for k in range(STREAMERS)), "the others to go on")
        server.kill()  # mid-stream: the clients are sending
        assert many.wait(DEADLINE) == 0
        assert {_ended(out, k) for k in range(STREAMERS)} == {"ConnectionLostError"}  # told, not hung
    finally:
        for p in (many, victim):
            if p.poll() is None:
                p.kill()
                p.wait()
        server.stop()

    server = Server(run.path)
    try:
        lengths = {k: _assert_prefix(run.path, k, max(_acks(out, k))) for k in range(STREAMERS + 1)}
        assert _assert_prefix(run.path, bad, 80) == 80
        with RemoteWriter(server.location, "client-00") as w:  # a client comes back: its shard resumes
            w.extend(client_block(0, lengths[0], 25))
            assert w.commit() == lengths[0] + 25
        assert _assert_prefix(run.path, 0, lengths[0] + 25) == lengths[0] + 25
    finally:
        assert server.stop() == 0
    report = rs.audit(run.path)
    assert sorted(report.shards) == [f"client-{k:02d}" for k in range(STREAMERS + 2)]
    lengths.update({0: lengths[0] + 25, bad: 80})
    for k, n in lengths.items():  # each client's rows and actor shares, as the audit of a local run has them
        shard = report.pooled["per_shard"][f"client-{k:02d}"]
        actors = client_block(k, 0, n)["actor"]
        assert shard["rows"] == n
        assert shard["fractions"] == pytest.approx({a: float(np.mean(actors == a)) for a in ACTORS})

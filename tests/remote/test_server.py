"""A served run through the Python clients: same batches as a local Sampler, writes, refusals,
a served store, token and TLS, and the rate limiter. Every server is a real subprocess."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from remote_helpers import ACTORS, SCHEMA, SENT, Server, client_block, make_run, shard_columns

from replaystore.remote import RemoteSampler, RemoteWriter, connect
from replaystore.remote.errors import AuthError, ProtocolError, RateLimitTimeout, ShardBusyError
from replaystore.store import ReplayStore, Sampler
from replaystore.store.errors import (ClosedStoreError, MissingColumnError, NonFiniteError, SamplerError, ShapeError,
                                      UnknownColumnError)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A run of three shards written locally, and a server over it."""
    run = make_run(tmp_path_factory.mktemp("served") / "run", window=700)
    for k, n in enumerate((300, 500, 200)):
        with run.create_shard(f"local-{k}") as s:
            s.extend(client_block(k, 0, n))
    server = Server(run.path)
    yield run, server
    assert server.stop() == 0


def _same(remote: dict, local: dict) -> None:
    assert sorted(remote) == sorted(local)
    for k in local:
        assert remote[k].dtype == local[k].dtype and remote[k].shape == local[k].shape, k
        assert remote[k].tobytes() == local[k].tobytes(), k


@pytest.mark.parametrize("kw", [{"strategy": "uniform"},
                                {"strategy": "stratified", "actor_fractions": {"expert": 0.5, "dqn": 0.3, "scripted": 0.2}},
                                {"strategy": "uniform", "columns": ["state", "actor"], "stream": False}])
def test_remote_batches_are_the_local_samplers_bit_for_bit(served, kw):
    """A session with a seed gives, batch after batch, the batches of a local Sampler with that
    seed over the same run: every column, row ids, weights and shards, bit for bit."""
    run, server = served
    local_kw = {k: v for k, v in kw.items() if k != "stream"}
    with RemoteSampler(server.location, 512, seed=11, **kw) as remote, Sampler(run.path, 512, seed=11, **local_kw) as local:
        for _ in range(4):
            _same(remote.sample(), local.sample())
            assert remote.last_actor_counts.tolist() == local.last_actor_counts.tolist()
        assert remote.shard_names == ["local-0", "local-1", "local-2"]


def test_prioritized_sessions_follow_priority_updates_like_a_local_sampler(served):
    """Priorities set through the action change the next batch exactly as they change a local
    prioritized Sampler's, and read back the same; so does an annealed beta (refused for uniform)."""
    run, server = served
    with RemoteSampler(server.location, 256, strategy="prioritized", alpha=0.7, beta=0.5, seed=4) as remote, \
            Sampler(run.path, 256, strategy="prioritized", alpha=0.7, beta=0.5, seed=4) as local:
        for step in range(3):
            a, b = remote.sample(), local.sample()
            _same(a, b)
            prios = np.abs(b["reward"]).astype(np.float64) * (step + 1) + 0.01
            remote.update_priorities(a["row"], prios)
            local.update_priorities(b["row"], prios)
        rows = a["row"][::17]
        assert remote.priorities(rows).tobytes() == local.priorities(rows).tobytes()
        remote.beta = local.beta = 0.9  # annealed
        assert remote.beta == 0.9
        _same(remote.sample(), local.sample())
    with pytest.raises(SamplerError, match="not 'prioritized'"):
        with RemoteSampler(server.location, 8) as uniform:
            uniform.beta = 0.5


def test_a_remote_writer_appends_extends_and_commits_like_a_local_writer(served):
    """Rows appended one at a time and in blocks land in the client's shard bit for bit;
    commit() returns the shard's committed rows; a closed writer refuses more."""
    run, server = served
    rows = client_block(7, 0, 103)
    with RemoteWriter(server.location, "w-append", batch_rows=2) as w:
        for i in range(3):
            w.append(**{k: v[i] for k, v in rows.items()})
        assert w.extend({k: v[3:] for k, v in rows.items()}) == 100
        assert w.commit() == 103
        assert w.acknowledged == 103
    got = shard_columns(run.path, "w-append")
    for c in SENT:
        assert got[c].tobytes() == np.ascontiguousarray(rows[c], got[c].dtype).tobytes(), c
    with pytest.raises(ClosedStoreError, match="closed"):
        w.extend(rows)


def test_one_stream_per_client_name(served):
    """A second writer of the same client name is refused while the first streams; the first's rows stay."""
    run, server = served
    with RemoteWriter(server.location, "w-busy") as first:
        first.extend(client_block(8, 0, 10))
        assert first.commit() == 10
        second = RemoteWriter(server.location, "w-busy")
        with pytest.raises(ShardBusyError, match="already has a stream"):
            second.extend(client_block(8, 10, 10))
            second.commit()
        second.close()
        first.extend(client_block(8, 10, 5))
        assert first.commit() == 15


def test_bad_requests_get_the_protocol_or_store_error(served):
    """A bad sampler setting gets the store's SamplerError; a ticket that is not JSON, an unknown
    action, a bad client name and an unknown session get ProtocolError texts."""
    run, server = served
    with pytest.raises(SamplerError, match="strategy='bogus' is unknown"):
        RemoteSampler(server.location, 8, strategy="bogus")
    with pytest.raises(SamplerError, match="batch_size=0"):
        RemoteSampler(server.location, 0)
    client, options = connect(server.location)
    with pytest.raises(flight.FlightServerError, match="ProtocolError: DoGet ticket: not UTF-8 JSON"):
        client.do_get(flight.Ticket(b"\xff not json"), options).read_all()
    with pytest.raises(flight.FlightServerError, match="ProtocolError: action 'drop_table' is unknown"):
        list(client.do_action(flight.Action("drop_table", b"{}"), options))
    with pytest.raises(flight.FlightServerError, match="ProtocolError: DoGet: no sampler session 'nope'"):
        client.do_get(flight.Ticket(json.dumps({"sampler": "nope"}).encode()), options).read_all()
    with pytest.raises(ProtocolError, match="shard name '../escape'"):
        w = RemoteWriter(server.location, "../escape")
        w.extend(client_block(0, 0, 2))
        w.commit()
    client.close()


def test_a_served_store_is_sampled_but_not_written(tmp_path):
    """A single store has a writer of its own: ingestion is refused with the reason; sampling it
    gives the local Sampler's batches."""
    path = tmp_path / "one.h5"
    with ReplayStore.create(path, SCHEMA, actors=ACTORS) as s:
        s.extend(client_block(3, 0, 400))
    server = Server(path)
    try:
        with pytest.raises(ProtocolError, match="serves a store, not a run"):
            RemoteWriter(server.location, "c")
        client, options = connect(server.location)
        writer, _ = client.do_put(flight.FlightDescriptor.for_path("ingest", "c"), pa.schema([("reward", pa.float32())]),
                                  options)
        with pytest.raises(flight.FlightServerError, match="ProtocolError: .*ingestion needs a run"):
            writer.close()
        client.close()
        with RemoteSampler(server.location, 64, seed=1) as remote, Sampler(path, 64, seed=1) as local:
            _same(remote.sample(), local.sample())
    finally:
        assert server.stop() == 0


def _self_signed(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    return cert, key


def test_token_and_tls(tmp_path):
    """With a token (from the environment) and a certificate, the server speaks grpc+tls; a call
    without the token, or with another, is refused with AuthError; with both it works."""
    cert, key = _self_signed(tmp_path)
    run = make_run(tmp_path / "run")
    server = Server(run.path, "--tls-cert", str(cert), "--tls-key", str(key), env={"REPLAYSTORE_TOKEN": "s3cret"})
    try:
        assert server.location.startswith("grpc+tls://127.0.0.1:")
        roots = cert.read_bytes()
        for token in (None, "guess"):
            with pytest.raises(AuthError, match="wants a token"):
                RemoteWriter(server.location, "c", token=token, tls_root_certs=roots)
        with RemoteWriter(server.location, "c", token="s3cret", tls_root_certs=roots) as w:
            w.extend(client_block(0, 0, 30))
            assert w.commit() == 30
        with RemoteSampler(server.location, 16, seed=0, token="s3cret", tls_root_certs=roots) as remote, \
                Sampler(run.path, 16, seed=0) as local:
            _same(remote.sample(), local.sample())
    finally:
        assert server.stop() == 0


def _limiter_state(location) -> dict:
    client, options = connect(location)
    try:
        return json.loads(next(iter(client.do_action(flight.Action("info", b"{}"), options))).body.to_pybytes())[
            "rate_limiter"]
    finally:
        client.close()


def test_the_rate_limiter_holds_a_learner_ahead_and_actors_ahead(tmp_path):
    """With 1 sample per insert and an error buffer of 200 rows: a learner on an empty run waits
    and times out; actors that insert far more than the learner samples are held (their inserts
    stop near the buffer) until the learner samples, and then finish."""
    run = make_run(tmp_path / "run")
    server = Server(run.path, "--samples-per-insert", "1", "--min-size-to-sample", "50", "--error-buffer", "200")
    try:
        with RemoteSampler(server.location, 40, seed=0, timeout=0.3) as learner:
            with pytest.raises(RateLimitTimeout, match="0 rows .sampling starts at 50"):
                learner.sample()
        done = threading.Event()

        def actor():
            with RemoteWriter(server.location, "actor", in_flight=1) as w:
                for j in range(20):
                    w.extend(client_block(0, 50 * j, 50))
                    w.commit()
            done.set()

        t = threading.Thread(target=actor)
        t.start()
        seen, give_up = [], time.monotonic() + 120
        while len(seen) < 3 or seen[-1] != seen[-3] or seen[-1] < 250:  # until the inserts stop moving
            assert time.monotonic() < give_up, f"inserts never settled: {seen[-5:]}"
            time.sleep(0.2)
            seen.append(_limiter_state(server.location)["inserted"])
        # held: 50, ..., 200 rows (error 200, allowed), 250 (error 250 > 200: the next batch waits)
        assert seen[-1] == 250 and not done.is_set()
        with RemoteSampler(server.location, 100, seed=0, stream=False, timeout=60) as learner:
            for _ in range(9):
                assert len(learner.sample()["row"]) == 100
            state = _limiter_state(server.location)
            # the 9th batch went out only once inserted - 800 >= -200
            assert state["sampled"] == 900 and state["inserted"] >= 600
            while not done.is_set() and _limiter_state(server.location)["inserted"] < 1000:
                learner.sample()  # the learner keeps pace until the actor is through
        t.join(120)
        assert not t.is_alive() and _limiter_state(server.location)["inserted"] == 1000
    finally:
        assert server.stop() == 0


def test_a_second_sigterm_ends_a_server_that_waits_for_an_idle_stream(tmp_path):
    """The first SIGTERM waits for open streams; a second exits at once (128 + 15), and the rows
    the client was told are committed are in its shard."""
    run = make_run(tmp_path / "run")
    server = Server(run.path)
    w = RemoteWriter(server.location, "idle")
    w.extend(client_block(2, 0, 20))
    assert w.commit() == 20
    server.proc.send_signal(signal.SIGTERM)
    with pytest.raises(subprocess.TimeoutExpired):
        server.proc.wait(1.0)  # the stream is open: the server waits for it
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(60) == 128 + signal.SIGTERM
    server.stop()
    assert len(shard_columns(run.path, "idle")["actor"]) == 20
    w._stream = None
    w.close()


def test_a_bad_appended_row_is_refused_alone(served):
    """append checks each row like a local writer: a wrong shape, a NaN, a missing or unknown
    column raise at that append, and the rows gathered around it all arrive."""
    run, server = served
    rows = client_block(9, 0, 6)
    row = lambda i, **change: dict({k: v[i] for k, v in rows.items()}, **change)  # noqa: E731
    with RemoteWriter(server.location, "w-rows", batch_rows=100) as w:
        w.append(**row(0))
        w.append(**row(1))
        with pytest.raises(ShapeError, match="'state' got shape .4,., expected .3,."):
            w.append(**row(2, state=np.zeros(4, np.float32)))
        with pytest.raises(NonFiniteError, match="'reward' holds NaN"):
            w.append(**row(2, reward=np.float32("nan")))
        with pytest.raises(MissingColumnError, match="done"):
            w.append(**{k: v for k, v in row(2).items() if k != "done"})
        with pytest.raises(UnknownColumnError, match="bonus"):
            w.append(**row(2, bonus=1.0))
        for i in range(2, 6):
            w.append(**row(i))
        assert w.commit() == 6
    assert shard_columns(run.path, "w-rows")["state"].tobytes() == rows["state"].tobytes()


def test_a_refused_block_in_flight_says_which_rows_were_kept(served):
    """Blocks are pipelined: a refused block raises at the next call that waits, the blocks
    sent after it are not kept, and the error says so; the rows before it are committed."""
    run, server = served
    with RemoteWriter(server.location, "w-flight", in_flight=8) as w:
        w.extend(client_block(10, 0, 30))
        bad = client_block(10, 30, 10)
        bad["reward"][4] = np.inf
        w.extend(bad)
        w.extend(client_block(10, 30, 10))
        with pytest.raises(NonFiniteError, match=r"'reward'.*\[RemoteWriter 'w-flight': the refused block and those "
                                                 r"sent after it \(20 rows\) were not kept; this writer's 30 rows "
                                                 r"before them are committed\]"):
            w.commit()
        assert w.acknowledged == 30
    assert len(shard_columns(run.path, "w-flight")["actor"]) == 30


def test_a_client_shard_is_watched_and_audited_like_a_local_store(served, capsys):
    """A served client's shard is an ordinary store: watch reads it while the server writes it,
    with its rows and actor shares."""
    from replaystore.cli import main

    run, server = served
    with RemoteWriter(server.location, "w-watch") as w:
        w.extend(client_block(11, 0, 90))
        w.commit()
        assert main(["watch", run.shard_path("w-watch"), "--once", "--audit-every", "0"]) == 0
    out = capsys.readouterr().out
    assert "90 committed" in out
    for name in ACTORS:  # 30 rows each
        assert re.search(rf"{name}\s+30\s+33\.3%", out), out


def test_ingested_rows_are_numbered_as_a_local_writer_numbers_them(served):
    """Episodes and steps of a served shard (filled by the store from the done flags) continue
    across a refused block and a reconnect exactly as in a shard written locally with the same
    blocks: every column but the wall-clock time is identical."""
    run, server = served
    a, b = client_block(12, 0, 50), client_block(12, 50, 60)  # 37-row episodes: b continues a's
    bad = client_block(12, 50, 5)
    bad["done"] = np.zeros((5, 2), bool)
    with RemoteWriter(server.location, "w-episodes") as w:
        w.extend(a)
        w.commit()
        with pytest.raises(ShapeError, match="done"):
            w.extend(bad)
            w.commit()
    with RemoteWriter(server.location, "w-episodes") as w:  # a new connection resumes the shard
        w.extend(b)
        assert w.commit() == 110
    with run.create_shard("local-episodes") as s:
        s.extend(a)
        s.extend(b)
    served_rows = shard_columns(run.path, "w-episodes")
    with run.open_shard("local-episodes") as s:
        local_rows = s.read([c for c in SCHEMA.names if c != "time"])
    with run.open_shard("w-episodes") as s:
        remote_rows = s.read([c for c in SCHEMA.names if c != "time"])
    assert len(served_rows["actor"]) == 110
    for c in local_rows:
        assert remote_rows[c].tobytes() == local_rows[c].tobytes(), c
    assert remote_rows["episode"][-1] == 2 and remote_rows["step"][-1] == 109 - 74


def test_a_one_off_ticket_gives_a_fresh_samplers_first_batches(served):
    """A DoGet ticket holding the sampler's settings (no session) gives the first batches of a
    local Sampler with those settings, in the store's column order plus row, weight, shard."""
    run, server = served
    client, options = connect(server.location)
    ticket = {"batch_size": 100, "strategy": "stratified", "actor_fractions": {"expert": 0.6, "dqn": 0.4},
              "seed": 21, "columns": ["reward", "actor"], "batches": 3}
    table = client.do_get(flight.Ticket(json.dumps(ticket).encode()), options).read_all()
    client.close()
    with Sampler(run.path, 100, strategy="stratified", actor_fractions={"expert": 0.6, "dqn": 0.4}, seed=21,
                 columns=["reward", "actor"]) as local:
        want = [local.sample() for _ in range(3)]
    assert table.column_names == ["reward", "actor", "row", "weight", "shard"]
    for name in table.column_names:
        assert table.column(name).to_numpy().tobytes() == np.concatenate([b[name] for b in want]).tobytes(), name

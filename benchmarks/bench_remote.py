"""A served run over loopback against the same work done locally, measured in the same run.

    python benchmarks/bench_remote.py                       # 64 blocks of 4096 rows (~1 KB each)
    python benchmarks/bench_remote.py --blocks 128 --repeats 40

Ingestion: the same blocks (``bench_store.make_rows``) are extended into a shard of a run and
committed, locally (``run.create_shard(...).extend``) and through ``RemoteWriter.extend`` to a
``replaystore serve`` subprocess on 127.0.0.1 (a commit every 8 blocks in both); rows/s and the
ratio remote/local (aim >= 0.5x). Sampling: 8192-row uniform batches of that run from a local
``Sampler`` and from a ``RemoteSampler`` (streamed, and one DoGet per batch), interleaved in
rounds (``bench_sampler.interleaved_medians``); ratio local ms / remote ms (aim >= 0.5x).
Latency: one 1-row block extended and committed (the round trip a game client waits for), and
one 32-row batch sampled, medians. The client and server share the machine's cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench_sampler import interleaved_medians
from bench_store import make_rows
from replaystore.remote import RemoteSampler, RemoteWriter
from bench_store import CDIM, STATE
from replaystore.store import Actors, Run, Sampler, Schema

AIM = 0.5
# The transport alone, for a floor: a Flight server that answers each DoPut batch with an empty
# message and serves DoGet from one prepared batch, no store behind it.
FLOOR_SERVER = """
import sys, pyarrow as pa, pyarrow.flight as fl
class Floor(fl.FlightServerBase):
    batch = None
    def do_put(self, ctx, d, reader, writer):
        for chunk in reader:
            if chunk.data is not None:
                Floor.batch = chunk.data
            writer.write(b"{}")
    def do_get(self, ctx, ticket):
        return fl.GeneratorStream(Floor.batch.schema, (Floor.batch for _ in range(int(ticket.ticket))))
s = Floor("grpc+tcp://127.0.0.1:0")
print(s.port, flush=True)
s.serve()
"""


def start_server(path: str):
    proc = subprocess.Popen([sys.executable, "-m", "replaystore", "serve", path, "--port", "0",
                             "--commit-every", "100000000", "--commit-seconds", "3600"],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("serving "):
        proc.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return proc, line.rsplit(" at ", 1)[1].strip()


def ingest_local(run: Run, name: str, blocks) -> float:
    t = time.perf_counter()
    with run.create_shard(name, commit_every=100_000_000, commit_seconds=3600) as s:
        for i, b in enumerate(blocks):
            s.extend(b)
            if i % 8 == 7:
                s.commit()
        s.commit()
    return time.perf_counter() - t


def ingest_remote(location: str, name: str, blocks) -> float:
    t = time.perf_counter()
    with RemoteWriter(location, name) as w:
        for i, b in enumerate(blocks):
            w.extend(b)
            if i % 8 == 7:
                w.commit()
        w.commit()
    return time.perf_counter() - t


def transport_floor(blocks, sample_batch, repeats: int) -> tuple[float, float]:
    """Rows/s of DoPut of the blocks (as the writer sends them, acknowledged per batch) and ms
    per DoGet of a prepared batch of ``sample_batch``'s size, against ``FLOOR_SERVER``."""
    import pyarrow.flight as fl

    from replaystore.remote import _protocol as P
    from replaystore.remote._client import _block_to_arrow

    proc = subprocess.Popen([sys.executable, "-c", FLOOR_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        client = fl.FlightClient(f"grpc+tcp://127.0.0.1:{int(proc.stdout.readline())}")
        schema = Schema.transition((STATE,), continuous_dim=CDIM)
        rbs = [_block_to_arrow(b, schema, Actors(("expert", "dqn"))) for b in blocks]
        t = time.perf_counter()
        w, r = client.do_put(fl.FlightDescriptor.for_path("x"), rbs[0].schema)
        for rb in rbs:
            w.write_batch(rb)
            r.read()
        w.done_writing()
        w.close()
        put = sum(rb.num_rows for rb in rbs) / (time.perf_counter() - t)
        big = P.to_arrow(sample_batch, P.arrow_schema(schema, Actors(("expert", "dqn")), list(sample_batch)))
        w, r = client.do_put(fl.FlightDescriptor.for_path("x"), big.schema)
        w.write_batch(big)
        r.read()
        w.close()
        stream = client.do_get(fl.Ticket(str(repeats + 1).encode()))
        stream.read_chunk()
        t = time.perf_counter()
        for _ in range(repeats):
            stream.read_chunk()
        get = (time.perf_counter() - t) / repeats * 1e3
        client.close()
        return put, get
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, default=64)
    ap.add_argument("--block", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--trials", type=int, default=3, help="ingestion trials of each kind (the best is kept)")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="bench_remote-")
    run = Run.create(os.path.join(d, "run"), Schema.transition((STATE,), continuous_dim=CDIM), actors=("expert", "dqn"),
                     window=10_000_000)
    blocks = [make_rows(a.block, seed=i) for i in range(a.blocks)]
    rows = a.blocks * a.block
    proc, location = start_server(run.path)
    try:
        local, remote = [], []
        for k in range(a.trials):  # alternate, so load that comes and goes falls on both
            local.append(ingest_local(run, f"local-{k}", blocks))
            remote.append(ingest_remote(location, f"remote-{k}", blocks))
        lr, rr = rows / min(local), rows / min(remote)
        print(f"ingestion of {rows} rows in blocks of {a.block} (~1 KB rows), best of {a.trials}:")
        print(f"  local extend+commit   {lr / 1e6:6.2f} M rows/s")
        print(f"  remote (loopback)     {rr / 1e6:6.2f} M rows/s   ratio {rr / lr:.2f}x (aim >= {AIM}x)")

        with Sampler(run.path, a.batch, seed=0) as local_s, \
                RemoteSampler(location, a.batch, seed=0) as streamed, \
                RemoteSampler(location, a.batch, seed=0, stream=False) as per_call:
            ms = interleaved_medians({"local": local_s.sample, "streamed": streamed.sample,
                                      "per_call": per_call.sample}, a.repeats, 3)
            example = {k: v for k, v in local_s.sample().items() if k not in ("row", "weight", "shard")}
        put_floor, get_floor = transport_floor(blocks, example, a.repeats)
        print(f"  transport floor       {put_floor / 1e6:6.2f} M rows/s   (DoPut to a server that keeps nothing)")
        print(f"sampling {a.batch}-row uniform batches of {len(local_s.store)} rows, median ms per batch:")
        print(f"  local Sampler         {ms['local']:7.2f} ms")
        for k in ("streamed", "per_call"):
            print(f"  remote {k:<14} {ms[k]:7.2f} ms   ratio {ms['local'] / ms[k]:.2f}x (aim >= {AIM}x)")
        print(f"  transport floor       {get_floor:7.2f} ms   (DoGet of one prepared batch, no store)")

        one = make_rows(1, seed=99)
        with RemoteWriter(location, "latency") as w, RemoteSampler(location, 32, seed=0, stream=False) as small:
            put, get = [], []
            for _ in range(a.repeats * 3):
                t = time.perf_counter()
                w.extend(one)
                w.commit()
                put.append(time.perf_counter() - t)
                t = time.perf_counter()
                small.sample()
                get.append(time.perf_counter() - t)
        print("latency, median:")
        print(f"  1-row block extended and committed (acknowledged)   {statistics.median(put) * 1e3:6.2f} ms")
        print(f"  32-row batch sampled (one DoGet)                    {statistics.median(get) * 1e3:6.2f} ms")
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()

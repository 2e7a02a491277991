"""A client of the Flight protocol (PROTOCOL.md) that imports nothing from replaystore.

Run as ``python raw_client.py LOCATION OUT_DIR``: reads ``info``, writes rows to its own shard
``raw-0`` with the actor as names, asks for commits, tries three bad batches, samples two
stratified batches of a session with seed 3, and leaves in OUT_DIR ``result.json`` (acks, error
texts, whether anything imported replaystore) and ``batches.arrow`` (the sampled batches).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight

AUTO = ("episode", "step", "time")
BLOCKS = [(0, 100), (100, 50), (150, 250)]  # (first row, rows) of the blocks sent; the second asks for no commit


def wire_type(col: dict) -> pa.DataType:
    t = pa.from_numpy_dtype(np.dtype(col["dtype"]))
    return t if not col["shape"] else pa.list_(t, int(np.prod(col["shape"])))


def make_rows(info: dict, start: int, n: int) -> dict:
    """Rows [start, start + n) of this client, as numpy arrays; actor as names."""
    rng = np.random.default_rng(start)
    out = {}
    for col in info["schema"]:
        name = col["name"]
        if name in AUTO:
            continue
        if name == "actor":
            out[name] = np.array(info["actors"], dtype=object)[np.arange(start, start + n) % len(info["actors"])]
        elif name == "done":
            out[name] = np.arange(start, start + n) % 10 == 9
        else:
            v = rng.standard_normal((n, *col["shape"])) * 100
            out[name] = v.astype(np.dtype(col["dtype"]))
    return out


def to_batch(info: dict, rows: dict) -> pa.RecordBatch:
    arrays, fields = [], []
    types = {c["name"]: c for c in info["schema"]}
    for name, v in rows.items():
        if name == "actor":
            a = pa.array(list(v), pa.string()).dictionary_encode()
        elif name in types and types[name]["shape"]:
            t = wire_type(types[name])
            a = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(v).reshape(-1)), t.list_size)
        else:
            a = pa.array(v)
        arrays.append(a)
        fields.append(pa.field(name, a.type))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def action(client, kind: str, body: dict) -> dict:
    return json.loads(next(iter(client.do_action(flight.Action(kind, json.dumps(body).encode())))).body.to_pybytes())


def put_bad(client, batch: pa.RecordBatch) -> str:
    """Send one batch that the server must refuse; return the error text."""
    writer, reader = client.do_put(flight.FlightDescriptor.for_path("ingest", "raw-0"), batch.schema)
    try:
        writer.write_batch(batch)
        writer.done_writing()
        reader.read()
        writer.close()
    except flight.FlightError as e:
        return str(e)
    return "accepted"


def main(location: str, out: str) -> int:
    client = flight.FlightClient(location)
    info = action(client, "info", {})
    writer, reader = client.do_put(flight.FlightDescriptor.for_path("ingest", "raw-0"),
                                   to_batch(info, make_rows(info, 0, 1)).schema)
    acks = []
    for k, (start, n) in enumerate(BLOCKS):
        batch = to_batch(info, make_rows(info, start, n))
        writer.write_with_metadata(batch, pa.py_buffer(b'{"commit": true}')) if k != 1 else writer.write_batch(batch)
        acks.append(json.loads(reader.read().to_pybytes()))
    writer.done_writing()
    writer.close()
    errors = {}
    good = make_rows(info, 400, 5)
    bad = dict(good, actor=np.array(["cheater"] * 5, dtype=object))
    errors["unknown_actor"] = put_bad(client, to_batch(info, bad))
    bad = dict(good, reward=np.array([1, 2, np.nan, 4, 5], np.float32))
    errors["nan"] = put_bad(client, to_batch(info, bad))
    errors["extra_column"] = put_bad(client, to_batch(info, dict(good, bonus=np.ones(5, np.float32))))
    errors["missing_column"] = put_bad(client, to_batch(info, {k: v for k, v in good.items() if k != "reward"}))
    errors["float_action"] = put_bad(client, to_batch(info, dict(good, discrete_action=np.full(5, 0.5))))
    session = action(client, "open_sampler", {"batch_size": 64, "strategy": "stratified", "seed": 3,
                                              "actor_fractions": {info["actors"][0]: 0.5, info["actors"][1]: 0.5}})
    stream = client.do_get(flight.Ticket(json.dumps({"sampler": session["sampler"], "batches": 2}).encode()))
    table = stream.read_all()
    action(client, "close_sampler", {"sampler": session["sampler"]})
    with pa.OSFile(f"{out}/batches.arrow", "wb") as fh, pa.ipc.new_file(fh, table.schema) as w:
        w.write_table(table)
    rows = action(client, "rows", {})
    with open(f"{out}/result.json", "w") as fh:
        json.dump({"acks": acks, "errors": errors, "info": info, "rows": rows,
                   "imported_replaystore": sorted(m for m in sys.modules if m.startswith("replaystore"))}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

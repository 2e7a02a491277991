"""The wire format without a server: Arrow batches to the store's blocks and back, and requests."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from remote_helpers import ACTORS, SCHEMA, client_block

from replaystore.remote import _protocol as P
from replaystore.remote._client import _batch_from_arrow, _block_to_arrow
from replaystore.remote.errors import ProtocolError
from replaystore.store import Actors, Column, Schema
from replaystore.store.errors import MissingActorError, UnknownActorError

VOCAB = Actors(ACTORS)


def test_names_dictionaries_and_codes_give_the_same_codes():
    """The actor column may be names, a dictionary of names or codes; all give the store's codes."""
    names = ["dqn", "expert", "scripted", "dqn"]
    want = [1, 0, 2, 1]
    for col in (pa.array(names), pa.array(names, pa.large_string()), pa.array(names).dictionary_encode(),
                pa.array(want, pa.int64()), pa.array(want, pa.uint8())):
        rb = pa.record_batch([col], names=["actor"])
        assert P.from_arrow(rb, SCHEMA, VOCAB)["actor"].tolist() == want


def test_unknown_and_missing_actors_get_the_stores_errors():
    """An unknown name is the store's UnknownActorError naming it; a null actor is MissingActorError;
    a float actor column names the types it accepts."""
    with pytest.raises(UnknownActorError, match="cheater"):
        P.from_arrow(pa.record_batch([pa.array(["dqn", "cheater"])], names=["actor"]), SCHEMA, VOCAB)
    with pytest.raises(MissingActorError, match="first at row 1"):
        P.from_arrow(pa.record_batch([pa.array(["dqn", None])], names=["actor"]), SCHEMA, VOCAB)
    with pytest.raises(UnknownActorError, match="Arrow type float"):
        P.from_arrow(pa.record_batch([pa.array([1.0], pa.float32())], names=["actor"]), SCHEMA, VOCAB)


def test_nulls_and_non_numeric_columns_are_refused():
    """A null value and a string column are protocol errors that name the column."""
    with pytest.raises(ProtocolError, match="'reward' has 1 null value.*first at row 2"):
        P.from_arrow(pa.record_batch([pa.array([1.0, 2.0, None], pa.float32())], names=["reward"]), SCHEMA, VOCAB)
    with pytest.raises(ProtocolError, match="'reward' has Arrow type string"):
        P.from_arrow(pa.record_batch([pa.array(["1"])], names=["reward"]), SCHEMA, VOCAB)


def test_shapes_are_restored_or_left_for_the_store_to_refuse():
    """A list of the column's size gets the column's shape; any other size stays flat (the store
    then refuses it with ShapeError); a zero-width column is filled, never sent."""
    schema = Schema((Column("board", np.dtype("int8"), (2, 3)), Column("none", np.dtype("float32"), (0,))))
    board = np.arange(12, dtype=np.int8).reshape(2, 2, 3)
    rb = P.to_arrow({"board": board}, P.arrow_schema(schema, VOCAB))
    assert rb.schema.names == ["board"] and rb.schema.field("board").metadata == {b"shape": b"[2, 3]"}
    out = P.from_arrow(rb, schema, VOCAB)
    assert out["board"].tobytes() == board.tobytes() and out["board"].shape == (2, 2, 3)
    assert out["none"].shape == (2, 0)
    wrong = pa.record_batch([pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(10, np.int8)), 5)], names=["board"])
    assert P.from_arrow(wrong, schema, VOCAB)["board"].shape == (2, 5)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 40), start=st.integers(0, 10_000), client=st.integers(0, 20))
def test_a_block_survives_the_wire_bit_for_bit(n, start, client):
    """Any block a client sends arrives as the same bytes, actor names as their codes."""
    block = client_block(client, start, n)
    rb = _block_to_arrow(block, SCHEMA, VOCAB)
    # through the IPC format, as a Flight stream carries it
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rb.schema) as w:
        w.write_batch(rb)
    got = P.from_arrow(pa.ipc.open_stream(sink.getvalue()).read_next_batch(), SCHEMA, VOCAB)
    for k, v in block.items():
        want = VOCAB.codes(v) if k == "actor" else np.asarray(v)
        assert got[k].tobytes() == want.tobytes() and got[k].shape == want.shape, k
    back = _batch_from_arrow(P.to_arrow(got, P.arrow_schema(SCHEMA, VOCAB, list(got))), SCHEMA, list(got), copy=True)
    assert all(back[k].tobytes() == got[k].tobytes() and back[k].flags.writeable for k in got)


def test_requests_must_be_small_json_objects_of_the_right_kinds():
    """Tickets and action bodies: JSON objects only, keys of the declared kinds, finite numbers."""
    with pytest.raises(ProtocolError, match="not UTF-8 JSON"):
        P.parse_json(b"{batch", "DoGet ticket")
    with pytest.raises(ProtocolError, match="got a JSON list"):
        P.parse_json(b"[1]", "DoGet ticket")
    with pytest.raises(ProtocolError, match="at most"):
        P.parse_json(b" " * (P.MAX_REQUEST_BYTES + 1), "x")
    with pytest.raises(ProtocolError, match="nested too deeply"):
        P.parse_json(b"[" * 100_000, "DoGet ticket")
    req = P.parse_json(b'{"batch_size": true, "timeout": 1e999, "seed": 3}', "t")
    with pytest.raises(ProtocolError, match="batch_size=True; expected an integer"):
        P.get(req, "batch_size", int, "t")
    with pytest.raises(ProtocolError, match="timeout=inf; expected a finite number"):
        P.get(req, "timeout", (int, float), "t")
    with pytest.raises(ProtocolError, match="'columns' is required"):
        P.get(req, "columns", list, "t", required=True)
    assert P.get(req, "seed", int, "t") == 3 and P.get(req, "strategy", str, "t", "uniform") == "uniform"

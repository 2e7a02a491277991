"""The wire format (PROTOCOL.md): store columns as Arrow types, batches both ways, JSON requests.

A column of per-row shape ``()`` travels as its own Arrow type; any other shape as a
``fixed_size_list`` of the flattened row (so ``(2, 3)`` is a list of 6, the shape kept in the
field's metadata under ``shape``). Numbers keep their bytes exactly, which is what makes a
remote batch bit-identical to a local one. The actor column arrives as names (utf8, large_utf8
or dictionary of utf8) or integer codes, and leaves as ``uint8`` codes with the vocabulary in
the schema's metadata.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..store import Actors, Schema, errors as store_errors
from .errors import ProtocolError

PROTOCOL_VERSION = 1
INGEST = b"ingest"          # DoPut descriptor path: [b"ingest", client name]
SHAPE_KEY = b"shape"        # field metadata: the column's per-row shape as JSON
ACTORS_KEY = b"actors"      # schema metadata: the actor vocabulary, JSON list, code = index
SCHEMA_KEY = b"store_schema"  # schema metadata: the store's schema JSON
MAX_REQUEST_BYTES = 16 << 20  # a ticket or action body larger than this is refused, not parsed (~600k priorities)


def zero_width(column) -> bool:
    """True for a column whose rows hold no values (shape ``(0,)``, e.g. no continuous action).

    Such columns never travel: Arrow refuses (or crashes on) fixed-size lists of size 0, and
    there is nothing to send. The server fills them for ingestion; clients add them to batches.
    """
    return column.shape != () and int(np.prod(column.shape, dtype=np.int64)) == 0


def arrow_type(column) -> pa.DataType:
    """The Arrow type one store column travels as."""
    base = pa.from_numpy_dtype(column.dtype)
    if column.shape == ():
        return base
    return pa.list_(base, int(np.prod(column.shape, dtype=np.int64)))


def arrow_schema(schema: Schema, actors: Actors, names=None) -> pa.Schema:
    """The Arrow schema of ``schema``'s columns (``names``: a subset, in that order); actor as codes."""
    fields = []
    for name in (schema.names if names is None else names):
        c = schema[name]
        if zero_width(c):
            continue
        meta = None if c.shape == () else {SHAPE_KEY: json.dumps(list(c.shape)).encode()}
        fields.append(pa.field(c.name, arrow_type(c), nullable=False, metadata=meta))
    return pa.schema(fields, metadata={ACTORS_KEY: actors.to_json().encode(), SCHEMA_KEY: schema.to_json().encode()})


def to_arrow(batch: dict, schema: pa.Schema) -> pa.RecordBatch:
    """A dict of numpy arrays (one entry per row) as a record batch of ``schema`` (no copy for numbers)."""
    arrays = []
    for field in schema:
        a = np.ascontiguousarray(batch[field.name])
        if pa.types.is_fixed_size_list(field.type):
            flat = pa.array(a.reshape(-1), type=field.type.value_type)
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, field.type.list_size))
        else:
            arrays.append(pa.array(a, type=field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def from_arrow(rb: pa.RecordBatch, schema: Schema, actors: Actors) -> dict:
    """A received record batch as the mapping ``extend`` takes.

    Columns the store does not know are passed on under their names, so that ``extend`` refuses
    them with its own message; shapes are restored from the store's schema where the flattened
    length fits, and left flat otherwise (``extend`` then names the wrong shape).
    """
    out = {}
    for name, col in zip(rb.schema.names, rb.columns):
        if col.null_count:
            if name == "actor":
                raise store_errors.MissingActorError(
                    f"extend: column 'actor' has {col.null_count} null value(s) (first at row "
                    f"{_first_null(col)}); every row needs an actor from {list(actors.names)}")
            raise ProtocolError(f"column {name!r} has {col.null_count} null value(s) (first at row {_first_null(col)}); "
                                "every value must be present (no nulls)")
        if name == "actor":
            out[name] = _actor_codes(col, actors)
            continue
        t = col.type
        if pa.types.is_fixed_size_list(t):
            flat = col.flatten().to_numpy(zero_copy_only=False)
            shape = schema[name].shape if name in schema else None
            if shape is not None and int(np.prod(shape, dtype=np.int64)) == t.list_size:
                out[name] = flat.reshape((len(col),) + tuple(shape))
            else:
                out[name] = flat.reshape(len(col), t.list_size)
        elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
            out[name] = col.to_numpy(zero_copy_only=False)
        else:
            raise ProtocolError(f"column {name!r} has Arrow type {t}; expected a number or bool, or a "
                                "fixed_size_list of them for a column with a per-row shape (PROTOCOL.md)")
    for c in schema:
        if zero_width(c) and c.name not in out:
            out[c.name] = np.zeros((rb.num_rows,) + c.shape, c.dtype)
    return out


def _first_null(col) -> int:
    return int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])


def _actor_codes(col, actors: Actors) -> np.ndarray:
    """Names or codes -> uint8 codes; the vocabulary check is the store's (``Actors.codes``)."""
    t = col.type
    if pa.types.is_integer(t):
        return actors.codes(col.to_numpy(zero_copy_only=False))
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        col = pc.dictionary_encode(col)
        t = col.type
    if pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)):
        # one vocabulary lookup per distinct name, not per row
        table = actors.codes(np.array(col.dictionary.to_pylist(), dtype=object))
        if len(table) == 0:
            return np.zeros(0, np.uint8)
        return table[col.indices.to_numpy(zero_copy_only=False)]
    raise store_errors.UnknownActorError(
        f"extend: column 'actor' has Arrow type {t}; expected names (utf8 or a dictionary of utf8) from "
        f"{list(actors.names)} or their integer codes 0..{len(actors) - 1}")


# ---------------------------------------------------------------------------------------- requests
def parse_json(body: bytes, what: str) -> dict:
    """A JSON object from a ticket or action body, refused clearly when it is not one."""
    if len(body) > MAX_REQUEST_BYTES:
        raise ProtocolError(f"{what}: {len(body)} bytes; a request is a small JSON object (at most "
                            f"{MAX_REQUEST_BYTES} bytes)")
    try:
        value = json.loads(bytes(body).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"{what}: not UTF-8 JSON ({e}); expected a JSON object as PROTOCOL.md describes") from None
    except RecursionError:  # a body of nested brackets from a hostile client: a clear refusal, not a raw error
        raise ProtocolError(f"{what}: JSON nested too deeply; a request is a flat JSON object (PROTOCOL.md)") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"{what}: got a JSON {type(value).__name__}; expected a JSON object")
    return value


def get(req: dict, key: str, kinds, what: str, default=None, required: bool = False):
    """``req[key]`` checked against ``kinds`` (a type or tuple), with the protocol's message."""
    if key not in req or req[key] is None:
        if required:
            raise ProtocolError(f"{what}: {key!r} is required")
        return default
    v = req[key]
    if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in _as_tuple(kinds)):
        raise ProtocolError(f"{what}: {key}={v!r}; expected {_kind_names(kinds)}")
    if isinstance(v, float) and not math.isfinite(v):
        raise ProtocolError(f"{what}: {key}={v!r}; expected a finite number")
    return v


def _as_tuple(kinds) -> tuple:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _kind_names(kinds) -> str:
    names = {int: "an integer", float: "a number", str: "a string", dict: "an object", list: "a list",
             bool: "true or false"}
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kinds))


def error_text(e: BaseException) -> str:
    """What the server sends back for a refused request: the error's class name, a colon, its message.

    The Python client raises the same class again for a name in ``store.errors`` or
    ``remote.errors`` (looked up by name; nothing is unpickled); other clients show the text.
    """
    return f"{type(e).__name__}: {e}"

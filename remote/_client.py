"""Python clients of a served run: ``RemoteWriter`` (the writer's calling conventions) and
``RemoteSampler`` (the Sampler's). Other languages speak the protocol directly (PROTOCOL.md).
"""

from __future__ import annotations

import json
import re
from collections import deque

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight

from ..store import Actors, Schema, errors as store_errors
from ..store.errors import StoreError
from . import _protocol as P
from . import errors as remote_errors
from .errors import ConnectionLostError, ProtocolError

_NAMED = re.compile(r"\b([A-Z][A-Za-z]*(?:Error|Timeout)): ")


def connect(location: str, token: str | None = None, tls_root_certs: bytes | None = None):
    """A ``pyarrow.flight.FlightClient`` for ``location`` and the call options carrying ``token``."""
    kw = {"tls_root_certs": tls_root_certs} if tls_root_certs else {}
    client = flight.FlightClient(location, **kw)
    headers = [(b"authorization", b"Bearer " + token.encode())] if token else []
    return client, flight.FlightCallOptions(headers=headers)


def _raised(e: Exception) -> Exception:
    """The store's or remote's own error class again, from a refused call's text (PROTOCOL.md, Errors)."""
    text = str(e)
    m = _NAMED.search(text)
    if m:
        cls = getattr(store_errors, m.group(1), None) or getattr(remote_errors, m.group(1), None)
        if isinstance(cls, type) and issubclass(cls, StoreError):
            msg = text[m.end():].split("\nDetail:")[0].split(". Detail:")[0].strip()
            return cls(msg)
    if isinstance(e, flight.FlightUnavailableError):
        return ConnectionLostError(f"the server went away: {text.splitlines()[0] if text else e!r}")
    return e


def _info(client, options) -> dict:
    try:
        return json.loads(next(iter(client.do_action(flight.Action("info", b"{}"), options))).body.to_pybytes())
    except flight.FlightError as e:
        raise _raised(e) from None


class RemoteWriter:
    """Write rows to client ``name``'s shard of the run served at ``location``.

    ``append(actor=..., **row)``, ``extend(block)`` and ``commit()`` behave as a store writer's:
    rows are durable once ``commit()`` returns (it returns the shard's committed rows), a bad row
    or block raises the store's error, and ``close()`` commits. ``acknowledged`` counts this
    writer's rows the server has confirmed committed. Blocks go out as they come (``append``
    gathers ``batch_rows`` rows first); at most ``in_flight`` blocks wait for their answer.

    BEWARE: blocks are checked by the server, so a refused block raises at a later call (the
    next ``extend`` or ``commit`` that waits for its answer), and blocks sent after it are not
    kept either: the error says how many rows were kept. The stream ends there; the writer opens
    a new one at the next call. Call ``commit()`` after a block to learn its fate at once.
    ``append`` checks each row's columns, shapes and finiteness itself, so one bad row is refused
    alone, as by a local writer.
    """

    def __init__(self, location: str, name: str, *, token: str | None = None, tls_root_certs: bytes | None = None,
                 batch_rows: int = 4096, in_flight: int = 8):
        self.location, self.name = location, name
        self._client, self._options = connect(location, token, tls_root_certs)
        try:
            info = _info(self._client, self._options)
            if info["kind"] != "run":
                raise ProtocolError(f"{location} serves a store, not a run; RemoteWriter writes a client's shard "
                                    "of a run")
        except BaseException:
            self._client.close()
            raise
        self.schema = Schema.from_json(json.dumps(info["schema"]))
        self.actors = Actors(info["actors"])
        self.batch_rows, self.in_flight = int(batch_rows), int(in_flight)
        self._rows: list[dict] = []
        self._stream = None             # (writer, ack reader, arrow schema)
        self._pending: deque = deque()  # rows sent per unanswered block, oldest first
        self._sent = 0                  # rows sent on this stream
        self._received = 0              # of them, rows the server answered it accepted
        self._stream_base = 0           # acknowledged rows before this stream
        self.acknowledged = 0
        self.shard_rows = 0
        self._closed = False

    # ------------------------------------------------------------------ the writer's calls
    def append(self, *, actor, **columns) -> None:
        """Add one row; it is sent with the next ``batch_rows`` rows, or at ``commit()``."""
        self._check_open("append")
        self.actors.code(actor)  # an unknown actor raises here, as in a local writer
        _check_row(self.schema, columns)  # and a bad value: one bad row must not sink the rows gathered with it
        self._rows.append(dict(columns, actor=actor))
        if len(self._rows) >= self.batch_rows:
            self._send_rows()

    def extend(self, columns) -> int:
        """Send a block (column -> one value per row, actor as names or codes); returns its row count."""
        self._check_open("extend")
        self._send_rows()
        return self._send(dict(columns), commit=False)

    def commit(self) -> int:
        """Send what is gathered, ask the server to commit, wait for every answer; the shard's committed rows."""
        self._check_open("commit")
        if self._rows:
            self._send_rows(commit=True)
        else:
            self._send({}, commit=True)
        self._drain(0)
        return self.shard_rows

    def close(self) -> None:
        """Commit and end the stream."""
        if self._closed:
            return
        try:
            if self._rows or self._stream is not None:
                self.commit()
            self._end_stream()
        finally:
            self._closed = True
            self._client.close()

    def __enter__(self) -> "RemoteWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ the stream
    def _check_open(self, where):
        if self._closed:
            raise store_errors.ClosedStoreError(f"{where}: this RemoteWriter for {self.name!r} is closed")

    def _send_rows(self, commit=False) -> None:
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        block = {k: [r[k] for r in rows] for k in rows[0]}
        self._send(block, commit)

    def _send(self, block: dict, commit: bool) -> int:
        rb = _block_to_arrow(block, self.schema, self.actors) if block else None
        n = 0 if rb is None else rb.num_rows
        if self._stream is not None and rb is not None and not rb.schema.equals(self._stream[2]):
            self._end_stream()  # other columns than this stream's: a new stream with their schema
        if self._stream is None:
            schema = rb.schema if rb is not None else P.arrow_schema(self.schema, self.actors)
            try:
                w, r = self._client.do_put(flight.FlightDescriptor.for_path(P.INGEST, self.name.encode()), schema,
                                           self._options)
            except flight.FlightError as e:
                raise _raised(e) from None
            self._stream, self._sent, self._received, self._stream_base = (w, r, schema), 0, 0, self.acknowledged
        w = self._stream[0]
        meta = pa.py_buffer(b'{"commit": true}') if commit else None
        try:
            if rb is None:
                w.write_metadata(meta)
            elif meta is None:
                w.write_batch(rb)
            else:
                w.write_with_metadata(rb, meta)
        except (flight.FlightError, pa.ArrowException) as e:
            self._fail(e)
        self._pending.append(n)
        self._sent += n
        self._drain(self.in_flight)
        return n

    def _drain(self, keep: int) -> None:
        """Read answers until at most ``keep`` blocks wait for one."""
        r = self._stream[1] if self._stream else None
        while r is not None and len(self._pending) > keep:
            try:
                buf = r.read()
            except (flight.FlightError, pa.ArrowException) as e:
                self._fail(e)
            if buf is None:
                self._fail(ConnectionLostError("the server ended the stream without answering every block"))
            self._pending.popleft()
            self._take(buf)

    def _take(self, buf) -> None:
        ack = json.loads(buf.to_pybytes())
        self._received = ack["received"]
        self.acknowledged = self._stream_base + ack["committed"]
        self.shard_rows = ack["shard_rows"]

    def _fail(self, e: Exception):
        """The stream is broken: the server refused a block or went away. Find out why, then raise
        saying which rows were kept (blocks in flight after a refused one are not)."""
        w, r, _ = self._stream
        self._stream, self._pending = None, deque()
        err = e
        try:
            w.done_writing()
            while (buf := r.read()) is not None:
                self._take(buf)
            w.close()
        except (flight.FlightError, pa.ArrowException) as e2:  # the server's reason comes with the close
            err = e2 if _NAMED.search(str(e2)) else e
        except Exception:
            pass
        exc = _raised(err)
        if isinstance(exc, StoreError) and not isinstance(exc, ConnectionLostError):
            # refused: the server closed the shard, committing every row it had accepted
            self.acknowledged = self._stream_base + self._received
            exc.args = (f"{exc.args[0] if exc.args else exc} [RemoteWriter {self.name!r}: the refused block and "
                        f"those sent after it ({self._sent - self._received} rows) were not kept; this writer's "
                        f"{self.acknowledged} rows before them are committed]",)
        raise exc from None

    def _end_stream(self) -> None:
        if self._stream is None:
            return
        w, r, _ = self._stream
        try:
            if self.acknowledged < self._stream_base + self._sent:  # the close commits them: be told so
                w.write_metadata(pa.py_buffer(b'{"commit": true}'))
                self._pending.append(0)
            w.done_writing()
            self._drain(0)
            w.close()
        except (flight.FlightError, pa.ArrowException) as e:
            self._stream = None
            raise _raised(e) from None
        self._stream, self._pending = None, deque()


def _check_row(schema: Schema, columns: dict) -> None:
    """The store's checks of one appended row that need no store: names, shapes, finiteness."""
    auto = set(schema.auto_columns)
    missing = [c.name for c in schema if c.name not in columns and c.name != "actor" and c.name not in auto
               and not P.zero_width(c)]
    if missing:
        raise store_errors.MissingColumnError(f"append: column(s) {missing} missing; a row needs every column of "
                                              f"{list(schema.names)} but {sorted(auto)} (filled by the store)")
    for name, v in columns.items():
        if name not in schema:
            raise store_errors.UnknownColumnError(f"append: column {name!r} is not in the store's schema "
                                                  f"{list(schema.names)}")
        c, a = schema[name], np.asarray(v)
        if a.shape != c.shape:
            raise store_errors.ShapeError(f"append: column {name!r} got shape {a.shape}, expected {c.shape}")
        if c.is_float and not c.allow_nonfinite and a.dtype.kind in "fc" and not np.isfinite(a).all():
            raise store_errors.NonFiniteError(f"append: column {name!r} holds NaN or inf; non-finite values are "
                                              "rejected. Fix the value, or create the store with allow_nonfinite=True")


def _block_to_arrow(block: dict, schema: Schema, actors: Actors) -> pa.RecordBatch:
    """A block as Arrow: known columns as the protocol's types (values as given: the server's
    ``extend`` casts and checks them), the actor as codes (checked here, as a local writer does)."""
    arrays, fields = [], []
    order = {c: i for i, c in enumerate(schema.names)}  # one order whatever the caller's: one stream schema
    for name in sorted(block, key=lambda c: (order.get(c, len(order)), c)):
        v = block[name]
        if name == "actor":
            a = actors.codes(v)
            arrays.append(pa.array(a, pa.uint8()))
        elif name in schema and P.zero_width(schema[name]):
            continue  # never travels (PROTOCOL.md): the server fills it
        else:
            a = np.asarray(v)
            if a.ndim > 1:
                width = int(np.prod(a.shape[1:]))
                if width == 0:
                    continue  # Arrow has no fixed-size list of size 0 (PROTOCOL.md)
                flat = pa.array(np.ascontiguousarray(a).reshape(-1))
                arrays.append(pa.FixedSizeListArray.from_arrays(flat, width))
            else:
                arrays.append(pa.array(a))
        fields.append(pa.field(name, arrays[-1].type, nullable=False))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


class RemoteSampler:
    """Batches from the run or store served at ``location``, with the ``Sampler``'s arguments.

    The server keeps one ``Sampler`` for this object, so ``seed=s`` gives the batches a local
    ``Sampler(path, ..., seed=s)`` gives, bit for bit. ``sample()``, ``update_priorities``,
    ``priorities``, ``last_actor_counts``, iteration and ``close()`` work as there; batches
    hold the columns plus ``row``, ``weight`` and, for a run, ``shard`` (with ``shard_names``).
    ``stream=True`` (the default except for prioritized) keeps one DoGet open and lets the
    server draw ahead while the learner trains; prioritized sampling asks per batch, so that
    priorities updated after a batch count for the next. ``timeout``: seconds a rate-limited
    batch may wait before ``RateLimitTimeout``.

    BEWARE: numpy arrays of a batch are read-only views of the received message (a local
    Sampler's are writable): copying them into fresh memory took longer than receiving them
    here. ``np.array(batch[k])`` to change one; ``as_torch=True`` copies (torch wants writable memory).
    """

    def __init__(self, location: str, batch_size: int, *, strategy: str = "uniform", actor_fractions=None,
                 alpha=None, beta=None, seed=None, columns=None, as_torch: bool = False, timeout=None,
                 stream: bool | None = None, token: str | None = None, tls_root_certs: bytes | None = None):
        self.location, self.batch_size, self.as_torch = location, batch_size, as_torch
        self._client, self._options = connect(location, token, tls_root_certs)
        req = {"batch_size": batch_size, "strategy": strategy, "actor_fractions": actor_fractions, "alpha": alpha,
               "beta": beta, "seed": seed, "columns": None if columns is None else list(columns), "timeout": timeout}
        try:
            info = _info(self._client, self._options)
            self._sid = self._action("open_sampler", req)["sampler"]
        except BaseException:
            self._client.close()
            raise
        self.actors = Actors(info["actors"])
        self.window = info["window"]
        self._schema = Schema.from_json(json.dumps(info["schema"]))
        self._columns = self._schema.names if columns is None else tuple(columns)
        self._beta = beta
        self._stream_mode = (str(strategy).lower() != "prioritized") if stream is None else bool(stream)
        self._reader = None
        self._closed = False
        self.last_actor_counts = np.zeros(len(self.actors), np.int64)
        self.rows_in_window = (0, 0)
        self.shard_names: list[str] = []

    def _action(self, kind: str, req: dict) -> dict:
        try:
            results = list(self._client.do_action(flight.Action(kind, json.dumps(req).encode()), self._options))
        except flight.FlightError as e:
            raise _raised(e) from None
        return json.loads(results[0].body.to_pybytes())

    def sample(self) -> dict:
        """One batch: numpy arrays (``as_torch``: tensors) with ``row``, ``weight`` (and ``shard``)."""
        if self._closed:
            raise store_errors.ClosedStoreError("sample: this RemoteSampler is closed")
        try:
            if self._stream_mode:
                if self._reader is None:
                    self._reader = self._client.do_get(flight.Ticket(json.dumps(
                        {"sampler": self._sid, "batches": 0}).encode()), self._options)
                chunk = self._reader.read_chunk()
            else:
                reader = self._client.do_get(flight.Ticket(json.dumps(
                    {"sampler": self._sid, "batches": 1}).encode()), self._options)
                chunk = reader.read_chunk()
        except (flight.FlightError, pa.ArrowException) as e:
            self._reader = None
            raise _raised(e) from None
        meta = json.loads(chunk.app_metadata.to_pybytes())
        self.last_actor_counts = np.asarray(meta["actor_counts"], np.int64)
        self.rows_in_window = tuple(meta["window"])
        self.shard_names = meta.get("shards", [])
        batch = _batch_from_arrow(chunk.data, self._schema, self._columns, copy=self.as_torch)
        if self.as_torch:
            import torch

            return {k: torch.from_numpy(v) for k, v in batch.items()}
        return batch

    def update_priorities(self, rows, priorities) -> None:
        """Set raw priorities of ``rows`` (prioritized), as ``Sampler.update_priorities``."""
        rows, priorities = np.asarray(_np(rows), np.int64), np.asarray(_np(priorities), np.float64)
        self._action("update_priorities", {"sampler": self._sid, "rows": rows.tolist(),
                                           "priorities": priorities.tolist()})

    @property
    def beta(self) -> float:
        """Importance-sampling exponent (prioritized); may be annealed between batches, as a Sampler's."""
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = self._action("set_beta", {"sampler": self._sid, "beta": value})["beta"]

    def priorities(self, rows) -> np.ndarray:
        rows = np.asarray(_np(rows), np.int64)
        return np.asarray(self._action("priorities", {"sampler": self._sid, "rows": rows.tolist()})["priorities"])

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        return self.sample()

    def close(self) -> None:
        """End the session on the server (a prioritized one saves its priorities there)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._reader is not None:
                self._reader.cancel()
            self._action("close_sampler", {"sampler": self._sid})
        except (StoreError, flight.FlightError):
            pass  # the server went away: its sessions went with it
        finally:
            self._client.close()

    def __enter__(self) -> "RemoteSampler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _np(x):
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x


def _batch_from_arrow(rb: pa.RecordBatch, schema: Schema, columns, copy: bool) -> dict:
    """A received batch as numpy arrays of the store's shapes: read-only views of the message
    unless ``copy`` (copying 8 MB into fresh pages cost more than receiving it, BENCHMARKS.md)."""
    out = {c: np.zeros((rb.num_rows,) + schema[c].shape, schema[c].dtype)
           for c in columns if P.zero_width(schema[c])}  # columns that do not travel
    for name, col in zip(rb.schema.names, rb.columns):
        if pa.types.is_fixed_size_list(col.type):
            a = col.flatten().to_numpy(zero_copy_only=False).reshape((len(col),) + tuple(schema[name].shape))
        else:
            a = col.to_numpy(zero_copy_only=False)
        out[name] = np.array(a) if copy and not a.flags.writeable else a
    return out

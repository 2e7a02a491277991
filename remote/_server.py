"""``ReplayServer``: a run (or a store) served over Arrow Flight; the protocol is PROTOCOL.md.

Ingestion gives each client its own shard of the served run (``Run.create_shard(client)``):
no row of one client waits for another's lock or validation, a bad batch stops only its own
stream, and the audit of the run names each client's shard, as for local workers. A shared
writer would need the store's writer lock around every extend and commit (the ``conc`` work);
this server never shares a writer, so it needs none. Sampling goes through the store's own
``Sampler`` over the served path, one per sampler session, so a remote batch is the batch a
local ``Sampler`` with the same seed draws.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight

from ..store import ReplayStore, Run, Sampler
from ..store.errors import StoreError
from . import _protocol as P
from ._ratelimit import SampleToInsertRatio
from .errors import AuthError, ProtocolError, ServerConfigError, ShardBusyError

ACTIONS = {
    "info": "the served path: kind (run or store), schema, actors, window, shard names, rate limiter",
    "rows": "committed rows: per shard of a run, or of the store",
    "open_sampler": "make a sampler session (JSON: batch_size, strategy, actor_fractions, alpha, beta, seed, "
                    "columns, timeout); answers its id and the batches' Arrow schema",
    "update_priorities": "JSON {sampler, rows, priorities}: set raw priorities of rows (prioritized sessions)",
    "priorities": "JSON {sampler, rows}: answers the raw priorities of rows",
    "set_beta": "JSON {sampler, beta}: the importance-sampling exponent of a prioritized session (annealing)",
    "close_sampler": "JSON {sampler}: end a session (a prioritized one saves its priorities if it can)",
}


SESSION_IDLE_SECONDS = 3600.0  # a session unused this long is closed (its client died without closing it)


class _Session:
    """One sampler and the lock that keeps two calls from drawing from it at once."""

    def __init__(self, sampler: Sampler, schema: pa.Schema, timeout):
        self.sampler, self.schema, self.timeout = sampler, schema, timeout
        self.lock = threading.Lock()
        self.used = time.monotonic()


class ReplayServer(flight.FlightServerBase):
    """Serve the run or store at ``path`` on ``location`` (``grpc+tcp://127.0.0.1:0`` picks a port).

    ``token``: every call must carry ``authorization: Bearer <token>``; ``tls``: a
    ``(cert_pem, key_pem)`` pair of bytes; ``rate_limiter``: a ``SampleToInsertRatio`` or None;
    ``shard_options``: ``commit_every``, ``commit_seconds``, ``fsync`` for the clients' shards.
    ``serve()`` blocks; ``shutdown()`` from another thread ends it.
    """

    def __init__(self, path, location: str, *, token: str | None = None, tls: tuple | None = None,
                 rate_limiter: SampleToInsertRatio | None = None, shard_options: dict | None = None):
        self.path = str(path)
        if Run.is_run(self.path):
            self.run = Run.open(self.path)
            self.schema, self.actors, self.window = self.run.schema, self.run.actors, self.run.window
        else:
            self.run = None
            with ReplayStore.open(self.path) as s:  # a store: sampled, not written (it has one writer)
                self.schema, self.actors, self.window = s.schema, s.actors, s.window
        middleware = {"auth": _TokenCheck(token)} if token else {}
        super().__init__(location, tls_certificates=[tls] if tls else None, middleware=middleware)
        self.limiter = rate_limiter
        self.shard_options = dict(shard_options or {})
        self._lock = threading.Lock()
        self._writing: set[str] = set()      # client names with a live DoPut stream
        self._sessions: dict[str, _Session] = {}
        pa.array(np.zeros(1))  # pyarrow imports pandas at its first numpy conversion (~0.4 s here): not in a call

    # ------------------------------------------------------------------ ingestion
    def do_put(self, context, descriptor, reader, writer):
        try:
            name = self._client_name(descriptor)
        except StoreError as e:
            raise _refuse(e) from None
        with self._lock:
            if name in self._writing:
                raise _refuse(ShardBusyError(
                    f"client {name!r} already has a stream writing its shard; one stream per client name "
                    "(give each client its own name, or end the other stream first)"))
            self._writing.add(name)
        try:
            self._ingest(context, name, reader, writer)
        finally:
            with self._lock:
                self._writing.discard(name)

    def _ingest(self, context, name, reader, writer):
        try:
            store = self.run.create_shard(name, **self.shard_options)
        except (StoreError, OSError) as e:
            raise _refuse(e) from None
        try:
            base = len(store)  # this shard's committed rows before the stream: the client's earlier sessions
            received = 0
            while True:
                try:
                    chunk = reader.read_chunk()
                except StopIteration:
                    break
                if self.limiter is not None and not self.limiter.wait_insert(context.is_cancelled):
                    break
                data = chunk.data
                try:
                    meta = P.parse_json(chunk.app_metadata.to_pybytes(), "DoPut app_metadata") \
                        if chunk.app_metadata is not None and chunk.app_metadata.size else {}
                    if data is not None and data.num_rows:
                        n = store.extend(P.from_arrow(data, self.schema, self.actors))
                        received += n
                        if self.limiter is not None:
                            self.limiter.inserted(n)
                    if P.get(meta, "commit", bool, "DoPut app_metadata", False):
                        store.commit()
                except StoreError as e:
                    # refused: nothing of this batch was kept (extend checks a whole block first);
                    # the rows before it are committed when the store closes below
                    raise _refuse(e) from None
                writer.write(json.dumps({"received": received, "committed": min(received, len(store) - base),
                                         "shard_rows": len(store)}).encode())
        finally:
            store.close()  # commits what was received: a client that vanished loses nothing sent whole

    def _client_name(self, descriptor) -> str:
        if self.run is None:
            raise ProtocolError(f"this server serves the store {self.path}, which has one writer of its own; "
                                "ingestion needs a run (Run.create), where each client writes its own shard")
        path = descriptor.path if descriptor.descriptor_type == flight.DescriptorType.PATH else None
        if not path or len(path) != 2 or path[0] != P.INGEST:
            raise ProtocolError(f"DoPut descriptor {path!r}: expected the path [b'ingest', <client name>]")
        try:
            name = path[1].decode("utf-8")
            self.run.shard_path(name)
        except (UnicodeDecodeError, ValueError) as e:
            raise ProtocolError(f"DoPut client name: {e}") from None
        return name

    # ------------------------------------------------------------------ sampling
    def do_get(self, context, ticket):
        try:
            req = P.parse_json(ticket.ticket, "DoGet ticket")
            if "sampler" in req:
                session, transient = self._session(req, "DoGet"), False
            else:
                session, transient = self._open_session(req), True
            batches = P.get(req, "batches", int, "DoGet ticket", 1)
            if batches < 0:
                raise ProtocolError(f"DoGet ticket: batches={batches}; expected >= 1, or 0 for a stream without end")
        except StoreError as e:
            raise _refuse(e) from None
        return flight.GeneratorStream(session.schema, self._batches(context, session, batches, transient))

    def _batches(self, context, session: _Session, batches: int, transient: bool):
        try:
            k = 0
            while batches == 0 or k < batches:
                session.used = time.monotonic()  # a long stream keeps its session alive
                with session.lock:
                    try:
                        if self.limiter is not None and not self.limiter.wait_sample(
                                lambda: _rows_now(session.sampler), session.timeout, context.is_cancelled):
                            return
                        b = session.sampler.sample()
                    except StoreError as e:  # RateLimitTimeout, EmptyWindowError, ...
                        raise _refuse(e) from None
                    meta = {"actor_counts": session.sampler.last_actor_counts.tolist(),
                            "window": list(session.sampler.rows_in_window)}
                    if self.run is not None:
                        meta["shards"] = list(session.sampler.store.shard_names)
                if self.limiter is not None:
                    self.limiter.sampled(len(b["row"]))
                yield P.to_arrow(b, session.schema), json.dumps(meta).encode()
                k += 1
        finally:
            if transient:
                session.sampler.close()

    def _open_session(self, req: dict) -> _Session:
        what = "sampler request"
        columns = P.get(req, "columns", list, what)
        fractions = P.get(req, "actor_fractions", dict, what)
        timeout = P.get(req, "timeout", (int, float), what)
        sampler = Sampler(self.path, P.get(req, "batch_size", int, what, required=True),
                          strategy=P.get(req, "strategy", str, what, "uniform"), actor_fractions=fractions,
                          alpha=P.get(req, "alpha", (int, float), what), beta=P.get(req, "beta", (int, float), what),
                          seed=P.get(req, "seed", int, what), columns=columns)
        names = list(self.schema.names) if columns is None else list(columns)
        base = P.arrow_schema(self.schema, self.actors, names)
        extra = [pa.field("row", pa.int64(), nullable=False), pa.field("weight", pa.float32(), nullable=False)]
        if self.run is not None:
            extra.append(pa.field("shard", pa.int64(), nullable=False))
        schema = pa.schema(list(base) + extra, metadata=base.metadata)
        return _Session(sampler, schema, timeout)

    def _session(self, req: dict, what: str) -> _Session:
        sid = P.get(req, "sampler", str, what, required=True)
        with self._lock:
            session = self._sessions.get(sid)
            if session is not None:
                session.used = time.monotonic()
        if session is None:
            raise ProtocolError(f"{what}: no sampler session {sid!r} (closed, or made by a server that has "
                                "since restarted); open one with the 'open_sampler' action")
        return session

    # ------------------------------------------------------------------ actions
    def list_actions(self, context):
        return list(ACTIONS.items())

    def do_action(self, context, action):
        try:
            kind = action.type
            if kind not in ACTIONS:
                raise ProtocolError(f"action {kind!r} is unknown; the actions are {sorted(ACTIONS)}")
            body = action.body.to_pybytes() if action.body is not None else b""
            req = P.parse_json(body or b"{}", f"action {kind!r}")
            answer = getattr(self, "_action_" + kind)(req)
        except StoreError as e:
            raise _refuse(e) from None
        return [json.dumps(answer).encode()]

    def _action_info(self, req):
        info = {"protocol": P.PROTOCOL_VERSION, "kind": "run" if self.run is not None else "store",
                "schema": json.loads(self.schema.to_json()), "actors": list(self.actors.names),
                "window": self.window, "rate_limiter": None if self.limiter is None else self.limiter.state()}
        if self.run is not None:
            info["shards"] = self.run.shards()  # a listing; 'rows' opens each shard
        return info

    def _action_rows(self, req):
        if self.run is not None:
            return {"shards": self.run.rows()}
        with ReplayStore.open(self.path) as s:
            return {"rows": len(s)}

    def _action_open_sampler(self, req):
        session = self._open_session(req)
        sid = uuid.uuid4().hex
        now = time.monotonic()
        with self._lock:
            idle = [k for k, v in self._sessions.items() if now - v.used > SESSION_IDLE_SECONDS and not v.lock.locked()]
            stale = [self._sessions.pop(k) for k in idle]
            self._sessions[sid] = session
        for old in stale:
            with old.lock:
                old.sampler.close()
        return {"sampler": sid, "arrow_schema": session.schema.serialize().to_pybytes().hex()}

    def _action_update_priorities(self, req):
        session = self._session(req, "update_priorities")
        rows, prios = _numbers(req, "rows", np.int64), _numbers(req, "priorities", np.float64)
        with session.lock:
            session.sampler.update_priorities(rows, prios)
        return {"updated": len(rows)}

    def _action_priorities(self, req):
        session = self._session(req, "priorities")
        with session.lock:
            return {"priorities": session.sampler.priorities(_numbers(req, "rows", np.int64)).tolist()}

    def _action_set_beta(self, req):
        session = self._session(req, "set_beta")
        with session.lock:
            session.sampler.beta = P.get(req, "beta", (int, float), "set_beta", required=True)
            return {"beta": session.sampler.beta}

    def _action_close_sampler(self, req):
        sid = P.get(req, "sampler", str, "close_sampler", required=True)
        with self._lock:
            session = self._sessions.pop(sid, None)
        if session is not None:
            with session.lock:
                session.sampler.close()
        return {"closed": session is not None}

    def close_sessions(self) -> None:
        """Close every sampler session (a prioritized one saves its priorities)."""
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for s in sessions:
            with s.lock:
                s.sampler.close()


def _rows_now(sampler: Sampler) -> int:
    src = sampler.store
    if src.has_new_commits():
        src.refresh()
    return len(src)


def _numbers(req: dict, key: str, dtype) -> np.ndarray:
    v = P.get(req, key, list, "priorities request", required=True)
    try:
        a = np.asarray(v, dtype=dtype)
    except (TypeError, ValueError):
        raise ProtocolError(f"priorities request: {key!r} must be a list of numbers") from None
    if a.ndim != 1:
        raise ProtocolError(f"priorities request: {key!r} must be a flat list of numbers, got shape {a.shape}")
    return a


def _refuse(e: BaseException) -> Exception:
    """The Flight error a refused call ends with: the error's class and message (PROTOCOL.md, Errors)."""
    if isinstance(e, AuthError):
        return flight.FlightUnauthenticatedError(P.error_text(e))
    return flight.FlightServerError(P.error_text(e))


class _TokenCheck(flight.ServerMiddlewareFactory):
    """Refuses every call whose ``authorization`` header is not ``Bearer <token>``."""

    def __init__(self, token: str):
        if not token or not isinstance(token, str):
            raise ServerConfigError("token: expected a non-empty string")
        self._want = ("Bearer " + token).encode()

    def start_call(self, info, headers):
        given = headers.get("authorization") or headers.get("Authorization") or []
        if not any(hmac.compare_digest(_bytes(v), self._want) for v in given):  # constant time: no timing oracle
            raise _refuse(AuthError("this server wants a token: send the header 'authorization: Bearer <token>' "
                                    "(replaystore.remote clients: token=...)"))
        return None


def _bytes(v) -> bytes:
    return v if isinstance(v, bytes) else str(v).encode()

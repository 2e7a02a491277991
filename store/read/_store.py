"""``ReplayStore``: the two factories and the reading API that both roles share.

``ReplayStore.open(path)`` returns a ``StoreReader``; ``ReplayStore.create`` and
``ReplayStore.open(path, "a")`` return a ``StoreWriter`` (``_writer.py``). Both read committed
rows the same way: from the commit record and mapped segment bytes, never through HDF5, so a
reader never blocks the writer, never sees a torn row, and sees the prefix grow on ``refresh()``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import numpy as np

from ..format import _record
from ..format._actors import Actors
from ..format._format import FORMAT_VERSION, N_CODES, TRANSITIONS
from ..format._record import CommitRecord
from ..format._schema import ACTOR, Schema
from ..files._untrusted import loads
from ._views import SegmentedTable, _names
from ..errors import ClosedStoreError, DamagedStoreError, RowsDeletedError

if TYPE_CHECKING:
    from ._frames import FrameStack
    from ._reader import StoreReader
    from ..write._writer import StoreWriter

_S = TypeVar("_S", bound="ReplayStore")

_MODES = ("r", "a")
MAX_WINDOW = 1 << 40  # rows; more is a damaged or hostile file, not a replay window

# The two roles subclass ReplayStore, so this module must not import them (that was a circle: _store ->
# _writer -> _store). The package's __init__ hands them in once, with use_roles(), after importing
# both; ReplayStore.create/open look them up here. Any import of a store module runs that __init__
# first, so the roles are always in place before a factory can be called.
_ROLES: dict = {}


def use_roles(*, reader, writer, create_framed) -> None:
    """Install the classes ``open``/``create`` return: ``StoreReader``, ``StoreWriter`` and the
    frames-once creator (``StoreWriter._create_framed``). Called once, by ``store/__init__.py``."""
    _ROLES.update(reader=reader, writer=writer, create_framed=create_framed)


def _role(name: str):
    try:
        return _ROLES[name]
    except KeyError:
        raise RuntimeError(f"ReplayStore's roles are not installed ({name!r} missing): import the package "
                           "replaystore.store (its __init__ calls use_roles) rather than loading _store.py alone") from None


class ReplayStore:
    """A replay buffer kept as HDF5 segments, every row tagged with its actor.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "run.h5")
    >>> with ReplayStore.create(p, Schema.transition((4,)), actors=("expert", "dqn")) as s:
    ...     s.append(actor="dqn", state=np.zeros(4, "f4"), next_state=np.ones(4, "f4"),
    ...              discrete_action=1, continuous_action=np.zeros(0, "f4"), reward=1.0, done=False)
    ...     s.commit()
    1
    >>> with ReplayStore.open(p) as r:
    ...     len(r), r.read(["actor"])["actor"].tolist()
    (1, [1])

    BEWARE: rows are visible to readers only after ``commit()`` (or an automatic commit every
    ``commit_every`` rows or ``commit_seconds`` seconds, checked when rows arrive, and on close).
    """

    def __init__(self, path: str, mode: str, *, _token=None):
        if _token is not _PRIVATE:
            raise TypeError("use ReplayStore.create(path, schema, actors=...) or ReplayStore.open(path, mode)")
        self.path = path
        self.mode = mode
        self.format_version = FORMAT_VERSION
        self.schema: Schema | None = None
        self.actors: Actors | None = None
        self.window = 0
        self.retain: int | None = None
        self.metadata: dict = {}
        self.chunk_bytes = 0
        self._closed = False
        self._record = None              # the last commit seen; a new object at every commit (samplers watch it)
        self._sig = None                 # the record file's signature when read (readers)
        self._views: dict = {}           # table name -> SegmentedTable / MappedTable
        self._seg_cache: dict[str, dict] = {}  # table name -> segment index -> SegmentMap
        self._checked: dict[str, set] = {}     # table name -> segments whose size was checked
        self._counts = np.zeros(N_CODES, np.int64)   # per actor code, every committed row
        self._dropped = np.zeros(N_CODES, np.int64)  # per actor code, rows retention deleted
        self._checkpoints: list = []
        self._extra: dict = {}
        self._writer_info: dict = {"state": "closed"}
        self._recovery: dict | None = None
        self._seq = 0

    # ------------------------------------------------------------------ factories
    @classmethod
    def create(cls, path: str | os.PathLike[str], schema: Schema, actors: Sequence[str], window: int = 1_000_000,
               metadata: Mapping[str, Any] | None = None, commit_every: int = 4096, commit_seconds: float = 1.0,
               fsync: bool = False, *, retain: int | None = None, chunk_bytes: int | None = None,
               segment_rows: int | None = None, frames: FrameStack | None = None) -> StoreWriter:
        """Create a new store at ``path`` (which must not exist) and open it for appending.

        ``actors``: the vocabulary, required (no default). ``retain``: None keeps every row (the
        forensic record); N >= window keeps at least the last N rows, deleting whole old segments.
        ``frames``: a ``FrameStack`` stores stacked observations one frame per step (``_frames.py``).
        Returns a ``StoreWriter``.
        """
        if frames is not None:
            return _role("create_framed")(os.fspath(path), schema, actors, frames, window=window, metadata=metadata,
                                 commit_every=commit_every, commit_seconds=commit_seconds, fsync=fsync,
                                 retain=retain, chunk_bytes=chunk_bytes, segment_rows=segment_rows)

        return _role("writer")._create(os.fspath(path), schema, actors, window, metadata, commit_every, commit_seconds,
                                   fsync, retain, chunk_bytes, segment_rows)

    @overload
    @classmethod
    def open(cls, path: str | os.PathLike[str], mode: Literal["r"] = "r", *, commit_every: int = 4096,
             commit_seconds: float = 1.0, fsync: bool = False) -> StoreReader: ...

    @overload
    @classmethod
    def open(cls, path: str | os.PathLike[str], mode: Literal["a"], *, commit_every: int = 4096,
             commit_seconds: float = 1.0, fsync: bool = False) -> StoreWriter: ...

    @classmethod
    def open(cls, path: str | os.PathLike[str], mode: str = "r", *, commit_every: int = 4096,
             commit_seconds: float = 1.0, fsync: bool = False) -> StoreReader | StoreWriter:
        """Open a store: ``"r"`` to read (also while another process writes) returns a ``StoreReader``;
        ``"a"`` to append returns a ``StoreWriter``.

        Opening ``"a"`` a store whose writer died recovers it: exactly the committed rows are kept,
        and appending resumes after them.
        """
        path = os.fspath(path)
        if mode not in _MODES:
            raise ValueError(f"mode={mode!r}: expected 'r' (read) or 'a' (append)")
        if mode == "r":
            return _role("reader")._open(path)
        return _role("writer")._open(path, commit_every, commit_seconds, fsync)

    # ------------------------------------------------------------------ state
    def _set_identity(self, schema_json: str, actors_json: str, window: int, metadata_json: str) -> None:
        try:
            self.schema = Schema.from_json(schema_json)
            self.actors = Actors.from_json(actors_json)
            self.metadata = loads(metadata_json, "the store's metadata")
        except Exception as e:
            raise DamagedStoreError(f"{self.path}: the store's schema, actors or metadata are damaged "
                                    f"({type(e).__name__}: {e})") from None
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or not 0 < window <= MAX_WINDOW:
            # a hostile window would size the priority file and the sampler's arrays
            raise DamagedStoreError(f"{self.path}: the store's window {window!r} is not a row count in [1, {MAX_WINDOW}]")
        self.window = int(window)

    def _use_record(self, rec: CommitRecord) -> None:
        """Make ``rec`` the state every read sees: map (lazily) the segments it names."""
        views = {}
        for name, t in rec.tables.items():
            v = SegmentedTable(self.path, rec.uuid, name, t, self._seg_cache.setdefault(name, {}),
                               frozen=rec.writer.get("state") != "open" and self.mode == "r")
            v.forget_before(t.first_segment)
            if t.rows > t.first_row:  # every segment holding committed rows exists and is whole: check now
                v.check_files(self._checked.setdefault(name, set()))
                v.segment((t.rows - 1) >> v.shift)
            views[name] = v
        counts = np.zeros(N_CODES, np.int64)
        counts[:len(rec.actor_counts)] = rec.actor_counts
        dropped = np.zeros(N_CODES, np.int64)
        dropped[:len(rec.dropped_counts)] = rec.dropped_counts
        self._views, self._counts, self._dropped = views, counts, dropped
        self._checkpoints, self._extra = list(rec.checkpoints), dict(rec.extra)
        self._writer_info, self._recovery, self._seq = dict(rec.writer), rec.recovery, rec.seq
        if "frames" in self._extra:  # a frames-once store: stacks rebuilt from frame ids (_frames.py)
            from ._frames import use_frames

            use_frames(self, views)
        self._record = rec

    # ------------------------------------------------------------------ status
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def uuid(self) -> str:
        """The store's identity, made by ``create`` (a copy of the store keeps it)."""
        return self._record.uuid

    @property
    def commit_seq(self) -> int:
        """Increases at every commit this handle has seen."""
        return self._seq

    @property
    def writer_state(self) -> dict:
        """``{"live": bool, "died": bool, "recovery": ...}`` for the last writer."""
        live = _record.writer_alive(self._writer_info)
        died = self._writer_info.get("state") == "open" and not live
        return {"live": live, "died": died, "recovery": self._recovery}

    def summary(self) -> dict:
        """Rows, window, actor counts and fractions, columns, size, format version, writer state."""
        from ..tools._summary import summarize

        return summarize(self)

    def _check_open(self, where: str) -> None:
        if self._closed:
            raise ClosedStoreError(f"{where}: the store {self.path} is closed")

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("append" if self.mode == "a" else "read")
        return f"<{type(self).__name__} {self.path!r} ({state}): {len(self)} rows, actors {list(self.actors.names)}>"

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        v = self._views.get(TRANSITIONS)
        return v.rows if v is not None else 0

    def refresh(self) -> int:
        """Pick up commits made since this handle opened (or last refreshed); returns ``len(self)``."""
        self._check_open("refresh")
        return len(self)

    def has_new_commits(self) -> bool:
        """Cheap check (one open, fstat and short read) for commits a refresh would pick up."""
        return False

    @property
    def tables(self) -> dict[str, int]:
        """Committed rows of each table, transitions included."""
        return {k: v.rows for k, v in self._views.items()}

    def table_schema(self, name: str) -> Schema:
        return self._view(name).schema

    @property
    def checkpoints(self) -> list[dict]:
        return list(self._checkpoints)

    def get_extra(self, key: str, default=None):
        return self._extra.get(key, default)

    @property
    def extra(self) -> dict:
        """A copy of the small JSON state kept with the last commit (``StoreWriter.set_extra``)."""
        return dict(self._extra)

    @property
    def first_row(self) -> int:
        """The first transition row still kept: 0 unless retention (``retain=N``) deleted old segments."""
        v = self._views.get(TRANSITIONS)
        return v.first_row if v is not None else 0

    def _view(self, name: str):
        try:
            return self._views[name]
        except KeyError:
            raise KeyError(f"no table {name!r} in {self.path}; tables: {sorted(self._views)}") from None

    def read_table(self, name: str, columns=None, start: int | None = None, stop: int | None = None) -> dict:
        """Committed rows ``[start, stop)`` of table ``name`` as numpy arrays (read through the mapping)."""
        self._check_open("read")
        v = self._view(name)
        lo, hi, _ = slice(start, stop).indices(v.rows)
        return v.read(columns, lo, max(lo, hi))

    def stored_schema(self, name: str = TRANSITIONS) -> Schema:
        """Table ``name``'s columns as stored on disk: for a frames-once store's transitions, frame ids
        (``state_frames``, ...) in place of the stacks ``schema`` declares; else ``table_schema(name)``."""
        v = self._view(name)
        return getattr(v, "stored", v).schema

    def read_stored(self, name: str = TRANSITIONS, start: int | None = None, stop: int | None = None) -> dict:
        """Committed rows ``[start, stop)`` of table ``name`` as stored (see ``stored_schema``)."""
        self._check_open("read")
        v = self._view(name)
        v = getattr(v, "stored", v)
        lo, hi, _ = slice(start, stop).indices(v.rows)
        return v.read(None, lo, max(lo, hi))

    def read(self, columns=None, start: int | None = None, stop: int | None = None) -> dict[str, np.ndarray]:
        """Committed transition rows ``[start, stop)`` (Python slice rules) as numpy arrays."""
        return self.read_table(TRANSITIONS, columns, start, stop)

    def gather(self, rows, columns=None, table: str = TRANSITIONS, *, out=None) -> dict[str, np.ndarray]:
        """Committed rows ``rows`` (any order, repeats allowed) of ``columns`` as new numpy arrays.

        The one random-access read that the sampler, the agent's n-step targets and the analysis
        use: it goes through the mapping, never through HDF5. Every row must be committed.
        ``out``: ``{column: array}`` of shape ``(len(rows), *column shape)`` and the column's
        dtype, filled in place and returned (a run fills one batch from several shards).
        """
        self._check_open("gather")
        v = self._view(table)
        rows = np.asarray(rows)
        if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
            raise TypeError(f"gather: rows must be a 1-d array of integer row ids, got dtype {rows.dtype} and "
                            f"shape {rows.shape}")
        rows = rows.astype(np.int64, copy=False)
        if rows.size and (int(rows.min()) < 0 or int(rows.max()) >= v.rows):
            raise IndexError(f"gather: row ids must lie in [0, {v.rows}) (the committed rows of {table!r}); got "
                             f"min {int(rows.min())}, max {int(rows.max())}")
        if out is not None:
            _check_out(out, _names(v.schema, columns, "gather", table), v.schema, len(rows))
        return v.gather(columns, rows, out=out)

    def window_start(self) -> int:
        return max(0, len(self) - self.window)

    def _code_counts(self, start: int) -> np.ndarray:
        """Rows ``[start, len)`` per actor code (all 256 codes: damaged bytes are counted too)."""
        start = min(max(0, int(start)), len(self))
        if start == 0:
            return self._counts.copy()
        v = self._views[TRANSITIONS]
        if start < v.first_row:
            raise RowsDeletedError(f"actor_counts(start={start}): rows before {v.first_row} were deleted by retention")
        k = start >> v.shift
        before = self._dropped.copy()
        counts = v.rec.segment_counts
        for j in range(v.rec.first_segment, k):
            if j not in counts:
                raise DamagedStoreError(f"{self.path}: the commit record has no actor counts for segment {j}, which "
                                        "holds committed rows: the record is damaged; run `replaystore verify`")
            before[:len(counts[j])] += np.asarray(counts[j], np.int64)  # [] (all zero) is float to numpy
        tail = v.read([ACTOR], k << v.shift, start)[ACTOR]
        return self._counts - before - np.bincount(tail, minlength=N_CODES)

    def actor_counts(self, start: int = 0) -> np.ndarray:
        """Per-actor counts of committed rows ``[start, len)``, in vocabulary order (codes outside the
        vocabulary are left out: ``actor_composition`` reports them)."""
        return self._code_counts(start)[:len(self.actors)]

    def actor_composition(self, window: bool = True) -> dict:
        """``{"total", "counts", "fractions", "unknown"}`` over the replay window or the whole store.

        ``total`` is every row in range; ``unknown`` counts rows whose actor code is outside the
        vocabulary (``{"count": n, "codes": {code: n}}``): a damaged or foreign file, reported, not hidden.
        """
        codes = self._code_counts(self.window_start() if window else 0)
        known = codes[:len(self.actors)]
        total = int(codes.sum())
        extra = {int(c): int(codes[c]) for c in np.flatnonzero(codes[len(self.actors):]) + len(self.actors)}
        return {
            "total": total,
            "counts": {n: int(c) for n, c in zip(self.actors.names, known)},
            "fractions": {n: (float(c) / total if total else 0.0) for n, c in zip(self.actors.names, known)},
            "unknown": {"count": int(sum(extra.values())), "codes": extra},
        }

    def release_pages(self) -> None:
        """Drop this process's mapping of the pages of every segment read so far (``MADV_DONTNEED``).
        They are clean file pages, read again from the page cache when touched, but kept mapped they
        count in the process's RSS: all of a store's bytes by the end of a pass over it (an audit).
        Compacted segments (their chunk cache is bounded) are left as they are."""
        for cache in self._seg_cache.values():
            for seg in list(cache.values()):
                release = getattr(seg, "release_pages", None)
                if release is not None:
                    release()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_views()

    def _close_views(self) -> None:
        for v in self._views.values():
            v.close()
        for cache in self._seg_cache.values():
            for s in cache.values():
                s.close()
            cache.clear()
        self._views = {}


_PRIVATE = object()


def _check_out(out, names: list[str], schema, n: int) -> None:
    """``gather(out=)`` must hold one writable array per asked column, of the right shape and dtype."""
    if not isinstance(out, dict):
        raise TypeError(f"gather: out must be a dict of numpy arrays keyed by column, got {type(out).__name__}")
    for c in names:
        a, want = out.get(c), (n, *schema[c].shape)
        if not isinstance(a, np.ndarray) or a.shape != want or a.dtype != schema[c].dtype or not a.flags.writeable:
            got = "missing" if a is None else f"{type(a).__name__} {getattr(a, 'shape', '')} {getattr(a, 'dtype', '')}"
            raise ValueError(f"gather: out[{c!r}] must be a writable array of shape {want} and dtype "
                             f"{schema[c].dtype}; got {got}")

"""``ReplayStore``: the reading API shared by both roles, and ``StoreReader``, the reading role.

``ReplayStore.open(path)`` returns a ``StoreReader``; ``ReplayStore.create`` and
``ReplayStore.open(path, "a")`` return a ``StoreWriter`` (``_writer.py``). Both read committed
rows the same way: from the commit record and mapped segment bytes, never through HDF5, so a
reader never blocks the writer, never sees a torn row, and sees the prefix grow on ``refresh()``.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence

import numpy as np

from . import _record
from ._actors import Actors
from ._format import FORMAT_VERSION, N_CODES, TRANSITIONS, segment_dir
from ._manifest import Manifest, read_manifest, read_version
from ._record import CommitRecord
from ._schema import ACTOR, Schema
from ._views import SegmentedTable
from .errors import (ClosedStoreError, DamagedStoreError, FormatVersionError, NotAStoreError, ReadOnlyError,
                     RowsDeletedError, TruncatedStoreError)

_MODES = ("r", "a")


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
    def create(cls, path, schema: Schema, actors: Sequence[str], window: int = 1_000_000, metadata=None,
               commit_every: int = 4096, commit_seconds: float = 1.0, fsync: bool = False, *,
               retain: int | None = None, chunk_bytes: int | None = None, segment_rows: int | None = None):
        """Create a new store at ``path`` (which must not exist) and open it for appending.

        ``actors``: the vocabulary, required (no default). ``retain``: None keeps every row (the
        forensic record); N >= window keeps at least the last N rows, deleting whole old segments.
        Returns a ``StoreWriter``.
        """
        from ._writer import StoreWriter

        return StoreWriter._create(os.fspath(path), schema, actors, window, metadata, commit_every, commit_seconds,
                                   fsync, retain, chunk_bytes, segment_rows)

    @classmethod
    def open(cls, path, mode: str = "r", *, commit_every: int = 4096, commit_seconds: float = 1.0,
             fsync: bool = False):
        """Open a store: ``"r"`` to read (also while another process writes) returns a ``StoreReader``;
        ``"a"`` to append returns a ``StoreWriter``.

        Opening ``"a"`` a store whose writer died recovers it: exactly the committed rows are kept,
        and appending resumes after them.
        """
        path = os.fspath(path)
        if mode not in _MODES:
            raise ValueError(f"mode={mode!r}: expected 'r' (read) or 'a' (append)")
        if mode == "r":
            return StoreReader._open(path)
        from ._writer import StoreWriter

        return StoreWriter._open(path, commit_every, commit_seconds, fsync)

    # ------------------------------------------------------------------ state
    def _set_identity(self, schema_json: str, actors_json: str, window: int, metadata_json: str) -> None:
        try:
            self.schema = Schema.from_json(schema_json)
            self.actors = Actors.from_json(actors_json)
            self.metadata = json.loads(metadata_json)
        except Exception as e:
            raise DamagedStoreError(f"{self.path}: the store's schema, actors or metadata are damaged "
                                    f"({type(e).__name__}: {e})") from None
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
        self._record = rec

    # ------------------------------------------------------------------ status
    @property
    def closed(self) -> bool:
        return self._closed

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
        from ._summary import summarize

        return summarize(self)

    def _check_open(self, where: str) -> None:
        if self._closed:
            raise ClosedStoreError(f"{where}: the store {self.path} is closed")

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("append" if self.mode == "a" else "read")
        return f"<{type(self).__name__} {self.path!r} ({state}): {len(self)} rows, actors {list(self.actors.names)}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
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

    def read(self, columns=None, start: int | None = None, stop: int | None = None) -> dict[str, np.ndarray]:
        """Committed transition rows ``[start, stop)`` (Python slice rules) as numpy arrays."""
        return self.read_table(TRANSITIONS, columns, start, stop)

    def gather(self, rows, columns=None, table: str = TRANSITIONS) -> dict[str, np.ndarray]:
        """Committed rows ``rows`` (any order, repeats allowed) of ``columns`` as new numpy arrays.

        The one random-access read that the sampler, the agent's n-step targets and the analysis
        use: it goes through the mapping, never through HDF5. Every row must be committed.
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
        return v.gather(columns, rows)

    def load_array(self, name: str) -> np.ndarray:
        """An array a writer kept with a commit (``StoreWriter.save_arrays``), by the file name it returned."""
        self._check_open("load_array")
        if os.path.basename(name) != name or not name.endswith(".npy"):
            raise ValueError(f"load_array: {name!r} is not a state file name (as save_arrays returns)")
        p = os.path.join(segment_dir(self.path), name)
        try:
            return np.load(p, allow_pickle=False)
        except FileNotFoundError:
            raise DamagedStoreError(f"load_array: {p} is missing (a writer removes state files two commits after "
                                    "replacing them: refresh() and ask again)") from None
        except ValueError as e:
            raise DamagedStoreError(f"load_array: {p} is damaged ({e})") from None

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
            before[:len(counts[j])] += counts[j]
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


class StoreReader(ReplayStore):
    """The reading role: owns the commit record it last read and the mappings of the segments.

    It never opens HDF5 after ``open`` (the manifest is read once, to catch stale records) and
    never blocks a writer.
    """

    def __init__(self, path: str, *, _token=None):
        super().__init__(path, "r", _token=_token)
        self._manifest: Manifest | None = None

    @classmethod
    def _open(cls, path: str) -> "StoreReader":
        self = cls(path, _token=_PRIVATE)
        version, m, damaged = load_manifest(path, v1=self._open_v1)
        if version == 1:
            return self
        if damaged is not None:
            warnings.warn(f"{path}: HDF5 metadata is unreadable ({damaged}); reading the committed rows through "
                          "the commit record (opening it with mode 'a' rebuilds the file)", RuntimeWarning, stacklevel=3)
        self._manifest = m
        self._set_identity(m.schema_json, m.actors_json, m.window, m.metadata_json)
        self.retain, self.chunk_bytes = m.retain, m.chunk_bytes
        rec, self._sig = use_trusted(self, path, m, "r")
        return self

    def _open_v1(self, f) -> None:
        from ._v1 import load_v1

        info = load_v1(f, self.path)
        self.format_version = 1
        self._set_identity(info["schema"], info["actors"], info["window"], info["metadata"])
        self.chunk_bytes = info["chunk_bytes"]
        self._views = info["tables"]
        actor = self._views[TRANSITIONS].read([ACTOR], 0, self._views[TRANSITIONS].rows)[ACTOR]
        self._counts = np.bincount(actor, minlength=N_CODES).astype(np.int64)
        self._views[TRANSITIONS].shift = 62  # one "segment": counts by segment come from the rows
        self._views[TRANSITIONS].rec = _V1Counts()
        self._checkpoints, self._extra, self._recovery = info["checkpoints"], info["extra"], info["recovery"]
        self._record = info

    def refresh(self) -> int:
        self._check_open("refresh")
        if self._sig is None:
            return len(self)
        sig = _record.record_signature(self.path)
        if sig is None or sig == self._sig:
            return len(self)
        try:
            got = _record.read_record(self.path)
        except DamagedStoreError as e:
            warnings.warn(f"refresh: {e}; keeping the last good commit ({len(self)} rows)", RuntimeWarning, stacklevel=2)
            return len(self)
        if got is None:
            return len(self)
        rec, sig = got
        if rec.uuid != self._record.uuid or rec.seq < self._record.seq:
            warnings.warn(f"refresh: the commit record of {self.path} now belongs to another store or is older "
                          f"(seq {rec.seq} < {self._record.seq}); keeping the last good commit ({len(self)} rows)",
                          RuntimeWarning, stacklevel=2)
            self._sig = sig
            return len(self)
        self._use_record(rec)
        self._sig = sig
        return len(self)

    def has_new_commits(self) -> bool:
        return self._sig is not None and not self._closed and _record.record_signature(self.path) != self._sig

    # A reader refuses every write, naming the mode that allows it.
    def _read_only(self, where: str):
        if self._closed:
            raise ClosedStoreError(f"{where}: the store {self.path} is closed")
        raise ReadOnlyError(f"{where}: the store {self.path} is open read-only; open it with mode='a' to append")

    def append(self, **columns) -> None:
        self._read_only("append")

    def extend(self, columns) -> int:
        self._read_only("extend")

    def commit(self) -> int:
        self._read_only("commit")

    def create_table(self, name, schema) -> None:
        self._read_only("create_table")

    def extend_table(self, name, columns) -> int:
        self._read_only("extend_table")

    def record_checkpoint(self, step, path, **info) -> None:
        self._read_only("record_checkpoint")

    def set_extra(self, key, value) -> None:
        self._read_only("set_extra")


class _V1Counts:
    """Format 1 keeps no per-segment counts: the whole store is one segment, counted from its rows."""

    first_segment = 0
    segment_counts: dict = {}


def load_manifest(path: str, v1=None) -> tuple[int, Manifest | None, Exception | None]:
    """``(format version, manifest, why the manifest was unreadable)``. A format-2 store whose
    manifest is damaged is described by the copy of its identity in the commit record; format 1
    files go to ``v1(file)`` when given."""
    try:
        version, f = read_version(path)
    except (NotAStoreError, TruncatedStoreError, DamagedStoreError) as e:
        if not os.path.isfile(path):
            raise
        return 2, _manifest_from_record(path, e), e
    try:
        if version == 1:
            if v1 is not None:
                v1(f)
            return 1, None, None
        try:
            return 2, read_manifest(f, path), None
        except DamagedStoreError as e:
            return 2, _manifest_from_record(path, e), e
    finally:
        f.close()


def _manifest_from_record(path: str, e: Exception) -> Manifest:
    try:
        got = _record.read_record(path)
    except DamagedStoreError:
        got = None
    if got is None:
        raise e
    return Manifest.from_record(got[0], path)


def use_trusted(store: ReplayStore, path: str, m: Manifest, mode: str) -> tuple[CommitRecord, tuple | None]:
    """``choose_record``, then ``store._use_record``; a record that contradicts the files (a segment
    missing, short or foreign) gives way to the last clean close when that is a safe fallback."""
    rec, sig = choose_record(path, m, mode)
    try:
        store._use_record(rec)
        return rec, sig
    except (DamagedStoreError, TruncatedStoreError) as e:
        closed = m.closed(path) if m.session.get("state") != "open" else None
        if closed is None or closed.seq == rec.seq:
            raise
        warnings.warn(f"{path}: the commit record contradicts the files ({e}); using the store's last clean close "
                      f"(seq {closed.seq}, {closed.rows} rows)", RuntimeWarning, stacklevel=4)
        store._use_record(closed)
        return closed, None


def choose_record(path: str, m: Manifest, mode: str) -> tuple[CommitRecord, tuple | None]:
    """The commit record to trust: the ``.commit`` file unless it is missing, damaged, foreign or
    older than the manifest's last clean close, which then wins. Refuses ("a") or warns ("r")
    when the record is unusable and the last writer did not close cleanly (rows may be missing)."""
    closed = m.closed(path)
    problem = None
    try:
        got = _record.read_record(path)
    except FormatVersionError:
        raise
    except DamagedStoreError as e:
        got, problem = None, str(e)
    if got is not None:
        rec, sig = got
        if rec.uuid != m.uuid:
            problem = f"the commit record {_record.record_path(path)} belongs to another store (uuid {rec.uuid})"
        elif rec.tables[TRANSITIONS].schema_json != m.schema_json or rec.identity.get("actors") != m.actors_json:
            problem = f"the commit record {_record.record_path(path)} is damaged: its schema or actors differ from the store's"
        elif closed is not None and rec.seq < closed.seq:
            problem = (f"the commit record {_record.record_path(path)} is older (seq {rec.seq}, {rec.rows} rows) than "
                       f"the store's last clean close (seq {closed.seq}, {closed.rows} rows): a restored old copy?")
        else:
            return rec, sig
    elif problem is None:
        problem = f"the commit record {_record.record_path(path)} is missing"
    if closed is None:
        raise DamagedStoreError(f"{path}: {problem}, and the store was never closed cleanly: nothing says which "
                                "rows were committed. Restore the .commit file from a backup")
    if m.session.get("state") == "open":
        msg = (f"{path}: {problem}; the last writer (pid {m.session.get('pid')}) did not close cleanly, so rows "
               f"committed after its last clean close (seq {closed.seq}, {closed.rows} rows) may exist")
        if mode == "a":
            raise DamagedStoreError(msg + ". Refusing to append (that could lose them): restore the .commit file "
                                    "from a backup, or open read-only to see the rows of the last clean close")
        warnings.warn(msg + f"; reading the {closed.rows} rows of the last clean close", RuntimeWarning, stacklevel=4)
    elif got is not None or "missing" not in problem:
        warnings.warn(f"{path}: {problem}; using the store's last clean close (seq {closed.seq}, {closed.rows} rows)",
                      RuntimeWarning, stacklevel=4)
    return closed, None


_PRIVATE = object()

"""``ReplayStore``: create, open, append, commit, read.

Writers hold the HDF5 file; readers never open it while a writer lives. They read the commit
record and map the committed chunks (see ``_commit.py`` and ``_mapped.py``), so they never block
the writer, never see a torn row, and see the prefix grow when they call ``refresh()``.
"""

from __future__ import annotations

import json
import os
import time
import uuid as _uuid
import warnings
from collections.abc import Mapping, Sequence

import h5py
import numpy as np

from . import _commit
from ._actors import Actors
from ._commit import CommitRecord, TableRecord
from ._format import (ACTOR_PREFIX, FORMAT_NAME, FORMAT_VERSION, PREFIX_COLUMN, TRANSITIONS, choose_chunk_bytes,
                      group_path, open_h5, prefix_schema)
from ._mapped import ColumnMap, MappedFile
from ._schema import ACTOR, Schema
from ._reading import ReadingMixin
from ._rowappend import build_append
from ._salvage import salvage
from ._writer import TableWriter
from ._writing import TransitionWriter, WritingMixin, json_attr
from .errors import NotAStoreError, SchemaError, StoreLockedError, StoreNotFoundError, TruncatedStoreError

_MODES = ("r", "a")


class ReplayStore(ReadingMixin, WritingMixin):
    """A replay buffer kept as one HDF5 file, every row tagged with its actor.

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

    # ------------------------------------------------------------------ construction
    def __init__(self, *, _token=None):
        if _token is not _PRIVATE:
            raise TypeError("use ReplayStore.create(path, schema, ...) or ReplayStore.open(path, mode)")

    @classmethod
    def create(cls, path, schema: Schema, actors: Sequence[str] = ("expert", "dqn"), window: int = 1_000_000,
               metadata: Mapping | None = None, commit_every: int = 4096, commit_seconds: float = 1.0,
               fsync: bool = False, *, chunk_bytes: int | None = None) -> "ReplayStore":
        """Create a new store at ``path`` (which must not exist) and open it for appending."""
        path = os.fspath(path)
        if not isinstance(schema, Schema):
            raise TypeError(f"schema must be a store.Schema (e.g. Schema.transition((4,))), got {type(schema).__name__}")
        if ACTOR not in schema or schema[ACTOR].dtype != np.uint8 or schema[ACTOR].shape != ():
            raise SchemaError("the schema needs an 'actor' column of dtype uint8 and shape (); use Schema.transition")
        actors = Actors.coerce(actors)
        window = int(window)
        if window <= 0:
            raise ValueError(f"window={window}: expected a positive number of rows (the replay window)")
        _check_commit_policy(commit_every, commit_seconds)
        meta_json = json_attr(dict(metadata or {}), "metadata")
        if os.path.exists(path):
            raise FileExistsError(
                f"{path} already exists; open it with ReplayStore.open(path, 'a') to append, or remove it first"
            )
        if chunk_bytes is None:
            chunk_bytes = choose_chunk_bytes(list(schema), window)
        elif chunk_bytes < 4096 or chunk_bytes & (chunk_bytes - 1):
            raise ValueError(f"chunk_bytes={chunk_bytes}: expected a power of two >= 4096")
        widest = max(c.row_bytes for c in schema)
        if widest > chunk_bytes:
            raise ValueError(f"chunk_bytes={chunk_bytes} is smaller than one row of the widest column ({widest} bytes)")
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise StoreNotFoundError(f"cannot create {path}: the folder {parent} does not exist; create it first")
        try:
            os.remove(_commit.record_path(path))  # a stale record of a deleted store must not be trusted
        except FileNotFoundError:
            pass
        # Build the empty store beside its final name and link it into place only when complete:
        # a writer killed during create() leaves a stray ``.creating`` file, never a half-made store.
        tmp = f"{path}.creating"
        if os.path.exists(tmp):
            os.remove(tmp)
        f = open_h5(tmp, "x", chunk_bytes)
        try:
            a = f.attrs
            a["format"] = FORMAT_NAME
            a["format_version"] = FORMAT_VERSION
            a["uuid"] = str(_uuid.uuid4())
            a["schema"] = schema.to_json()
            a["actors"] = actors.to_json()
            a["window"] = window
            a["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            a["metadata"] = meta_json
            a["chunk_bytes"] = chunk_bytes
            a["actor_counts"] = json.dumps([0] * len(actors))
            a["checkpoints"] = "[]"
            a["extra"] = "{}"
            TableWriter(f, TRANSITIONS, schema, chunk_bytes, 1, 0, create=True)
            prefix = TableWriter(f, ACTOR_PREFIX, prefix_schema(len(actors)), chunk_bytes, 1, 0, create=True)
            prefix.write_block({PREFIX_COLUMN: np.zeros((1, len(actors)), np.int64)}, 1)
            a["committed"] = json.dumps({TRANSITIONS: 0, ACTOR_PREFIX: 1})
            f.flush()
            if fsync:
                os.fsync(f.id.get_vfd_handle())
        finally:
            f.close()
        try:
            os.link(tmp, path)  # fails, unlike rename, if someone created ``path`` meanwhile
        except FileExistsError:
            os.remove(tmp)
            raise FileExistsError(f"{path} was created by someone else while this store was being made") from None
        os.remove(tmp)
        return cls.open(path, "a", commit_every=commit_every, commit_seconds=commit_seconds, fsync=fsync)

    @classmethod
    def open(cls, path, mode: str = "r", *, commit_every: int = 4096, commit_seconds: float = 1.0,
             fsync: bool = False) -> "ReplayStore":
        """Open a store: ``"r"`` to read (also while another process writes), ``"a"`` to append.

        Opening ``"a"`` a store whose writer died recovers it: exactly the committed rows are kept,
        and appending resumes after them.
        """
        path = os.fspath(path)
        if mode not in _MODES:
            raise ValueError(f"mode={mode!r}: expected 'r' (read) or 'a' (append)")
        if not os.path.exists(path):
            raise StoreNotFoundError(f"no store at {path}: the file does not exist")
        if os.path.isdir(path):
            raise NotAStoreError(f"{path} is a directory, not a replaystore file")
        self = cls._new(path, mode)
        if mode == "r":
            self._open_reader()
        else:
            _check_commit_policy(commit_every, commit_seconds)
            self._open_writer(commit_every, commit_seconds, fsync)
        return self

    @classmethod
    def _new(cls, path: str, mode: str) -> "ReplayStore":
        self = cls(_token=_PRIVATE)
        self.path = path
        self.mode = mode
        self._closed = False
        self._f = None
        self._tw = None
        self._tables: dict[str, TableWriter] = {}
        self._record: CommitRecord | None = None
        self._sig = None
        self._mf = MappedFile(path)
        self._maps: dict[str, dict[str, ColumnMap]] = {}
        self._recovered: dict | None = None
        return self

    # ------------------------------------------------------------------ opening
    def _open_reader(self) -> None:
        got = self._read_record()
        if got is not None and got[0].h5_inode == os.stat(self.path).st_ino:
            self._use_record(*got)
            return
        # No (or a stale) commit record: the HDF5 file itself is the truth; no writer can be live.
        f = self._open_h5_checked("r")
        try:
            self._use_record(self._record_from_h5(f, writer={"state": "closed"}), None)
        finally:
            f.close()

    def _open_writer(self, commit_every, commit_seconds, fsync) -> None:
        got = self._read_record()
        prev = got[0] if got is not None and got[0].h5_inode == os.stat(self.path).st_ino else None
        if prev is not None and _commit.writer_alive(prev.writer):
            w = prev.writer
            raise StoreLockedError(
                f"{self.path} is being written by process {w.get('pid')} on {w.get('host')}; one writer at a "
                "time. Open it with mode='r' to read alongside, or wait for that writer to close."
            )
        try:
            f = self._open_h5_checked("r+")
        except (NotAStoreError, TruncatedStoreError) as e:
            if prev is None:
                raise
            # The HDF5 metadata is unreadable but the commit record maps every committed row.
            damaged = salvage(self.path, prev)
            warnings.warn(f"{self.path}: HDF5 metadata was unreadable ({e}); rebuilt it from the commit "
                          f"record with all {prev.tables[TRANSITIONS].rows} committed rows. The damaged file "
                          f"is kept as {damaged}.", RuntimeWarning, stacklevel=3)
            prev.h5_inode = os.stat(self.path).st_ino
            f = self._open_h5_checked("r+")
        try:
            if prev is not None and prev.uuid != f.attrs["uuid"]:
                prev = None
            committed = prev.tables if prev is not None else None
            self._init_writer(f, commit_every=commit_every, commit_seconds=commit_seconds,
                              fsync=fsync, committed=committed, prev=prev)
        except BaseException:
            f.close()
            raise
        died = prev is not None and prev.writer.get("state") == "open"
        if died:
            self._recovered = {"writer_died": True, "rows_kept": self._committed_rows, "at": time.time(),
                               "dead_pid": prev.writer.get("pid")}
        self.commit()

    def _read_record(self):
        """The commit record, or None when there is none or it is unreadable (the HDF5 file's own
        attributes then say what was committed; they are written before every commit's flush)."""
        try:
            return _commit.read_record(self.path)
        except NotAStoreError as e:
            warnings.warn(f"{e}; ignoring it and reading the committed rows from the HDF5 file itself "
                          "(the record is rewritten at the next commit)", RuntimeWarning, stacklevel=4)
            return None

    def _open_h5_checked(self, mode: str) -> h5py.File:
        if not h5py.is_hdf5(self.path):
            size = os.path.getsize(self.path)
            raise NotAStoreError(
                f"{self.path} is not an HDF5 file ({size} bytes"
                + (", empty" if size == 0 else "") + "); a replaystore store is an HDF5 file made by "
                "ReplayStore.create, or the file was truncated before its header was written"
            )
        try:
            f = h5py.File(self.path, "r")
            self._check_h5_attrs(f)
            if mode != "r":
                chunk_bytes = int(f.attrs["chunk_bytes"])
                f.close()
                f = open_h5(self.path, mode, chunk_bytes)
            return f
        except OSError as e:
            msg = str(e)
            # "unable to lock", not "lock": HDF5's truncation and superblock errors say "sblock"
            if "unable to lock" in msg.lower() or getattr(e, "errno", None) == 11:
                raise StoreLockedError(
                    f"{self.path} is locked by a live HDF5 writer; open it with mode='r' once that writer has "
                    "published a commit record, or wait for it to close"
                ) from e
            if "truncat" in msg.lower() or "eof" in msg.lower() or "signature" in msg.lower():
                raise TruncatedStoreError(f"{self.path} could not be read as HDF5: it looks truncated ({msg})") from e
            raise NotAStoreError(f"{self.path} could not be opened as a replaystore store: {msg}") from e

    def _check_h5_attrs(self, f: h5py.File) -> None:
        a = f.attrs
        fmt = a.get("format")  # read before close(): a closed file's attrs read as None
        if fmt != FORMAT_NAME:
            f.close()
            raise NotAStoreError(
                f"{self.path} is an HDF5 file but not a replaystore store (root attribute 'format' is "
                f"{fmt!r}, expected {FORMAT_NAME!r})"
            )
        version = a.get("format_version")
        try:
            version = int(version)  # a numpy integer would print as np.int64(2) in the message
        except (TypeError, ValueError):
            pass
        try:
            _commit.check_version(version, self.path)
        except Exception:
            f.close()
            raise

    def _record_from_h5(self, f: h5py.File, writer: dict) -> CommitRecord:
        a = f.attrs
        committed = json.loads(a["committed"])
        tables = {}
        for name, rows in committed.items():
            g = f[group_path(name)]
            schema = Schema.from_json(g.attrs["schema"])
            tw = TableWriter(f, name, schema, int(a["chunk_bytes"]), 1, int(rows), create=False)
            tw.load_offsets()
            tables[name] = TableRecord(schema.to_json(), int(rows), tw.refresh_offsets(int(rows)))
        return CommitRecord(
            uuid=str(a["uuid"]), seq=0, attrs=self._attrs_from_h5(f), tables=tables,
            actor_counts=json.loads(a["actor_counts"]), writer=writer, h5_inode=os.stat(self.path).st_ino,
            recovery=json.loads(a["recovery"]) if "recovery" in a else None,
            checkpoints=json.loads(a["checkpoints"]), extra=json.loads(a.get("extra", "{}")),
        )

    @staticmethod
    def _attrs_from_h5(f: h5py.File) -> dict:
        a = f.attrs
        return {"schema": a["schema"], "actors": a["actors"], "window": int(a["window"]),
                "metadata": a["metadata"], "created": a["created"], "chunk_bytes": int(a["chunk_bytes"])}

    def _use_record(self, record: CommitRecord, sig) -> None:
        if self._record is not None and record.h5_inode != self._record.h5_inode:
            # The file was replaced (a writer rebuilt it): the old mapping shows the old file.
            self._mf.close()
            self._mf = MappedFile(self.path)
        self._record = record
        self._sig = sig
        self._maps = {}
        self._mf.ensure(record.bytes_needed())
        self._set_identity(record.attrs)

    def _set_identity(self, attrs: dict) -> None:
        """Schema, actors, window and metadata from the store's attributes (record or HDF5)."""
        self.schema = Schema.from_json(attrs["schema"])
        self.actors = Actors.from_json(attrs["actors"])
        self.window = int(attrs["window"])
        self.metadata = json.loads(attrs["metadata"])

    def _init_writer(self, f, *, commit_every, commit_seconds, fsync, committed=None, prev=None):
        self._f = f
        self.commit_every = int(commit_every)
        self.commit_seconds = float(commit_seconds)
        self.fsync = bool(fsync)
        a = f.attrs
        self._attrs = self._attrs_from_h5(f)
        self._set_identity(self._attrs)
        chunk_bytes = self._attrs["chunk_bytes"]
        self._chunk_bytes = chunk_bytes
        rows = json.loads(a["committed"]) if committed is None else {k: t.rows for k, t in committed.items()}
        counts = np.asarray(json.loads(a["actor_counts"]) if prev is None else prev.actor_counts, np.int64)
        self._checkpoints = json.loads(a["checkpoints"]) if prev is None else list(prev.checkpoints)
        self._extra = json.loads(a.get("extra", "{}")) if prev is None else dict(prev.extra)
        self._recovery_attr = json.loads(a["recovery"]) if "recovery" in a else None
        stage = max(256, min(self.commit_every, 16384))
        prefix = TableWriter(f, ACTOR_PREFIX, prefix_schema(len(self.actors)), chunk_bytes, 1,
                             rows.get(ACTOR_PREFIX, 0), create=False)
        tw = TransitionWriter(f, TRANSITIONS, self.schema, chunk_bytes, stage, rows.get(TRANSITIONS, 0),
                               create=False, prefix=prefix, counts=counts)
        self._tables = {TRANSITIONS: tw, ACTOR_PREFIX: prefix}
        for name in f.get("tables", {}):
            g = f[group_path(name)]
            self._tables[name] = TableWriter(f, name, Schema.from_json(g.attrs["schema"]), chunk_bytes, 1024,
                                             rows.get(name, 0), create=False)
        for t in self._tables.values():
            t.truncate_to(rows.get(t.name, 0))  # rows a dead writer left past its last commit
            t.load_offsets()
        self._tw = tw
        self._uuid = str(a["uuid"])
        self._written_small = None
        self._seq = 0 if prev is None else prev.seq
        self._last_commit = time.time()
        self._committed_rows = tw.rows_written
        self._auto = tuple(self.schema.auto_columns)
        self._has_done = "done" in self.schema
        self._resume_episode_counters()
        self.append = build_append(self, tw)

    # ------------------------------------------------------------------ status
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def writer_state(self) -> dict:
        """``{"live": bool, "died": bool}`` for the last writer, plus the last recovery, if any."""
        w = self._record.writer
        live = _commit.writer_alive(w) if self._tw is None else True
        died = self._tw is None and w.get("state") == "open" and not live
        return {"live": live, "died": died, "recovery": self._record.recovery}

    def summary(self) -> dict:
        """Rows, window, actor counts and fractions, columns, size, format version, writer state."""
        from ._summary import summarize

        return summarize(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("append" if self._tw is not None else "read")
        return f"<ReplayStore {self.path!r} ({state}): {len(self)} rows, actors {list(self.actors.names)}>"


def _check_commit_policy(commit_every, commit_seconds) -> None:
    if int(commit_every) < 1:
        raise ValueError(f"commit_every={commit_every}: expected a positive number of rows")
    if not (float(commit_seconds) > 0):
        raise ValueError(f"commit_seconds={commit_seconds}: expected a positive number of seconds")


_PRIVATE = object()

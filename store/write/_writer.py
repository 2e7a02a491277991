"""``StoreWriter``: the writing role. It owns the segment files, the staging and the writer lock,
and publishes commits; it reads its own committed rows like any reader.

A commit: write staged rows into segments (``pwrite``), write the checksum file of every segment
that became full, fsync when asked, then replace the commit record atomically. Only that last
step makes rows visible and durable, and HDF5 metadata is never written after a segment exists,
so a kill -9 at any instruction leaves the last record and every row it counts intact.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import threading
import time
import uuid as _uuid
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..format import _record
from ..format._actors import Actors
from ._create import LOCK, create_published, remove_dead_private_folders
from ._frames_writer import FramesStager, framed_schemas
from ._stager import _MISSING, RowStager, block_column, block_length, check_names, given_columns
from ..format._format import (MAX_SEGMENT_BYTES, TRANSITIONS, choose_chunk_bytes, compact_name, segment_dir, segment_name,
                              segment_rows, sums_name)
from ..files._fileio import layer
from ..files._untrusted import check_depth
from ..format._manifest import Manifest, write_manifest
from ..format._record import CommitRecord, this_writer
from ..format._schema import ACTOR, Schema
from ..read._frames import EXTRA_KEY, FRAMES_TABLE, FrameStack, spec_of
from ..read._reader import load_manifest, use_trusted
from ..read._store import _PRIVATE, MAX_WINDOW, ReplayStore
from ._tablewriter import TableWriter, _full, _trim
from ..errors import (ClosedStoreError, DamagedStoreError, FormatVersionError, SchemaError,
                     StoreLockedError, StoreNotFoundError, StoreReplacedError, StoreWriteError,
                     TruncatedStoreError)

# While a writer is open, the manifest (stock h5py's view; the record is the store's truth) is
# rewritten for new or deleted segments at most every MANIFEST_SECONDS, and so as to take at most
# MANIFEST_SHARE of the time: a rewrite took 6-10 ms at every segment roll, 40% of writing the
# 140 MB segment itself, and it grows with the number of segments. Opening and closing always write it.
MANIFEST_SECONDS = 5.0
MANIFEST_SHARE = 0.02


def json_attr(value, what: str) -> str:
    """``value`` as the JSON the store keeps (metadata, extra, checkpoint info), or a TypeError."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as e:
        raise TypeError(f"{what} must be JSON-serializable (str, numbers, lists, dicts); {e}") from e
    return check_depth(text, what)  # a reader refuses deeper JSON as hostile: never write what cannot be read


def _check_commit_policy(commit_every, commit_seconds) -> None:
    if int(commit_every) < 1:
        raise ValueError(f"commit_every={commit_every}: expected a positive number of rows")
    if not (float(commit_seconds) > 0):
        raise ValueError(f"commit_seconds={commit_seconds}: expected a positive number of seconds")


class StoreWriter(ReplayStore):
    """The writing role: append, extend, commit, close, tables, checkpoints. One per store at a time.

    Its collaborators: a ``TableWriter`` per table (staging, segment files, checksums), the
    ``RowStager`` that checks and stages transitions (``_stager.py``), for a frames-once store the
    ``FramesStager`` in front of it (``_frames_writer.py``), and the ``RecordWriter`` that publishes
    commits. The writer holds the lock, the files and the commit policy.
    """

    def __init__(self, path: str, *, _token=None):
        super().__init__(path, "a", _token=_token)
        # Held by every call that changes the writer (append, extend, commit, close...): a writer
        # shared by threads (a server with a thread per game client) mixed rows and wrote the
        # manifest twice at once without it. Re-entrant: append and extend commit by themselves.
        self._wlock = threading.RLock()
        self._wlock_acquire, self._wlock_release = self._wlock.acquire, self._wlock.release
        self.commit_every = 4096
        self.commit_seconds = 1.0
        self.fsync = False
        self._manifest: Manifest | None = None
        self._folder = segment_dir(path)
        self._lock_fd = -1
        self._record_file = _record.RecordWriter(path)
        self._tables: dict[str, TableWriter] = {}
        self._tw: TableWriter | None = None       # the transitions table's writer
        self._stager: RowStager | None = None      # checks and stages transitions (made by _resume)
        self._frames: FramesStager | None = None   # a frames-once store's stacks -> frame ids, else None
        self._recovered: dict | None = None       # written into the record at the first commit after a recovery
        self._new_checkpoints: list = []          # what the next commit records (readers see the last commit's)
        self._new_extra: dict = {}
        self._manifest_due = 0.0                  # monotonic time before which a commit leaves the manifest be
        # The manifest says "a writer is open" (so that a damaged record is refused, not silently replaced
        # by the last clean close) before the first commit that changes anything: opening does not
        # rewrite it (12 ms for 8 segments, growing with them), a writer that commits nothing never does.
        self._session_marked = False
        self._at_open: tuple = ()
        self._dropped_w = np.zeros(256, np.int64)  # actor counts of rows retention deleted, as written

    # ------------------------------------------------------------------ creating and opening
    @classmethod
    def _create(cls, path, schema, actors, window, metadata, commit_every, commit_seconds, fsync, retain,
                chunk_bytes, seg_rows, more_tables: tuple = (), extra: dict | None = None) -> "StoreWriter":
        """``more_tables``: ``(name, schema, segment rows or None)`` made with the transitions, and
        ``extra`` the first record's extra: both are in the store before it is published (a
        frames-once store is never seen, nor left by a kill, without its frames table and spec)."""
        if not isinstance(schema, Schema):
            raise TypeError(f"schema must be a store.Schema (e.g. Schema.transition((4,))), got {type(schema).__name__}")
        if ACTOR not in schema or schema[ACTOR].dtype != np.uint8 or schema[ACTOR].shape != ():
            raise SchemaError("the schema needs an 'actor' column of dtype uint8 and shape (); use Schema.transition")
        if isinstance(actors, (str, bytes)):
            raise SchemaError(f"actors={actors!r}: expected a sequence of names such as ('expert', 'dqn'), not one string")
        actors = Actors.coerce(actors)
        window = int(window)
        if not 0 < window <= MAX_WINDOW:
            raise ValueError(f"window={window}: expected a positive number of rows (the replay window), at most "
                             f"{MAX_WINDOW}")
        if retain is not None and (isinstance(retain, bool) or int(retain) < window):
            raise ValueError(f"retain={retain!r}: expected None (keep every row) or a row count >= window ({window})")
        _check_commit_policy(commit_every, commit_seconds)
        meta_json = json_attr(dict(metadata or {}), "metadata")
        if chunk_bytes is None:
            chunk_bytes = choose_chunk_bytes(list(schema), window)
        elif chunk_bytes < 4096 or chunk_bytes & (chunk_bytes - 1):
            raise ValueError(f"chunk_bytes={chunk_bytes}: expected a power of two >= 4096")
        if seg_rows is None:
            seg_rows = segment_rows(schema, window)
        elif int(seg_rows) < 1 or int(seg_rows) & (int(seg_rows) - 1):
            raise ValueError(f"segment_rows={seg_rows}: expected a power of two")
        row_bytes = sum(c.row_bytes for c in schema)
        if int(seg_rows) * row_bytes > MAX_SEGMENT_BYTES:
            raise ValueError(f"segment_rows={seg_rows} of {row_bytes}-byte rows asks for {int(seg_rows) * row_bytes} "
                             f"bytes per segment; a segment holds at most {MAX_SEGMENT_BYTES} bytes: pass "
                             f"segment_rows <= {1 << ((MAX_SEGMENT_BYTES // max(1, row_bytes)).bit_length() - 1)}, "
                             "or leave it out to get the default")
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise StoreNotFoundError(f"cannot create {path}: the folder {parent} does not exist; create it first")
        store_uuid = str(_uuid.uuid4())
        m = Manifest(store_uuid, schema.to_json(), actors.to_json(), window, None if retain is None else int(retain),
                     time.strftime("%Y-%m-%dT%H:%M:%S%z"), meta_json, int(chunk_bytes))

        def build(private: str) -> None:  # a whole store at a private name (_create.py publishes it)
            records, listed = {}, {}
            for name, sch, rows, stage, main in ((TRANSITIONS, schema, int(seg_rows), 1, True),
                                                 *((n, sc, int(r or segment_rows(sc, None)), 1024, False)
                                                   for n, sc, r in more_tables)):
                tw = TableWriter(segment_dir(private), store_uuid, name, sch, rows, int(chunk_bytes), stage, fsync, main)
                try:
                    tw.ensure_segment()
                finally:
                    tw.close()
                records[name], listed[name] = tw.record(), (sch, tw.seg_rows, 0, 0, set())
            rec = CommitRecord(store_uuid, 0, records, [], [], this_writer("closed"), m.identity(), extra=dict(extra or {}))
            m.closed_record = rec.to_json()
            _record.write_record(private, rec, fsync)
            write_manifest(private, m, listed, fsync)

        lock_fd = create_published(path, build, fsync)
        return cls._open(path, commit_every, commit_seconds, fsync, lock_fd=lock_fd)

    @classmethod
    def _create_framed(cls, path, schema: Schema, actors, frames: FrameStack, **kw) -> "StoreWriter":
        """``ReplayStore.create(..., frames=FrameStack(...))``: the store, its frames table, and the spec."""
        stored, frame_schema = framed_schemas(schema, frames, kw.get("retain"))
        seg_rows = kw.pop("segment_rows", None)  # given: both tables' segments hold this many rows (tests roll over)
        w = cls._create(path, stored, actors, kw.pop("window", 1_000_000), kw.pop("metadata", None),
                        kw.pop("commit_every", 4096), kw.pop("commit_seconds", 1.0), kw.pop("fsync", False),
                        kw.pop("retain", None), kw.pop("chunk_bytes", None), seg_rows,
                        more_tables=((FRAMES_TABLE, frame_schema, seg_rows),),
                        extra={EXTRA_KEY: {**frames.to_dict(), "schema": schema.to_json()}})
        try:  # readers see the declared schema from the first record on (read/_frames.use_frames)
            w._attach_frames()
        except BaseException:
            w.close()
            raise
        return w

    @classmethod
    def _open(cls, path: str, commit_every, commit_seconds, fsync, lock_fd: int = -1) -> "StoreWriter":
        """``lock_fd``: the flocked ``writer.lock`` of a store this process just created (it owns it)."""
        try:
            _check_commit_policy(commit_every, commit_seconds)
            version, m, damaged = load_manifest(path)
        except BaseException:
            if lock_fd >= 0:
                os.close(lock_fd)
            raise
        if version == 1:
            raise FormatVersionError(
                f"{path} is a format-1 store, which opens read-only. Write a format-2 copy with "
                f"`replaystore convert {path} NEW.h5` and append to that")
        self = cls(path, _token=_PRIVATE)
        self._lock_fd = lock_fd  # released by _release from here on, whatever fails
        self.commit_every, self.commit_seconds, self.fsync = int(commit_every), float(commit_seconds), bool(fsync)
        self._manifest = m
        self._set_identity(m.schema_json, m.actors_json, m.window, m.metadata_json)
        self.retain, self.chunk_bytes = m.retain, m.chunk_bytes
        try:
            if not os.path.isdir(self._folder):
                raise TruncatedStoreError(f"{path}: its segment folder {self._folder} is missing; a store is the "
                                          "file, the folder and the .commit record together: copy all three")
            if self._lock_fd < 0:
                self._lock()
                remove_dead_private_folders(path)  # a creator killed after publishing leaves its folder
            rec, _ = use_trusted(self, path, m, "a")
            self._resume(rec)
            if damaged is not None:
                kept = f"{path}.damaged-{time.strftime('%Y%m%dT%H%M%S')}"
                if os.path.lexists(path):
                    layer().replace(path, kept)
                    kept = f"The damaged file is kept as {kept}."
                else:
                    kept = "The file was missing."
                warnings.warn(f"{path}: HDF5 metadata was unreadable ({damaged}); rebuilt it from the commit record "
                              f"with all {rec.rows} committed rows. {kept}",
                              RuntimeWarning, stacklevel=3)
            if rec.writer.get("state") == "open":
                self._recovered = {"writer_died": True, "rows_kept": rec.rows, "at": time.time(),
                                   "dead_pid": rec.writer.get("pid")}
            m.session = {**this_writer("open"), "since_seq": rec.seq}
            if damaged is not None:
                self._write_manifest()
                self._session_marked = True
            self._at_open = self._content()
            self._commit("open")
        except BaseException:
            self._release()
            raise
        return self

    def _lock(self) -> None:
        fd = layer().open_write(os.path.join(self._folder, LOCK), create=True)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            layer().close(fd)
            got = None
            try:
                got = _record.read_record(self.path)
            except DamagedStoreError:
                pass
            who = f"process {got[0].writer.get('pid')} on {got[0].writer.get('host')}" if got else "another process"
            raise StoreLockedError(f"{self.path} is being written by {who}; one writer at a time. Open it with "
                                   "mode='r' to read alongside, or wait for that writer to close.") from None
        self._lock_fd = fd

    def _resume(self, rec: CommitRecord) -> None:
        """Table writers continuing after ``rec``; files a dead writer left past it are removed."""
        # 1,024 staged rows (1 MB of 1 KB rows) stay in cache between flushes: append 0.36x -> 0.42x
        stage = max(256, min(self.commit_every, 1024))
        for name, t in rec.tables.items():
            tw = TableWriter(self._folder, rec.uuid, name, Schema.from_json(t.schema_json), t.segment_rows,
                             self.chunk_bytes, stage if name == TRANSITIONS else 1024, self.fsync, name == TRANSITIONS)
            tw.resume(t)
            tw.before_open = self._check_place
            self._tables[name] = tw
        self._tw = tw = self._tables[TRANSITIONS]
        self._new_checkpoints, self._new_extra = list(rec.checkpoints), dict(rec.extra)
        total = np.zeros(256, np.int64)
        total[:len(rec.actor_counts)] = rec.actor_counts
        self._dropped_w = _full(rec.dropped_counts)
        k = tw.rows_written >> tw.shift
        tw.seg_counts[k] = total - self._dropped_w - sum(tw.seg_counts.values(), np.zeros(256, np.int64))
        self._remove_leftovers()
        ep = st = 0
        if tw.rows_written and {"episode", "step"} <= set(tw.schema.names):
            names = ["episode", "step"] + (["done"] if "done" in tw.schema else [])
            last = {k: v[0] for k, v in self._views[TRANSITIONS].read(names, tw.rows_written - 1, tw.rows_written).items()}
            done = bool(last.get("done", False))
            ep, st = (int(last["episode"]) + 1, 0) if done else (int(last["episode"]), int(last["step"]) + 1)
        self._stager = RowStager(tw, tw.schema, self.actors, ep, st)
        self._attach_frames()

    def _attach_frames(self) -> None:
        """A store whose record describes frames once takes stacks through a ``FramesStager``."""
        got = spec_of(self._extra)
        if got is not None and FRAMES_TABLE in self._tables:
            self._frames = FramesStager(got[0], got[1], self._stager, self._tables[FRAMES_TABLE])

    def _remove_leftovers(self) -> None:
        """Temporary files, and segments or checksum files past the record, from a writer that died."""
        for n in os.listdir(self._folder):
            p = os.path.join(self._folder, n)
            if n.endswith(".tmp"):
                layer().remove(p)
                continue
            stem, dot, ext = n.rpartition(".")
            packed = stem.endswith(".z")
            table, dash, idx = stem[:-2].rpartition("-") if packed else stem.rpartition("-")
            if ext not in ("h5", "sums") or not dash or not idx.isdigit():
                continue
            t = self._tables.get(table)
            k = int(idx)
            if t is None or k < t.first_segment or (ext == "h5" and k > t.rows_written >> t.shift) or \
                    (ext == "sums" and k >= t.rows_written >> t.shift) or \
                    (ext == "h5" and (k in t.compacted) != packed):  # compaction done, or never published
                layer().remove(p)

    # ------------------------------------------------------------------ writing rows
    def append(self, *, actor: str | int = _MISSING, state: Any = _MISSING, next_state: Any = _MISSING,
               discrete_action: Any = _MISSING, continuous_action: Any = _MISSING, reward: Any = _MISSING,
               done: Any = _MISSING, **columns: Any) -> None:
        """Append one row. ``actor`` (a name or code from the vocabulary) is required; the other
        keywords are the schema's columns (``Schema.transition``'s are named here).

        Values are validated (shape, safe dtype cast, finiteness) and copied into a staging block;
        rows become durable and visible at the next commit (automatic every ``commit_every`` rows
        or ``commit_seconds`` seconds, and at close). A bad value raises here, and the row is not kept.
        """
        # the lock taken without a with-statement: 92 ns against 144 (bench_store.py measures it)
        self._wlock_acquire()
        try:
            if self._closed or self._frames is not None:
                due = self._append_other(actor, state, next_state, discrete_action, continuous_action, reward, done,
                                         columns)
            else:
                due = self._stager.add(actor, state, next_state, discrete_action, continuous_action, reward, done,
                                       columns)
            if due:
                self._commit_keeping("this row was accepted and stays staged")
        finally:
            self._wlock_release()

    def _append_other(self, actor, state, next_state, discrete_action, continuous_action, reward, done,
                      columns) -> bool:
        """``append`` on a closed writer (an error) or a frames-once store (stacks -> frame ids)."""
        self._check_writable("append")
        return self._frames.add_row(actor, given_columns(state, next_state, discrete_action, continuous_action, reward,
                                                         done, columns))

    def extend(self, columns: Mapping) -> int:
        """Append a block of rows: a mapping of column name to an array with one entry per row.

        ``actor`` may hold names or codes. The whole block is validated before any of it is kept.
        Returns the number of rows added.
        """
        with self._wlock:
            self._check_writable("extend")
            n = (self._frames or self._stager).add_block(columns)
            if self._stager.due(time.time()):
                self._commit_keeping("this call's rows were accepted and stay staged")
            return n

    # ------------------------------------------------------------------ tables, checkpoints, state
    def create_table(self, name: str, schema: Schema, *, seg_rows: int | None = None) -> None:
        """Declare an append-only table (e.g. training telemetry); no-op if it exists with this schema.
        ``seg_rows``: rows per segment file (a power of two; default from the row size)."""
        with self._wlock:
            self._check_writable("create_table")
            if not isinstance(name, str) or not name.isidentifier() or name == TRANSITIONS:
                raise ValueError(f"table name {name!r} is reserved or not an identifier")
            if name in self._tables:
                if self._tables[name].schema != schema:
                    raise SchemaError(f"table {name!r} exists with another schema: {self._tables[name].schema.names}")
                return
            t = TableWriter(self._folder, self._manifest.uuid, name, schema, seg_rows or segment_rows(schema, None),
                            self.chunk_bytes, 1024, self.fsync, False)
            t.before_open = self._check_place
            t.ensure_segment()
            self._tables[name] = t

    def extend_table(self, name: str, columns: Mapping) -> int:
        """Append a block of rows to table ``name``; visible at the next commit."""
        with self._wlock:
            self._check_writable("extend_table")
            if name not in self._tables or name == TRANSITIONS:
                raise KeyError(f"no table {name!r}; create it first with create_table(name, schema)")
            t = self._tables[name]
            where = f"extend_table({name!r})"
            n = block_length(where, columns)
            check_names(where, t.schema, columns, (), ACTOR in columns, self.actors.names)
            if ACTOR in t.schema:  # a table's actor column holds vocabulary codes too (names accepted)
                columns = {**columns, ACTOR: self.actors.codes(columns[ACTOR])}
            t.add_block({c.name: block_column(where, c, columns[c.name], n) for c in t.schema if c.name in columns}, n)
            return n

    def record_checkpoint(self, step: int, path: str, **info) -> None:
        """Note a checkpoint in the store's log (durable now: this commits)."""
        with self._wlock:
            self._check_writable("record_checkpoint")
            entry = {"step": int(step), "path": os.fspath(path), "time": time.time(), **info}
            json_attr(entry, "checkpoint info")
            self._new_checkpoints.append(entry)
            self.commit()

    def set_extra(self, key: str, value) -> None:
        """Small JSON state kept with the next commit (for other parts of the store)."""
        with self._wlock:
            self._check_writable("set_extra")
            json_attr(value, f"extra[{key!r}]")
            self._new_extra[key] = value

    def copy_from(self, src: ReplayStore, block_rows: int = 65536) -> int:
        """Write every committed row of every table of ``src``, its checkpoints and extra state into
        this store (new, same schema and actors), then commit; returns the transition rows copied.

        Rows are copied as stored, not through ``extend``: a forensic copy keeps even values
        ``extend`` would refuse (actor codes outside the vocabulary, NaN where a writer bug put
        it), so its counts report them as the original's do. Row ids are kept, so ``src`` must
        hold every row from 0 (no retention) and this store none yet.
        """
        with self._wlock:
            self._check_writable("copy_from")
            if src.first_row:
                raise ValueError(f"copy_from: {src.path} kept only rows from {src.first_row} on (retention); a copy "
                                 "would renumber them")
            if len(self) or self._tw.rows or src.stored_schema() != self._tw.schema or src.actors != self.actors:
                raise ValueError(f"copy_from: {self.path} must be a new, empty store with the schema and actors of "
                                 f"{src.path} (for a frames-once store, created with its FrameStack)")
            for name, rows in src.tables.items():
                if name != TRANSITIONS:
                    self.create_table(name, src.stored_schema(name))
                t = self._tables[name]
                for lo in range(0, rows, block_rows):
                    hi = min(rows, lo + block_rows)
                    t.add_block(src.read_stored(name, lo, hi), hi - lo)
                self._commit("open")
            for key, value in src.extra.items():
                self.set_extra(key, value)
            self._new_checkpoints.extend(src.checkpoints)
            self._commit("open")
            return len(src)

    def use_compacted(self, done: dict[str, list[int]]) -> int:
        """Publish compacted copies of full segments (``compact_tables`` wrote them beside the raw
        ones as ``<table>-NNNNNN.z.h5``): commit a record that names them, then remove the raw
        segments, which nothing reads from then on. A kill before the commit leaves the raw ones in
        use (the next writer removes the unpublished copies); after it, the copies."""
        with self._wlock:
            self._check_writable("use_compacted")
            for name, ks in done.items():
                self._tables[name].use_compacted(ks)
            rows = self._commit("open")
            for name, ks in done.items():
                view = self._views[name]
                for k in ks:
                    view.forget(k)
                    layer().remove(os.path.join(self._folder, segment_name(name, k)))
            return rows

    # ------------------------------------------------------------------ committing
    def _check_writable(self, where: str) -> None:
        if self._closed:
            raise ClosedStoreError(f"{where}: the store {self.path} is closed; reopen it with ReplayStore.open(path, 'a')")

    def commit(self) -> int:
        """Make every row appended so far durable and visible; returns the committed row count."""
        with self._wlock:
            self._check_writable("commit")
            return self._commit("open")

    def _content(self) -> tuple:
        """What a commit would record beyond the last clean close: rows, segments, tables, log, state."""
        return (tuple((name, t.rows_written, t.first_segment, tuple(sorted(t.compacted)))
                      for name, t in sorted(self._tables.items())),
                len(self._new_checkpoints), json_attr(self._new_extra, "extra"))

    def _commit_keeping(self, accepted: str) -> None:
        """The automatic commit of an append or extend: a failure says what the call's rows became
        (``accepted``), since the rows stay staged for the next commit."""
        try:
            self.commit()
        except StoreWriteError as e:
            raise type(e)(e.errno, f"{e.strerror} ({accepted})") from e

    def _check_place(self) -> None:
        """Refuse to write once the store's folder is no longer this writer's: removed, or another
        store made at the path (its own ``writer.lock``). Our lock file is held open, so its inode
        number cannot be reused: a different one there means different files. Measured before: such
        a writer overwrote the new store's rows or record at its next commit."""
        try:
            same = os.path.samestat(os.stat(os.path.join(self._folder, LOCK)), os.fstat(self._lock_fd))
        except FileNotFoundError:
            same = False
        if not same:
            raise StoreReplacedError(errno.ESTALE, f"{self.path}: its folder {self._folder} was removed or replaced "
                                     "(by another store?) since this writer opened it; this writer refuses to write "
                                     "there, leaving what is there now untouched. Its rows not yet committed are "
                                     "not kept: close it and open the store at that path anew")

    def _commit(self, state: str) -> int:
        self._check_place()
        for t in self._tables.values():
            t.flush_stage()
        for t in self._tables.values():
            t.seal()
        if self.fsync:
            for t in self._tables.values():
                t.sync()
        if not self._session_marked and self._content() != self._at_open:
            self._write_manifest()  # before the record: see _session_marked
            self._session_marked = True
        tw = self._tw
        first = tw.first_segment
        if self.retain is not None and tw.rows_written > self.retain:
            first = max(first, (tw.rows_written - self.retain) >> tw.shift)
        dropped = self._dropped_w.copy()
        for k in range(tw.first_segment, first):
            dropped += tw.seg_counts.get(k, 0)
        tables = {}
        for name, t in self._tables.items():
            tr = t.record()
            if name == TRANSITIONS and first != t.first_segment:
                tr.first_segment = first
                tr.segment_counts = {j: v for j, v in tr.segment_counts.items() if j >= first}
            tables[name] = tr
        recovery = self._recovered if self._recovered is not None else self._recovery
        rec = CommitRecord(self._manifest.uuid, self._seq + 1, tables, _trim(self._total_w_now()), _trim(dropped),
                           this_writer(state), self._manifest.identity(), recovery, list(self._new_checkpoints),
                           dict(self._new_extra))
        self._record_file.write(rec, self.fsync)
        # ---- published: from here on, only bookkeeping and removing what the record no longer names
        self._recovered = None
        self._dropped_w = dropped
        gone = tw.drop_before(first)
        for k in gone:
            tw.seg_counts.pop(k, None)
        self._use_record(rec)
        self._stager.set_due(rec.rows + self.commit_every, time.time() + self.commit_seconds)
        for t in self._tables.values():
            t.after_commit()
        for k in gone:
            tw.compacted.discard(k)
            for n in (segment_name(TRANSITIONS, k), sums_name(TRANSITIONS, k), compact_name(TRANSITIONS, k)):
                layer().remove(os.path.join(self._folder, n))
        if state == "open" and time.monotonic() >= self._manifest_due and \
                any(t.segments_changed for t in self._tables.values()):
            try:
                self._write_manifest()
            except StoreWriteError as e:  # only stock h5py's view waits for it; rows are committed
                warnings.warn(f"{e}; the manifest's view of the segments is updated at the next commit",
                              RuntimeWarning, stacklevel=3)
        return rec.rows

    def _total_w_now(self) -> np.ndarray:
        tw = self._tw
        return self._dropped_w + sum((tw.seg_counts[k] for k in tw.seg_counts if k >= tw.first_segment),
                                     np.zeros(256, np.int64))

    def _write_manifest(self) -> None:
        t0 = time.monotonic()
        views = {name: (t.schema, t.seg_rows, t.first_segment, self._views[name].rows if name in self._views else 0,
                        t.compacted) for name, t in self._tables.items()}
        write_manifest(self.path, self._manifest, views, self.fsync)
        for t in self._tables.values():
            t.segments_changed = False
        now = time.monotonic()
        self._manifest_due = now + max(MANIFEST_SECONDS, (now - t0) / MANIFEST_SHARE if MANIFEST_SHARE else 0.0)

    def close(self) -> None:
        """Commit what is pending and release the files and the writer lock. Closing twice is harmless.

        If that last commit fails (a full disk), the store still closes; what the last successful
        commit made durable stays, and the error is raised.
        """
        with self._wlock:
            if self._closed:
                return
            try:
                self._commit("closed")
                self._manifest.session = {"state": "closed"}
                self._manifest.closed_record = self._record.to_json()
                self._write_manifest()
            finally:
                self._closed = True
                self._release()

    def _release(self) -> None:
        for t in self._tables.values():
            t.close()
        self._close_views()
        self._record_file.close()
        if self._lock_fd >= 0:
            layer().close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    def __del__(self):
        # A writer that is garbage-collected still commits; failures here cannot be raised.
        try:
            if not getattr(self, "_closed", True) and self._manifest is not None:
                self.close()
        except Exception:
            pass

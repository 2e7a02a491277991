"""``StoreReader``, the reading role, and the choice of which commit record to trust.

A reader owns the commit record it last read and the mappings of the segments. It opens HDF5
once, to read the manifest (which catches stale records), and never blocks a writer.
"""

from __future__ import annotations

import os
import uuid as _uuid
import warnings

import numpy as np

from ..format import _record
from ..format._format import N_CODES, TRANSITIONS, segment_dir
from ..format._manifest import Manifest, read_manifest, read_version
from ..format._record import CommitRecord
from ..format._schema import ACTOR
from ._store import _PRIVATE, ReplayStore
from ..errors import (ClosedStoreError, DamagedStoreError, FormatVersionError, NotAStoreError, ReadOnlyError,
                     StoreNotFoundError, TruncatedStoreError)


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
    manifest is damaged, missing or inconsistent is described by the copy of its identity in an
    intact commit record (the segments then check the record); format 1 files go to ``v1(file)``
    when given."""
    folder = segment_dir(path)
    if os.path.islink(folder):  # its segments would be read, written and locked wherever it points
        raise DamagedStoreError(f"{folder} is a symbolic link (to {os.readlink(folder)!r}); a store never reads or "
                                "writes outside its own files: move the folder itself into place")
    try:
        version, f = read_version(path)
    except (NotAStoreError, TruncatedStoreError, DamagedStoreError, StoreNotFoundError, FormatVersionError) as e:
        # deleted, truncated, overwritten, or a damaged version number: the record can stand in. Not a
        # directory or special file someone put there, and not a store whose record is newer too.
        if os.path.lexists(path) and not os.path.isfile(path):
            raise
        return 2, _manifest_from_record(path, e), e
    try:
        if version == 1:
            if v1 is not None:
                v1(f)
            return 1, None, None
        try:
            m = read_manifest(f, path)
            _check_manifest(m, path)
            return 2, m, None
        except DamagedStoreError as e:
            return 2, _manifest_from_record(path, e), e
    finally:
        f.close()


def _check_manifest(m: Manifest, path: str) -> None:
    """A manifest whose fields parse can still hold a damaged byte (a window, a uuid digit): its
    uuid must be one, and its identity must be the one its last clean close recorded."""
    try:
        _uuid.UUID(m.uuid)
    except ValueError:
        raise DamagedStoreError(f"{path}: the manifest's uuid {m.uuid!r:.60} is not a uuid") from None
    closed = m.closed(path)
    if closed is None:
        return
    ident = m.identity()
    differ = sorted(k for k, v in closed.identity.items() if k in ident and ident[k] != v)
    if closed.uuid != m.uuid or differ:
        raise DamagedStoreError(f"{path}: the manifest disagrees with its own last clean close "
                                f"({'uuid' if closed.uuid != m.uuid else ', '.join(differ)})")


def _manifest_from_record(path: str, e: Exception) -> Manifest:
    try:
        got = _record.read_record(path)
    except FormatVersionError:
        raise
    except DamagedStoreError as why:
        if isinstance(e, FormatVersionError):
            raise e from None
        raise DamagedStoreError(f"{e}; and the commit record cannot stand in for it: {why}") from None
    if got is None:
        raise e
    if isinstance(e, StoreNotFoundError) and not any(t.rows for t in got[0].tables.values()):
        # no manifest and nothing committed: a creator killed before it published the store (the
        # manifest is published last, _create.py), or an empty store whose manifest was deleted.
        # Nothing to salvage, so no store at the name: create() takes the name over.
        raise e
    return Manifest.from_record(got[0], path)


def use_trusted(store: ReplayStore, path: str, m: Manifest, mode: str) -> tuple[CommitRecord, tuple | None]:
    """``choose_record``, then ``store._use_record``; a record that contradicts the files (a segment
    missing, short or foreign) gives way to the last clean close when that is a safe fallback."""
    rec, sig = choose_record(path, m, mode)
    try:
        store._use_record(rec)
    except (DamagedStoreError, TruncatedStoreError) as e:
        closed = m.closed(path) if m.session.get("state") != "open" else None
        if closed is None or closed.seq == rec.seq:
            raise
        warnings.warn(f"{path}: the commit record contradicts the files ({e}); using the store's last clean close "
                      f"(seq {closed.seq}, {closed.rows} rows)", RuntimeWarning, stacklevel=4)
        store._use_record(closed)
        rec, sig = closed, None
    if sig is None:  # not the .commit file: the rows themselves are the truth for the actor counts
        store._use_record(_recount(store, rec))
    return rec, sig


def _recount(store: ReplayStore, rec: CommitRecord) -> CommitRecord:
    """``rec`` with its actor counts (total and per full segment) counted from the committed rows:
    the record in force is the manifest's copy, and the rows may have been edited since (a code
    outside the vocabulary is then counted, and reported, not hidden)."""
    t = rec.tables[TRANSITIONS]
    v = store._views[TRANSITIONS]
    codes = v.read([ACTOR], t.first_row, t.rows)[ACTOR]
    total = np.bincount(codes, minlength=N_CODES).astype(np.int64)
    total[:len(rec.dropped_counts)] += np.asarray(rec.dropped_counts, np.int64)
    rec.actor_counts = _nonzero_prefix(total)
    t.segment_counts = {k: _nonzero_prefix(np.bincount(codes[(k * t.segment_rows) - t.first_row:
                                                              ((k + 1) * t.segment_rows) - t.first_row],
                                                        minlength=N_CODES))
                        for k in range(t.first_segment, t.rows // t.segment_rows)}
    return rec


def _nonzero_prefix(v: np.ndarray) -> list[int]:
    nz = np.flatnonzero(v)
    return v[:int(nz[-1]) + 1].tolist() if len(nz) else []


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



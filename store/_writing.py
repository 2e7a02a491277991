"""The writing side of ``ReplayStore``: append, extend, commit, close, tables, checkpoints.

Rows are validated and staged (``_rowappend.py`` generates the one-row path), written to HDF5 a
block at a time (``_writer.py``), and made durable and visible by ``commit()``: flush HDF5, then
atomically replace the commit record that readers trust (``_commit.py``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping

import numpy as np

from . import _commit
from ._commit import CommitRecord, TableRecord
from ._format import ACTOR_PREFIX, PREFIX_COLUMN, PREFIX_EVERY, TRANSITIONS
from ._schema import ACTOR, Schema
from ._validate import block_column, block_length, check_names
from ._writer import TableWriter
from .errors import ClosedStoreError, ReadOnlyError, SchemaError, ShapeError

def json_attr(value, what: str) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what} must be JSON-serializable (str, numbers, lists, dicts); {e}") from e


class TransitionWriter(TableWriter):
    """Counts actors as blocks reach the file, and feeds the actor prefix-count index."""

    def __init__(self, *args, prefix: TableWriter, counts: np.ndarray, **kw):
        super().__init__(*args, **kw)
        self.prefix = prefix
        self.counts = counts

    def write_block(self, block, n):
        if n == 0:
            return
        r0 = self.rows_written
        codes = block[ACTOR][:n]
        nxt = (r0 // PREFIX_EVERY + 1) * PREFIX_EVERY
        done = 0
        rows = []
        while nxt <= r0 + n:
            upto = nxt - r0
            self.counts += np.bincount(codes[done:upto], minlength=len(self.counts))
            rows.append(self.counts.copy())
            done, nxt = upto, nxt + PREFIX_EVERY
        self.counts += np.bincount(codes[done:n], minlength=len(self.counts))
        super().write_block(block, n)
        if rows:
            self.prefix.write_block({PREFIX_COLUMN: np.stack(rows)}, len(rows))


class WritingMixin:
    """Methods of ``ReplayStore`` that write; a store opened read-only refuses them all."""

    # ------------------------------------------------------------------ writing
    def _resume_episode_counters(self) -> None:
        self._next_episode = 0
        self._next_step = 0
        n = self._tw.rows_written
        if n and {"episode", "step"} <= set(self.schema.names):
            ep = int(self._tw.datasets["episode"][n - 1])
            st = int(self._tw.datasets["step"][n - 1])
            done = bool(self._tw.datasets["done"][n - 1]) if self._has_done else False
            self._next_episode, self._next_step = (ep + 1, 0) if done else (ep, st + 1)

    def _check_writable(self, where: str) -> None:
        if self._closed:
            raise ClosedStoreError(f"{where}: the store {self.path} is closed; reopen it with ReplayStore.open(path, 'a')")
        if self._tw is None:
            raise ReadOnlyError(f"{where}: the store {self.path} is open read-only; open it with mode='a' to append")

    def append(self, *, actor, **columns) -> None:
        """Append one row. ``actor`` (a name or code from the vocabulary) is required.

        Values are validated (shape, safe dtype cast, finiteness) and copied into a staging block;
        the block goes to the file when full, and rows become durable and visible at the next
        commit. A store opened for appending replaces this method with code generated for its
        schema (``_rowappend.py``); here only a read-only or closed store arrives.
        """
        self._check_writable("append")

    def extend(self, columns: Mapping) -> int:
        """Append a block of rows: a mapping of column name to an array with one entry per row.

        ``actor`` may hold names or codes. The whole block is validated before any of it is kept.
        Returns the number of rows added.
        """
        self._check_writable("extend")
        n = block_length("extend", columns)
        check_names("extend", self.schema, columns, self._auto, ACTOR in columns, self.actors.names)
        block = {}
        for c in self.schema:
            if c.name == ACTOR:
                block[ACTOR] = self.actors.codes(columns[ACTOR])
                if block[ACTOR].shape != (n,):
                    raise ShapeError(f"extend: column 'actor' got shape {block[ACTOR].shape}, expected ({n},)")
            elif c.name in columns:
                block[c.name] = block_column("extend", c, columns[c.name], n)
        self._fill_auto_block(block, n)
        self._tw.add_block(block, n)
        if n and ("episode" in self._auto or "step" in self._auto):
            last_done = bool(block["done"][-1]) if self._has_done else False
            ep, st = int(block["episode"][-1]), int(block["step"][-1])
            self._next_episode, self._next_step = (ep + 1, 0) if last_done else (ep, st + 1)
        if self._tw.rows - self._committed_rows >= self.commit_every or \
                time.time() - self._last_commit >= self.commit_seconds:
            self.commit()
        return n

    def _fill_auto_block(self, block: dict, n: int) -> None:
        done = block["done"].astype(bool) if self._has_done else np.zeros(n, bool)
        if "episode" in self._auto and "episode" not in block:
            ended_before = np.concatenate([[0], np.cumsum(done[:-1], dtype=np.int64)]) if n else np.zeros(0, np.int64)
            block["episode"] = self._next_episode + ended_before
        if "step" in self._auto and "step" not in block:
            idx = np.arange(n, dtype=np.int64)
            starts = np.zeros(n, np.int64)
            if n > 1:
                starts[1:] = np.where(done[:-1], idx[1:], 0)
            first = np.maximum.accumulate(starts) if n else starts
            block["step"] = idx - first + np.where(first == 0, self._next_step, 0)
        if "time" in self._auto and "time" not in block:
            block["time"] = np.full(n, time.time())

    # ------------------------------------------------------------------ committing
    def commit(self) -> int:
        """Make every row appended so far durable and visible; returns the committed row count."""
        self._check_writable("commit")
        return self._commit("open")

    def _commit(self, state: str) -> int:
        f = self._f
        for t in self._tables.values():
            t.flush_stage()
        rows = {name: t.rows_written for name, t in self._tables.items()}
        a = f.attrs
        a["committed"] = json.dumps(rows)
        a["actor_counts"] = json.dumps(self._tw.counts.tolist())
        small = (json_attr(self._checkpoints, "checkpoints"), json_attr(self._extra, "extra"))
        if small != self._written_small:  # rarely changes: skip two attribute rewrites per commit
            a["checkpoints"], a["extra"] = small
            self._written_small = small
        if self._recovered is not None:  # written once, at the first commit after a recovery
            a["recovery"] = json.dumps(self._recovered)
            self._recovery_attr, self._recovered = self._recovered, None
        f.flush()
        if self.fsync:
            os.fsync(f.id.get_vfd_handle())
        tables = {name: TableRecord(t.schema.to_json(), rows[name], t.refresh_offsets(rows[name]))
                  for name, t in self._tables.items()}
        self._seq += 1
        record = CommitRecord(
            uuid=self._uuid, seq=self._seq, attrs=self._attrs, tables=tables,
            actor_counts=self._tw.counts.tolist(), writer=_commit.this_writer(state),
            h5_inode=os.stat(self.path).st_ino, recovery=self._recovery_attr,
            checkpoints=list(self._checkpoints), extra=dict(self._extra),
        )
        _commit.write_record(self.path, record, self.fsync)
        self._use_record(record, None)
        self._committed_rows = rows[TRANSITIONS]
        self._last_commit = time.time()
        return self._committed_rows

    def close(self) -> None:
        """Commit what is pending (if writing) and release the file. Closing twice is harmless."""
        if self._closed:
            return
        try:
            if self._f is not None:
                self._commit("closed")
        finally:
            self._closed = True
            if self._f is not None:
                self._f.close()
                self._f = None
                self._tw = None
            self._mf.close()
            self._maps = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        # A writer that is garbage-collected still commits; failures here cannot be raised.
        try:
            if not getattr(self, "_closed", True):
                self.close()
        except Exception:
            pass

    # ------------------------------------------------------------------ tables (training telemetry)
    def create_table(self, name: str, schema: Schema) -> None:
        """Declare an append-only table (e.g. training telemetry); no-op if it exists with this schema."""
        self._check_writable("create_table")
        if not name.isidentifier() or name in (TRANSITIONS, ACTOR_PREFIX):
            raise ValueError(f"table name {name!r} is reserved or not an identifier")
        if name in self._tables:
            if self._tables[name].schema != schema:
                raise SchemaError(f"table {name!r} exists with another schema: {self._tables[name].schema.names}")
            return
        self._tables[name] = TableWriter(self._f, name, schema, self._chunk_bytes, 1024, 0, create=True)

    def extend_table(self, name: str, columns: Mapping) -> int:
        """Append a block of rows to table ``name``; visible at the next commit."""
        self._check_writable("extend_table")
        if name not in self._tables or name in (TRANSITIONS, ACTOR_PREFIX):
            raise KeyError(f"no table {name!r}; create it first with create_table(name, schema)")
        t = self._tables[name]
        where = f"extend_table({name!r})"
        n = block_length(where, columns)
        check_names(where, t.schema, columns, (), ACTOR in columns, self.actors.names)
        if ACTOR in t.schema:  # a table's actor column holds vocabulary codes too (names accepted)
            columns = {**columns, ACTOR: self.actors.codes(columns[ACTOR])}
        t.add_block({c.name: block_column(where, c, columns[c.name], n) for c in t.schema}, n)
        return n

    def record_checkpoint(self, step: int, path: str, **info) -> None:
        """Note a checkpoint in the store's log (durable now: this commits)."""
        self._check_writable("record_checkpoint")
        entry = {"step": int(step), "path": os.fspath(path), "time": time.time(), **info}
        json_attr(entry, "checkpoint info")
        self._checkpoints.append(entry)
        self.commit()

    def set_extra(self, key: str, value) -> None:
        """Small JSON state kept with the next commit (for other parts of the store)."""
        self._check_writable("set_extra")
        json_attr(value, f"extra[{key!r}]")
        self._extra[key] = value

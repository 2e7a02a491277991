"""The reading side of ``ReplayStore``: everything a reader does goes through the commit
record and the mapped file, never through HDF5, so it works while another process writes."""

from __future__ import annotations

import numpy as np

from . import _commit
from ._commit import TableRecord
from ._format import ACTOR_PREFIX, PREFIX_COLUMN, PREFIX_EVERY, TRANSITIONS
from ._mapped import ColumnMap, MappedFile
from ._schema import ACTOR, Schema
from .errors import ClosedStoreError


class ReadingMixin:
    """Methods of ``ReplayStore`` that read committed rows (in a writer too: its last commit)."""

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return self._record.tables[TRANSITIONS].rows if self._record else 0

    def refresh(self) -> int:
        """Pick up commits made since this reader opened (or last refreshed); returns ``len(self)``."""
        if self._closed:
            raise ClosedStoreError(f"refresh: the store {self.path} is closed")
        if self._tw is not None or self._sig is None:
            return len(self)
        sig = _commit.record_signature(self.path)
        if sig is not None and sig != self._sig:
            got = _commit.read_record(self.path)
            if got is not None:
                self._use_record(*got)
        return len(self)

    def has_new_commits(self) -> bool:
        """Cheap check (one open, fstat and short read) for commits a refresh would pick up."""
        return self._tw is None and self._sig is not None and _commit.record_signature(self.path) != self._sig

    @property
    def uuid(self) -> str:
        """The store's identity, made by ``create`` (a copy of the file keeps it)."""
        return self._record.uuid

    @property
    def commit_seq(self) -> int:
        """Increases at every commit this handle has seen."""
        return self._record.seq

    @property
    def tables(self) -> dict[str, int]:
        """Committed rows of each user-visible table, transitions included."""
        return {k: t.rows for k, t in self._record.tables.items() if k != ACTOR_PREFIX}

    def table_schema(self, name: str) -> Schema:
        return Schema.from_json(self._table_record(name).schema_json)

    @property
    def checkpoints(self) -> list[dict]:
        return list(self._record.checkpoints)

    def get_extra(self, key: str, default=None):
        return self._record.extra.get(key, default)

    def _table_record(self, name: str) -> TableRecord:
        try:
            return self._record.tables[name]
        except KeyError:
            raise KeyError(f"no table {name!r} in {self.path}; tables: {sorted(self.tables)}") from None

    def column_maps(self, table: str = TRANSITIONS) -> dict[str, ColumnMap]:
        """Where each stored column's committed rows lie in the mapped file (for samplers)."""
        if self._closed:
            raise ClosedStoreError(f"the store {self.path} is closed")
        m = self._maps.get(table)
        if m is None:
            rec = self._table_record(table)
            schema = Schema.from_json(rec.schema_json)
            m = self._maps[table] = {n: ColumnMap(schema[n], rpc, off) for n, (rpc, off) in rec.chunks.items()}
        return m

    @property
    def mapped_file(self) -> MappedFile:
        return self._mf

    def read_table(self, name: str, columns=None, start: int | None = None, stop: int | None = None) -> dict:
        """Committed rows ``[start, stop)`` of table ``name`` as numpy arrays (read through the mapping)."""
        if self._closed:
            raise ClosedStoreError(f"read: the store {self.path} is closed")
        rec = self._table_record(name)
        schema = Schema.from_json(rec.schema_json)
        names = schema.names if columns is None else ([columns] if isinstance(columns, str) else list(columns))
        unknown = [c for c in names if c not in schema]
        if unknown:
            raise KeyError(f"read: unknown column(s) {unknown}; {name!r} has {list(schema.names)}")
        lo, hi, _ = slice(start, stop).indices(rec.rows)
        hi = max(lo, hi)
        maps = self.column_maps(name)
        out = {}
        for c in names:
            m = maps.get(c)
            out[c] = m.read(self._mf, lo, hi) if m is not None else np.empty((hi - lo, *schema[c].shape), schema[c].dtype)
        return out

    def gather(self, rows, columns=None, table: str = TRANSITIONS) -> dict[str, np.ndarray]:
        """Committed rows ``rows`` (any order, repeats allowed) of ``columns`` as new numpy arrays.

        The one random-access read that the sampler, the agent's n-step targets and the analysis
        use: it goes through the mapping, never through HDF5. Every row must be committed.
        """
        if self._closed:
            raise ClosedStoreError(f"gather: the store {self.path} is closed")
        rec = self._table_record(table)
        rows = np.asarray(rows)
        if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
            raise TypeError(f"gather: rows must be a 1-d array of integer row ids, got dtype {rows.dtype} and "
                            f"shape {rows.shape}")
        rows = rows.astype(np.int64, copy=False)
        if rows.size and (int(rows.min()) < 0 or int(rows.max()) >= rec.rows):
            raise IndexError(f"gather: row ids must lie in [0, {rec.rows}) (the committed rows of {table!r}); got "
                             f"min {int(rows.min())}, max {int(rows.max())}")
        maps = self.column_maps(table)
        schema = Schema.from_json(rec.schema_json) if table != TRANSITIONS else self.schema
        names = schema.names if columns is None else ([columns] if isinstance(columns, str) else list(columns))
        unknown = [c for c in names if c not in schema]
        if unknown:
            raise KeyError(f"gather: unknown column(s) {unknown}; {table!r} has {list(schema.names)}")
        out = {}
        for c in names:
            m = maps.get(c)
            out[c] = m.gather(self._mf, rows) if m is not None else np.empty((len(rows), *schema[c].shape), schema[c].dtype)
        return out

    def read(self, columns=None, start: int | None = None, stop: int | None = None) -> dict[str, np.ndarray]:
        """Committed transition rows ``[start, stop)`` (Python slice rules) as numpy arrays."""
        return self.read_table(TRANSITIONS, columns, start, stop)

    def window_start(self) -> int:
        return max(0, len(self) - self.window)

    def actor_counts(self, start: int = 0) -> np.ndarray:
        """Per-actor counts of committed rows ``[start, len)`` from the maintained counts and prefix index."""
        total = np.asarray(self._record.actor_counts, np.int64)
        if start <= 0:
            return total
        start = min(int(start), len(self))  # past the end: no rows (the prefix row there is not committed)
        k = start // PREFIX_EVERY
        prefix = self.column_maps(ACTOR_PREFIX)[PREFIX_COLUMN].gather(self._mf, np.array([k]))[0]
        tail = self.read([ACTOR], k * PREFIX_EVERY, start)[ACTOR]
        return total - prefix - np.bincount(tail, minlength=len(self.actors))

    def actor_composition(self, window: bool = True) -> dict:
        """``{"total", "counts", "fractions"}`` per actor name, over the replay window or the whole store."""
        counts = self.actor_counts(self.window_start() if window else 0)
        total = int(counts.sum())
        return {
            "total": total,
            "counts": {n: int(c) for n, c in zip(self.actors.names, counts)},
            "fractions": {n: (float(c) / total if total else 0.0) for n, c in zip(self.actors.names, counts)},
        }

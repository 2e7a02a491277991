"""``RunSource``: the committed rows of all shards of a run as one ``SampleSource``.

Shards grow side by side, so laying them end to end would move every row of shard 2 whenever
shard 1 commits. Instead, rows get run-wide ids in the order this source first sees them
committed: at each refresh, each shard's newly committed rows ``[seen, n)`` become the next
segment of the run's row space. That space only grows, as the protocol asks, and the run's
replay window is its last ``window`` rows: the most recent rows of all workers together, as one
replay buffer shared by many actors holds them (Ape-X). A segment maps back to (shard, row) by
one ``searchsorted`` over the segment starts.

A ``Sampler`` over this source gives uniform, stratified and prioritized sampling over the whole
run (prioritized with one sum tree over all its rows), and batches carry ``shard`` (an index into
``shard_names``); ``locate(rows)`` turns run-wide ids into (shard, row in that shard).
Only the shards' public reading API is used.
"""

from __future__ import annotations

import os
import time

import numpy as np

from ._run import SHARDS, Run
from ..read._store import ReplayStore
from ..errors import ClosedStoreError, StoreLockedError


class RunSource:
    """One growing row space over a run's shards (see the module docstring)."""

    def __init__(self, run: Run):
        if not isinstance(run, Run):
            raise TypeError(f"RunSource: run must be a store.Run, got {type(run).__name__}")
        self.run = run
        self.path = run.path
        self.window = run.window
        self.schema = run.schema
        self.actors = run.actors
        self._stores: list[ReplayStore] = []
        self.shard_names: list[str] = []
        self._seen: list[int] = []  # rows of each shard already given run-wide ids
        self._seg_start = np.zeros(0, np.int64)  # run-wide id of each segment's first row
        self._seg_shard = np.zeros(0, np.int64)
        self._seg_local = np.zeros(0, np.int64)  # the shard row of each segment's first row
        self._seg_counts = np.zeros((1, len(self.actors)), np.int64)  # actor counts before each segment
        self._n = 0
        self._seq = 0
        self._folder = os.path.join(run.path, SHARDS)
        self._listed = None  # (mtime, inode) of the shards folder at the last listing
        self._recheck = True
        self._retry_at = 0.0
        self._closed = False
        self.refresh()

    # ------------------------------------------------------------------ the protocol
    def __len__(self) -> int:
        return self._n

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def commit_seq(self) -> int:
        return self._seq

    def window_start(self) -> int:
        return max(0, self._n - self.window)

    def has_new_commits(self) -> bool:
        """A new shard in the folder (one stat) or a new commit in a known shard (one stat each)."""
        if self._closed:
            return False
        return self._folder_changed() or any(s.has_new_commits() for s in self._stores)

    def refresh(self) -> int:
        """Open new shards and give the rows committed since the last refresh their run-wide ids."""
        if self._closed:
            raise ClosedStoreError(f"refresh: the run source over {self.path} is closed")
        if self._folder_changed():
            self._discover()
        starts, shards, locals_, counts = [], [], [], []
        for i, s in enumerate(self._stores):
            if s.has_new_commits():
                s.refresh()
            m, seen = len(s), self._seen[i]
            if m <= seen:
                continue
            starts.append(self._n)
            shards.append(i)
            locals_.append(seen)
            counts.append(s.actor_counts(seen))  # rows [seen, m): m is this handle's committed count
            self._n += m - seen
            self._seen[i] = m
        if starts:
            self._seg_start = np.concatenate([self._seg_start, starts])
            self._seg_shard = np.concatenate([self._seg_shard, shards])
            self._seg_local = np.concatenate([self._seg_local, locals_])
            self._seg_counts = np.concatenate([self._seg_counts, self._seg_counts[-1] + np.cumsum(counts, axis=0)])
            self._seq += 1
        return self._n

    def actor_counts(self, start: int = 0) -> np.ndarray:
        """Rows per actor code among run-wide rows ``[start, len)``."""
        start = min(max(int(start), 0), self._n)
        total = self._seg_counts[-1]
        if start == 0:
            return total.copy()
        if start == self._n:
            return np.zeros_like(total)
        k = int(np.searchsorted(self._seg_start, start, side="right")) - 1
        s = self._stores[int(self._seg_shard[k])]
        a = int(self._seg_local[k])
        b = a + start - int(self._seg_start[k])
        return total - self._seg_counts[k] - (s.actor_counts(a) - s.actor_counts(b))

    def gather(self, rows, columns=None) -> dict[str, np.ndarray]:
        """Run-wide rows (any order, repeats) of ``columns``, read from their shards."""
        order, batch = self.gather_grouped(rows, columns)
        if order is None:
            return batch
        inv = np.empty_like(order)
        inv[order] = np.arange(len(order))
        return {c: v.take(inv, axis=0) for c, v in batch.items()}

    def gather_grouped(self, rows, columns=None) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
        """``(order, batch)``: ``batch`` holds ``rows[order]`` read shard by shard (``order`` is
        None when that is the order asked). The sampler uses it: a batch's order means nothing,
        and putting 8 MB of columns back in the asked order cost a third of a batch."""
        if self._closed:
            raise ClosedStoreError(f"gather: the run source over {self.path} is closed")
        shard, local = self.locate(rows)
        names = list(self.schema.names) if columns is None else ([columns] if isinstance(columns, str) else list(columns))
        if len(shard) == 0 or (shard == shard[0]).all():
            store = self._stores[int(shard[0])] if len(shard) else self._stores[0] if self._stores else None
            if store is None:
                return None, {c: np.empty((0, *self.schema[c].shape), self.schema[c].dtype) for c in names}
            return None, store.gather(local, names)
        # Rows sorted by (shard, row): each shard gathers ascending rows (kinder to the page cache
        # and TLB than random ones), the parts are joined, and one take puts them back in order.
        key = shard * (1 << 40) + local
        ordered = bool((key[1:] >= key[:-1]).all())  # uniform draws come sorted, prioritized often
        order = np.arange(len(key)) if ordered else np.argsort(key)
        ss = shard[order]
        cuts = np.flatnonzero(ss[1:] != ss[:-1]) + 1
        n = len(order)
        out = {c: np.empty((n, *self.schema[c].shape), self.schema[c].dtype) for c in names}
        for a, z in zip(np.r_[0, cuts].tolist(), np.r_[cuts, n].tolist()):  # each shard fills its slice
            self._stores[int(ss[a])].gather(local[order[a:z]], names, out={c: out[c][a:z] for c in names})
        return (None if ordered else order), out

    def shard_of(self, rows) -> np.ndarray:
        """The shard index (into ``shard_names``) of each run-wide row."""
        return self.locate(rows)[0]

    # ------------------------------------------------------------------ run-wide ids <-> shards
    def locate(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """``(shard index, row within that shard)`` of each run-wide row id."""
        rows = np.asarray(rows)
        if rows.ndim != 1 or (rows.size and not np.issubdtype(rows.dtype, np.integer)):
            raise TypeError(f"rows must be a 1-d array of integer row ids, got {rows.dtype} {rows.shape}")
        rows = rows.astype(np.int64, copy=False)
        if rows.size and (int(rows.min()) < 0 or int(rows.max()) >= self._n):
            raise IndexError(f"row ids must lie in [0, {self._n}) (the run's committed rows seen so far); got "
                             f"min {int(rows.min())}, max {int(rows.max())}")
        k = np.searchsorted(self._seg_start, rows, side="right") - 1
        return self._seg_shard[k], self._seg_local[k] + rows - self._seg_start[k]

    def shard_store(self, index: int) -> ReplayStore:
        """The read handle of shard ``index`` (e.g. to gather n-step windows inside one shard)."""
        return self._stores[int(index)]

    def composition(self) -> dict:
        """``{"total", "counts", "fractions"}`` per actor name over every row seen so far."""
        counts = self._seg_counts[-1]
        total = int(counts.sum())
        return {"total": total, "counts": {n: int(c) for n, c in zip(self.actors.names, counts)},
                "fractions": {n: (float(c) / total if total else 0.0) for n, c in zip(self.actors.names, counts)}}

    # ------------------------------------------------------------------ shards
    def _folder_changed(self) -> bool:
        try:
            st = os.stat(self._folder)
        except FileNotFoundError:
            return False
        if (st.st_mtime_ns, st.st_ino) != self._listed:
            return True
        # Same mtime, but a shard was still being made, or the folder changed so recently that a
        # shard linked in within the same coarse mtime tick would not show: look again, at most
        # every 0.2 s.
        return self._recheck and time.monotonic() >= self._retry_at

    def _discover(self) -> None:
        st = os.stat(self._folder)
        complete = True
        for name in self.run.shards():
            if name in self.shard_names:
                continue
            try:
                store = self.run.open_shard(name, "r")
            except StoreLockedError:
                complete = False  # its writer is still making it: look again at the next refresh
                continue
            if len(store) == 0:
                # A reader opened before the writer's first commit record may never see its commits
                # (it has no record to watch): take the shard once it has committed rows.
                store.close()
                complete = False
                continue
            self.shard_names.append(name)
            self._stores.append(store)
            self._seen.append(0)
        self._listed = (st.st_mtime_ns, st.st_ino)
        # Racy-git rule: an mtime under a second old proves nothing about the next tick.
        self._recheck = not complete or time.time_ns() - st.st_mtime_ns < 1_000_000_000
        self._retry_at = time.monotonic() + 0.2

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for s in self._stores:
            s.close()

    def __enter__(self) -> "RunSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RunSource {self.path!r}: {len(self._stores)} shards, {self._n} rows>"

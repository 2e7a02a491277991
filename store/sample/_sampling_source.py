"""What a ``Sampler`` needs from the rows it samples: the ``SampleSource`` protocol.

A ``ReplayStore`` (reader or writer) is a source. So is anything else that offers the same few
members, for example a run of several stores read end to end as one row space (issue 11): the
sampler then gives it uniform, stratified and prioritized sampling (one sum tree over the whole
run) with no change. The sampler uses nothing else of a source.

``Window`` follows a source's committed rows for the sampler: one cheap check per batch, and
when rows were committed, the range that changed.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..files._fileio import layer
from ..format import _record
from ..format._actors import Actors
from ..format._schema import Schema
from ..errors import ClosedStoreError


@runtime_checkable
class SampleSource(Protocol):
    """Committed rows ``[0, len(source))`` that a ``Sampler`` draws from.

    Required members (a ``ReplayStore`` has them all):

    - ``len(source)``: rows committed (visible); they never change once committed.
    - ``refresh()``: pick up rows committed elsewhere; ``has_new_commits()``: whether that would
      find any (called before every batch, so it must be cheap).
    - ``commit_seq``: an int that changes whenever the committed rows change.
    - ``window`` (int) and ``window_start()``: the sampled rows are ``[window_start(), len)``.
    - ``actor_counts(start)``: rows per actor code in ``[start, len)`` (numpy int64).
    - ``actors`` (``Actors``: ``names``, ``code(name)``) and ``schema`` (``Schema``).
    - ``gather(rows, columns)``: the given committed rows (int64, any order, repeats) of
      ``columns`` as a dict of new numpy arrays, one row per id, in order.
    - ``path`` (for messages and the priority file), ``closed``.

    Optional members, used when present:

    - ``uuid`` (str): the source's identity; with it a prioritized sampler keeps its priorities
      in the file ``<path>.priorities`` (saved when ``mode == "a"``, loaded in any mode).
    - ``mode``: ``"a"`` for the one handle that writes (see above); anything else reads.
    - ``shard_of(rows)``: an integer id per row (which store of a run holds it); batches then
      carry it as ``"shard"``.
    - ``gather_grouped(rows, columns)``: ``(order, batch)`` with ``batch`` holding
      ``rows[order]``: the rows in whatever order the source reads fastest (a run: shard by
      shard). A batch's order carries no meaning, so the sampler then reorders only its small
      arrays (row, actor, weight) instead of every column.
    - ``read(columns, start, stop)``: rows ``[start, stop)`` as ``gather`` gives them; a
      stratified sampler reads new rows' actor codes with it (else with ``gather``).
    """

    path: str
    window: int
    schema: Schema
    actors: Actors

    def __len__(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    @property
    def commit_seq(self) -> int: ...

    def refresh(self) -> int: ...

    def has_new_commits(self) -> bool: ...

    def window_start(self) -> int: ...

    def actor_counts(self, start: int = 0) -> np.ndarray: ...

    def gather(self, rows, columns=None) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class Change:
    """What a sync found: the window is now ``[lo, n)``; ``fresh`` when nothing seen before holds
    (first sync, rows went away, or another source identity), else rows ``[old_n, n)`` are new."""

    lo: int
    n: int
    old_n: int
    fresh: bool


class RecordWatch:
    """Whether a store's commit record may have changed since the last look, for a reader's sampler.

    ``probe()`` is an lstat of the record's path (a new file: a new writer, or a record that
    outgrew its slots) and a pread of each slot's head (seq, length, crc: every commit rewrites
    one) on a descriptor kept open: ~2 us, against ~7 us for the reader's ``has_new_commits``
    (open, fstat, three preads, close), a twentieth of a 32-row batch of 28 KB images. It only
    filters: when the probe differs from the last one, the reader's own check and refresh run,
    so what a reader sees and when is unchanged. The probe is taken before that refresh, so a
    commit that lands during it changes the next probe.
    """

    def __init__(self, store_path: str):
        self.path = _record.record_path(store_path)
        self._fd = -1
        self._file = None  # (dev, ino, size) of the file the descriptor holds
        self._slot = 0  # the slot size its header gives

    def probe(self):
        """A value that changes whenever the record does, or None (no readable record: always check)."""
        try:
            st = os.lstat(self.path)
            if not stat.S_ISREG(st.st_mode):
                return None
            key = (st.st_dev, st.st_ino, st.st_size)
            if key != self._file and not self._reopen(key):
                return None
            head = os.pread(self._fd, _record._SLOT.size, _record._FIRST)
            return key, head, os.pread(self._fd, _record._SLOT.size, _record._FIRST + self._slot)
        except OSError:
            return None

    def _reopen(self, key) -> bool:
        self.close()
        fd = layer().open_read(self.path)
        self._fd = fd
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino, st.st_size) != key or not stat.S_ISREG(st.st_mode):
            return False  # replaced between the lstat and the open: look again next time
        head = os.pread(fd, _record._FIRST, 0)
        if len(head) < _record._FIRST or head[:8] != _record.MAGIC:
            return False
        self._slot = _record._HEADER.unpack_from(head)[2]
        self._file = key
        return True

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            layer().close(fd)
        self._file = None

    def __del__(self):  # a sampler dropped without close() does not keep the descriptor
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass


class Window:
    """The sampler's view of a source's committed rows, brought up to date before each batch."""

    def __init__(self, source: SampleSource, watch: RecordWatch | None = None):
        self.source = source
        self.lo = 0
        self.n = 0
        self._seq: int | None = None
        self._identity = getattr(source, "uuid", None)
        self._watch = watch
        self._probed = None

    def sync(self) -> Change | None:
        """Refresh the source if it has new commits; the change since the last sync, or None."""
        s = self.source
        if s.closed:
            raise ClosedStoreError(f"sample: the store {s.path} is closed")
        watch = self._watch
        if watch is None:
            if s.has_new_commits():
                s.refresh()
        else:
            probe = watch.probe()
            if probe is None or probe != self._probed:
                self._probed = probe
                if s.has_new_commits():
                    s.refresh()
        # A writer's own commits bump commit_seq with no refresh: one comparison covers both.
        # The identity goes with it: a file replaced by another store may have the same seq.
        seq, identity = s.commit_seq, getattr(s, "uuid", None)
        if seq == self._seq and identity == self._identity:
            return None
        n = len(s)
        fresh = self._seq is None or n < self.n or identity != self._identity
        change = Change(lo=int(s.window_start()), n=n, old_n=0 if fresh else self.n, fresh=fresh)
        self._seq, self._identity = seq, identity
        self.lo, self.n = change.lo, n
        return change

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()

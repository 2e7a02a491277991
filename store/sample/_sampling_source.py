"""What a ``Sampler`` needs from the rows it samples: the ``SampleSource`` protocol.

A ``ReplayStore`` (reader or writer) is a source. So is anything else that offers the same few
members, for example a run of several stores read end to end as one row space (issue 11): the
sampler then gives it uniform, stratified and prioritized sampling (one sum tree over the whole
run) with no change. The sampler uses nothing else of a source.

``Window`` follows a source's committed rows for the sampler: one cheap check per batch, and
when rows were committed, the range that changed.
"""

from __future__ import annotations

import mmap
import os
import stat
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..files._fileio import layer
from ..files._watch import GATE
from ..format import _record
from ..format._actors import Actors
from ..format._schema import Schema
from ..errors import ClosedStoreError

_SLOT_HEAD = _record._SLOT.size  # a slot's seq, payload length and crc


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
    outgrew its slots) and a look at each slot's head (seq, length, crc: every commit rewrites
    one) through a read-only mapping of the file: ~2 us and one system call, against ~7 us and
    six for the reader's ``has_new_commits`` (open, fstat, three preads, close), a twentieth of a
    32-row batch of 28 KB images; two preads instead of the mapping cost ~1.5 us more a batch.
    The mapping is read only while the lstat just before finds the file as long as when it was
    mapped (a file that shrank under a mapping is SIGBUS when touched: the segments are checked
    the same way). It only filters: when the probe differs from the last one, the reader's own
    check and refresh run, so what a reader sees and when is unchanged. The probe is taken
    before that refresh, so a commit that lands during it changes the next probe.
    """

    def __init__(self, store_path: str):
        self.path = _record.record_path(store_path)
        self._mm = None
        self._file = None  # (dev, ino, size) of the file mapped
        self._heads = (0, 0)  # where the two slots' heads lie in it
        self._wd = None  # the mapped file's watch (files/_watch.GATE)
        self._seen = None  # the watch's stamp before the last full probe, and what it returned
        self._last = None

    def probe(self):
        """A value that changes whenever the record does, or None (no readable record: always check).
        It polls ``GATE`` (files/_watch.py): while the kernel reported no write, truncation, rename
        over or attribute change of the mapped record since the last full probe, that probe's
        value stands (0.6 us with the poll, against 2.2)."""
        GATE.poll()
        stamp = GATE.stamps.get(self._wd)  # taken before the look: a commit during it shows next time
        if stamp is not None and stamp == self._seen:
            return self._last
        if stamp is None and self._wd is not None:  # its watch was lost (a forked child): map and watch again
            self._file = None
        try:
            st = os.lstat(self.path)
        except OSError:
            return None
        key = (st.st_dev, st.st_ino, st.st_size)
        if key != self._file:
            if not self._remap(key, st):
                return None
            stamp = None  # a new watch: the next probe looks again, with its stamp
        mm, (a, b) = self._mm, self._heads
        self._seen, self._last = stamp, (key, mm[a:a + _SLOT_HEAD], mm[b:b + _SLOT_HEAD])
        return self._last

    def _remap(self, key, st) -> bool:
        self.close()
        if not stat.S_ISREG(st.st_mode) or st.st_size < _record._FIRST:
            return False
        try:
            fd = layer().open_read(self.path)
        except OSError:
            return False
        try:
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino, now.st_size) != key or not stat.S_ISREG(now.st_mode):
                return False  # replaced between the lstat and the open: look again next time
            head = os.pread(fd, _record._FIRST, 0)
            if len(head) < _record._FIRST or head[:8] != _record.MAGIC:
                return False
            second = _record._FIRST + _record._HEADER.unpack_from(head)[2]
            if second + _SLOT_HEAD > now.st_size:  # a header that points outside the file: not mapped
                return False
            self._mm = mmap.mmap(fd, second + _SLOT_HEAD, access=mmap.ACCESS_READ)
            self._wd = GATE.watch(fd)
        except (OSError, ValueError):
            return False
        finally:
            layer().close(fd)
        self._heads = (_record._FIRST, second)
        self._file = key
        return True

    def close(self) -> None:
        self._file = None
        self._mm = None  # unmapped once no slice of it is referenced (slices are bytes: none)
        GATE.unwatch(self._wd)
        self._wd = self._seen = self._last = None


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
            probe = watch.probe()  # polls files/_watch.GATE for the whole batch (the segments' checks too)
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

"""What a ``Sampler`` needs from the rows it samples: the ``SampleSource`` protocol.

A ``ReplayStore`` (reader or writer) is a source. So is anything else that offers the same few
members, for example a run of several stores read end to end as one row space (issue 11): the
sampler then gives it uniform, stratified and prioritized sampling (one sum tree over the whole
run) with no change. The sampler uses nothing else of a source.

``Window`` follows a source's committed rows for the sampler: one cheap check per batch, and
when rows were committed, the range that changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

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


class Window:
    """The sampler's view of a source's committed rows, brought up to date before each batch."""

    def __init__(self, source: SampleSource):
        self.source = source
        self.lo = 0
        self.n = 0
        self._seq: int | None = None
        self._identity = getattr(source, "uuid", None)

    def sync(self) -> Change | None:
        """Refresh the source if it has new commits; the change since the last sync, or None."""
        s = self.source
        if s.closed:
            raise ClosedStoreError(f"sample: the store {s.path} is closed")
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

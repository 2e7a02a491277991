"""Sampling strategies: which rows of the window a batch takes, one small class per distribution.

A ``Sampler`` owns a source, a random generator and the gather; its strategy only picks row
ids (and, where it knows them, their actor codes and importance weights). The protocol is
``SamplingStrategy``: ``bind`` once to a source, ``update`` when committed rows change, ``draw``
per batch. ``Uniform`` and ``Stratified`` live here; ``Prioritized`` in ``_sampling_prioritized``.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar, NamedTuple

import numpy as np

from ._sampler_index import ActorRows, largest_remainder
from ._sampling_source import Change, SampleSource
from ..format._schema import ACTOR
from ..errors import EmptyWindowError, SamplerError

_FRACTION_TOLERANCE = 1e-6
_AHEAD_ROWS = 4096  # Uniform draws up to this many rows ahead (see Uniform.draw)


class Draw(NamedTuple):
    """One batch's row ids (int64); actor codes (uint8) and weights (float32) where the strategy has them."""

    rows: np.ndarray
    actor: np.ndarray | None = None
    weight: np.ndarray | None = None


class SamplingStrategy(ABC):
    """How a ``Sampler`` picks rows from the window ``[lo, n)`` of its source.

    ``bind(source, batch_size)`` is called once, by the one sampler that uses the strategy, and
    checks the strategy's settings against the source; ``update(change)`` after every sync that
    found newly committed rows (``change.fresh``: forget everything seen before); ``draw(rng)``
    per batch; ``close()`` when the sampler closes.
    """

    name: ClassVar[str]

    def __init__(self) -> None:
        self.source: SampleSource | None = None
        self.batch_size = 0

    def bind(self, source: SampleSource, batch_size: int) -> None:
        if self.source is not None:
            raise SamplerError(f"this {type(self).__name__} strategy already serves a sampler over "
                               f"{self.source.path}; make a new strategy object for each Sampler")
        self.source, self.batch_size = source, int(batch_size)

    def update(self, change: Change) -> None:
        """Newly committed rows ``[change.old_n, change.n)``; the window is ``[change.lo, change.n)``."""

    @abstractmethod
    def draw(self, rng: np.random.Generator, lo: int, n: int) -> Draw:
        """Row ids for one batch from the non-empty window ``[lo, n)``."""

    def close(self) -> None:
        """Release what the strategy holds (files); called once by the sampler."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Uniform(SamplingStrategy):
    """Every row of the window alike, drawn with replacement; a batch comes in ascending row order."""

    name = "uniform"

    def __init__(self) -> None:
        super().__init__()
        self._ahead: np.ndarray | None = None  # batches drawn ahead for the window _range, rows sorted per batch
        self._range = (0, 0)
        self._at = 0
        self._batches = 1  # batches drawn per call of the generator: doubles while the window holds still

    def draw(self, rng, lo, n):
        # Drawn ahead, up to 4096 rows at a time, for as long as the window stays put: a call of
        # rng.integers costs ~4 us whatever its size, a twentieth of a 32-row image batch. Each
        # batch is still independent and uniform over the window it is drawn for; a window that
        # moved (a commit) drops what was drawn ahead, and the next call draws one batch again.
        b = self.batch_size
        ahead = self._ahead
        if ahead is None or self._range != (lo, n) or self._at >= len(ahead):
            if ahead is not None and self._range == (lo, n):
                self._batches = min(2 * self._batches, max(1, _AHEAD_ROWS // b))
            else:
                self._batches = 1
            ahead = self._ahead = rng.integers(lo, n, (self._batches, b), dtype=np.int64)
            # Ascending: the store then gathers each segment's rows in one pass straight into the
            # batch (no scatter), and walks memory forward (measured at 1M rows: BENCHMARKS.md, Sampler).
            ahead.sort(axis=1)
            self._range, self._at = (lo, n), 0
        rows = ahead[self._at].copy()
        self._at += 1
        return Draw(rows)


class Stratified(SamplingStrategy):
    """Exact per-batch counts per actor from ``actor_fractions`` (largest-remainder rounding),
    uniform with replacement within each actor's rows of the window.

    Per actor, the ascending ids of its rows in the window are kept in ``index`` (an
    ``ActorRows``), extended with each commit's new rows only. Batches come grouped by actor code, ascending rows within each actor.
    """

    name = "stratified"

    def __init__(self, actor_fractions: Mapping[str, float]):
        super().__init__()
        self.actor_fractions = actor_fractions  # checked against the source's actors in bind
        self.index: ActorRows | None = None

    def bind(self, source, batch_size):
        fractions = self.actor_fractions
        if not isinstance(fractions, Mapping) or not fractions:
            raise SamplerError(
                "strategy='stratified' needs actor_fractions, a mapping of actor name to fraction such as "
                f"{{{', '.join(repr(n) + ': ...' for n in source.actors.names)}}}; got {fractions!r}"
            )
        self._fractions = _check_fractions(fractions, source.actors)
        super().bind(source, batch_size)
        self.counts = largest_remainder(self._fractions, self.batch_size)
        self._codes = np.repeat(np.arange(len(source.actors), dtype=np.uint8), self.counts)

    def update(self, change):
        if change.fresh or self.index is None:
            self.index = ActorRows(len(self.source.actors))
        start = max(change.old_n, change.lo)
        if change.n > start:
            # A contiguous read, where the source has one, is much cheaper than a gather of the
            # same rows (measured: 0.6 vs 22 ms for a first window of 1M rows).
            read = getattr(self.source, "read", None)
            codes = (read([ACTOR], start, change.n)[ACTOR] if read is not None else
                     self.source.gather(np.arange(start, change.n, dtype=np.int64), [ACTOR])[ACTOR])
            self.index.extend(codes, start)
        self.index.trim(change.lo)

    def draw(self, rng, lo, n):
        have = self.index.counts()
        actors = self.source.actors
        missing = [a for a in np.flatnonzero(self._fractions > 0).tolist() if have[a] == 0]
        if missing:
            comp = {nm: int(c) for nm, c in zip(actors.names, have)}
            raise EmptyWindowError(
                f"sample: actor(s) {[actors.name(a) for a in missing]} have a non-zero fraction in "
                f"actor_fractions but no rows in the window [{lo}, {n}) (rows per actor there: {comp}); "
                "append rows of those actors, or give them fraction 0"
            )
        rows = np.empty(self.batch_size, np.int64)
        at = 0
        for a, k in enumerate(self.counts.tolist()):
            if k:
                own = self.index.rows(a)
                pick = rng.integers(0, len(own), k)
                pick.sort()  # own is ascending: the actor's rows come ascending too (see Uniform.draw)
                np.take(own, pick, out=rows[at:at + k])
                at += k
        return Draw(rows, self._codes.copy())

    def __repr__(self) -> str:
        return f"Stratified({self.actor_fractions!r})"


def _check_fractions(fractions: Mapping, actors) -> np.ndarray:
    names = list(actors.names)
    out = np.zeros(len(names), np.float64)
    for name, frac in fractions.items():
        if not isinstance(name, str):
            raise SamplerError(f"actor_fractions key {name!r}: expected actor names (str) from {names}")
        if name not in names:
            raise SamplerError(f"actor_fractions names actor {name!r}, which is not in the store's vocabulary {names}")
        if isinstance(frac, bool) or not isinstance(frac, numbers.Real) or not (0 <= frac <= 1):
            raise SamplerError(f"actor_fractions[{name!r}]={frac!r}: expected a number in [0, 1]")
        out[actors.code(name)] = float(frac)
    total = float(out.sum())
    if abs(total - 1.0) > _FRACTION_TOLERANCE:
        raise SamplerError(f"actor_fractions {dict(fractions)} sum to {total:.6g}; they must sum to 1")
    return out / total


def check_number(name: str, value, what: str) -> float:
    """A finite number >= 0, or a SamplerError naming ``name`` and ``what`` it is for."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise SamplerError(f"{name}={value!r}: expected a finite number >= 0 ({what})")
    return float(value)

"""``Prioritized``: proportional prioritized replay (Schaul et al. 2016) over the window, one sum tree.

Row ``r`` of the window sits in leaf ``r % window`` of a ``SumTree`` whose leaves hold
``priority ** alpha``; the tree grows with the window until it holds ``window`` leaves, then
rows that enter reuse the leaves of rows that left. New rows get the largest priority seen so
far. With a source that has a ``uuid``, priorities persist in ``<path>.priorities``
(``_sampling_priorities``): saved by the sampler over the store's writable handle at most every
``save_seconds`` while priorities change and when the sampler closes, loaded by any sampler when
it first sees the store.
"""

from __future__ import annotations

import time
import weakref

import numpy as np

from ._sampling_priorities import MAX_PRIORITY, MIN_PRIORITY, PriorityFile, Saved, sidecar_path
from ._sampling_strategies import Draw, SamplingStrategy, check_number
from ._sumtree import SumTree
from ..errors import EmptyWindowError, SamplerError


class Prioritized(SamplingStrategy):
    """Rows drawn with probability ``p_i ** alpha / sum_k p_k ** alpha``, one draw in each of
    ``batch_size`` equal slices of the priority mass; ``weight`` is the importance weight
    ``(N * P(i)) ** -beta`` over its batch maximum. Batches come ordered by leaf (``row % window``).

    ``save_seconds``: the least time between two saves of changed priorities (0: at every
    ``update_priorities``); ``fsync``: sync each save to disk (for power loss; a kill -9 needs none).
    """

    name = "prioritized"

    def __init__(self, alpha: float = 0.6, beta: float = 0.4, *, save_seconds: float = 1.0, fsync: bool = False):
        super().__init__()
        self.alpha = check_number("alpha", alpha, "the priority exponent, 0 = uniform")
        self.beta = beta
        self.save_seconds = check_number("save_seconds", save_seconds, "seconds between saves of changed priorities")
        self.fsync = bool(fsync)
        self.tree: SumTree | None = None
        self.raw = np.zeros(0, np.float64)  # raw priorities by leaf, before alpha
        self.max_priority = 1.0
        self.lo = self.rows = 0  # the window [lo, rows) that the leaves hold
        self._file: PriorityFile | None = None
        self._loaded: Saved | None = None
        self._dirty = False
        self._saved_at = 0.0
        self._finalizer = None

    @property
    def beta(self) -> float:
        """Importance-sampling exponent; may be annealed between batches."""
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = check_number("beta", value, "the importance-sampling exponent, usually in [0, 1]")

    def bind(self, source, batch_size):
        super().bind(source, batch_size)  # refuses a second sampler before any file is opened
        self.window = int(source.window)
        uuid = getattr(source, "uuid", None)
        if uuid is not None:
            try:
                f = PriorityFile(sidecar_path(source.path), uuid, self.window,
                                 writable=getattr(source, "mode", None) == "a", fsync=self.fsync)
            except BaseException:
                self.source = None  # not bound after all: the object may serve another sampler
                raise
            try:
                self._loaded = f.load()
            except BaseException:
                f.close()
                self.source = None
                raise
            if f.writable:
                self._file = f
                self._finalizer = weakref.finalize(self, f.close)  # the lock goes with the strategy
            else:
                f.close()
        self._saved_at = time.monotonic()

    # ------------------------------------------------------------------ new commits
    def update(self, change):
        w, lo, n = self.window, change.lo, change.n
        need = max(1, min(w, n))
        if change.fresh or self.tree is None:
            self.tree = SumTree(need)
            self.raw = np.zeros(self.tree.capacity, np.float64)
            saved, self._loaded = self._loaded, None
            if saved is not None:
                self.max_priority = saved.max_priority or 1.0
            leaf_values = np.zeros(self.tree.capacity, np.float64)
            self._fill_new_rows(lo, n, leaf_values)
            if saved is not None:  # rows the save knew, still in the window, get their saved values
                known = np.arange(max(lo, saved.rows - w), min(n, saved.rows), dtype=np.int64) % w
                known = known[known < len(saved.raw)]
                self.raw[known] = saved.raw[known]
                leaf_values[known] = saved.raw[known] ** self.alpha
            self.tree.set_range(0, leaf_values)
        else:
            if need > self.tree.capacity:
                self.tree.grow(need)
                self.raw = np.concatenate([self.raw, np.zeros(self.tree.capacity - len(self.raw))])
            self._fill_new_rows(max(change.old_n, lo), n)
        self.lo, self.rows = lo, n

    def _fill_new_rows(self, start: int, stop: int, leaf_values: np.ndarray | None = None) -> None:
        """Rows ``[start, stop)`` get the max priority (their leaves wrap around the ring); their
        tree leaves too, or ``leaf_values`` while the tree is being built."""
        w = self.window
        start = max(start, stop - w)
        value = self.max_priority
        powered = value ** self.alpha
        while start < stop:
            leaf = start % w
            k = min(stop - start, w - leaf)
            self.raw[leaf:leaf + k] = value
            if leaf_values is None:
                self.tree.set_range(leaf, np.full(k, powered))
            else:
                leaf_values[leaf:leaf + k] = powered
            start += k

    # ------------------------------------------------------------------ drawing
    def draw(self, rng, lo, n):
        tree, b = self.tree, self.batch_size
        # One draw in each of b equal slices of the total (lower variance than b free draws).
        leaves, total = tree.find_slices(rng.random(b))
        if not total > 0:
            raise EmptyWindowError(f"sample: every row in the window [{lo}, {n}) has priority 0; "
                                   "give some rows a positive priority with update_priorities")
        values = tree.tree[tree.capacity + leaves]
        bad = values <= 0
        while bad.any():  # rounding at a slice edge can land on an empty leaf: draw those again
            cums = tree.top_cumsum()
            leaves[bad] = tree.find(rng.random(int(bad.sum())) * float(cums[-1]), cums)
            values = tree.tree[tree.capacity + leaves]
            bad = values <= 0
        # Leaf k holds row base + k, or base + w + k for the leaves below lo's (the ring wrapped).
        w = self.window
        rows = leaves + (lo - lo % w)
        rows[leaves < lo % w] += w
        # w_i = (N * P(i))^-beta / max_j w_j = (min_j v_j / v_i)^beta; N and the total cancel.
        # exp(beta * log) runs about 4x faster than numpy's float64 power here (measured).
        weight = np.log(values)
        np.subtract(weight.min(), weight, out=weight)
        weight *= self._beta
        return Draw(rows, None, np.exp(weight, out=weight).astype(np.float32))

    # ------------------------------------------------------------------ priorities
    def update_priorities(self, rows: np.ndarray, priorities: np.ndarray) -> None:
        """See ``Sampler.update_priorities``; ``rows`` and ``priorities`` are numpy arrays."""
        if rows.dtype.kind not in "iu" or rows.ndim != 1:
            raise SamplerError(f"update_priorities: rows must be a 1-D integer array (row ids), got {rows.dtype} "
                               f"with shape {rows.shape}")
        if priorities.dtype.kind not in "iuf" or priorities.shape != rows.shape:
            raise SamplerError(f"update_priorities: priorities must be numbers of the same shape as rows "
                               f"{rows.shape}, got {priorities.dtype} with shape {priorities.shape}")
        pr = priorities.astype(np.float64)
        # Refused, not clamped: the priority file holds float32, where 1e39 becomes inf (and then NaN
        # weights), and a priority that large means a diverged TD error the caller must see. Zero
        # (or one that float32 rounds to zero) is refused too: a row that can never be drawn is a
        # silent hole in the replay, and a caller who passes abs(td_error) forgot the epsilon.
        bad = ~(np.isfinite(pr) & (pr >= MIN_PRIORITY) & (pr <= MAX_PRIORITY))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SamplerError(f"update_priorities: priority {float(pr[i])!r} for row {int(rows[i])} is not positive, "
                               f"not finite or too large; priorities must be finite, in [{MIN_PRIORITY:.7g}, "
                               f"{MAX_PRIORITY:.7g}] (float32's smallest normal and largest: they are saved as "
                               "float32), e.g. abs(td_error) + 1e-6 (a TD error above that means training diverged)")
        if len(rows) == 0:
            return
        self.check_rows("update_priorities", rows)
        powered = self._powered(pr)
        if float(powered.max()) > np.finfo(np.float64).max / self.tree.capacity:  # the tree's sum would be inf
            raise SamplerError(f"update_priorities: priority {float(pr.max())!r} ** alpha={self.alpha} overflows the "
                               "sum tree; use a smaller alpha or scale the priorities down")
        leaves = rows.astype(np.int64) % self.window
        self.raw[leaves] = pr
        self.tree.set(leaves, powered)
        self.max_priority = max(self.max_priority, float(pr.max()))
        self._dirty = True
        if self._file is not None and time.monotonic() - self._saved_at >= self.save_seconds:
            self.save()

    def _powered(self, pr: np.ndarray) -> np.ndarray:
        """``pr ** alpha`` (0 ** 0 = 1), as exp(alpha * log): about 4x faster than numpy's power here."""
        if self.alpha == 0:
            return np.ones_like(pr)
        # log(0) = -inf, and exp(-inf) = 0 = 0 ** alpha; an overflow to inf is refused by the caller
        with np.errstate(divide="ignore", over="ignore"):
            out = np.log(pr)
            out *= self.alpha
            return np.exp(out, out=out)

    def priorities(self, rows: np.ndarray) -> np.ndarray:
        """Raw priorities (before ``alpha``) of window rows."""
        rows = self.check_rows("priorities", rows)
        return self.raw[rows.astype(np.int64) % self.window].copy()

    def check_rows(self, where: str, rows: np.ndarray) -> np.ndarray:
        if rows.dtype.kind not in "iu" or rows.ndim != 1:
            raise SamplerError(f"{where}: rows must be a 1-D integer array (row ids), got {rows.dtype} "
                               f"with shape {rows.shape}")
        lo, n = self.lo, self.rows
        outside = (rows < lo) | (rows >= n)
        if outside.any():
            r = int(rows[np.flatnonzero(outside)[0]])
            raise SamplerError(f"{where}: row {r} is outside the window [{lo}, {n}) the sampler "
                               "sees; pass rows from recent batches (batch['row'])")
        return rows

    def save(self) -> None:
        """Write the priorities to ``<store>.priorities`` now (a sampler over a writable store only)."""
        if self._file is None:
            raise SamplerError("save: priorities are saved by a prioritized sampler over the store's writable "
                               "handle (ReplayStore.open(path, 'a')); this one reads")
        self._file.save(self.raw, self.rows, self.max_priority)
        self._dirty = False
        self._saved_at = time.monotonic()

    def close(self):
        if self._file is not None:
            try:
                if self._dirty:
                    self.save()
            finally:
                self._finalizer()
                self._file = None

    def __repr__(self) -> str:
        return f"Prioritized(alpha={self.alpha}, beta={self._beta})"

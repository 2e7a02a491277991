"""``Sampler``: batches of committed rows from the replay window, gathered through the mapping.

Each ``sample()`` checks for new commits (one ``os.stat`` in a reader; one identity check in the
writer's own process), draws row ids by its strategy, and gathers every column from the
memory-mapped chunks with numpy into fresh arrays: no HDF5 call, and memory that follows the
window and the pages touched, not the store. With ``as_torch`` the arrays are wrapped by
``torch.from_numpy`` (no copy), so no torch op runs and torch's thread count does not matter.
"""

from __future__ import annotations

import math
import numbers
import os
import weakref
from collections.abc import Mapping, Sequence

import numpy as np

from . import _sampler_state
from ._sampler_gather import GatherPlan
from ._sampler_index import ActorRows, largest_remainder
from ._schema import ACTOR
from ._store import ReplayStore
from ._sumtree import SumTree
from .errors import ClosedStoreError, EmptyWindowError, SamplerError

STRATEGIES = ("uniform", "stratified", "prioritized")
ROW, WEIGHT = "row", "weight"
_FRACTION_TOLERANCE = 1e-6


class Sampler:
    """Batches of committed rows from the replay window ``[max(0, N - window), N)``.

    >>> import tempfile, os
    >>> from replaystore.store import Schema
    >>> p = os.path.join(tempfile.mkdtemp(), "run.h5")
    >>> with ReplayStore.create(p, Schema.transition((2,)), actors=("expert", "dqn")) as s:
    ...     _ = s.extend({"actor": ["expert"] * 4 + ["dqn"] * 12, "state": np.zeros((16, 2), "f4"),
    ...                   "next_state": np.zeros((16, 2), "f4"), "discrete_action": np.zeros(16, "i4"),
    ...                   "continuous_action": np.zeros((16, 0), "f4"), "reward": np.zeros(16, "f4"),
    ...                   "done": np.zeros(16, bool)})
    >>> with Sampler(p, 8, strategy="stratified", actor_fractions={"expert": 0.25, "dqn": 0.75},
    ...              seed=0, as_torch=False) as sampler:
    ...     batch = sampler.sample()
    ...     batch["state"].shape, sampler.last_actor_counts.tolist(), sorted(batch)[:3]
    ((8, 2), [2, 6], ['actor', 'continuous_action', 'discrete_action'])

    Strategies: ``"uniform"``; ``"stratified"``: exact per-batch counts per actor from
    ``actor_fractions`` (largest-remainder rounding), uniform within each actor's rows;
    ``"prioritized"``: proportional prioritized replay with ``alpha`` and ``beta``, fed by
    ``update_priorities`` (one draw in each of ``batch_size`` equal slices of the priority mass).
    Uniform and stratified draw with replacement.

    ``source`` is a ``ReplayStore`` (reader or writer) or a path (opened read-only and closed
    with the sampler). ``columns`` picks the transition columns to return (default: all).
    Iterating over a sampler yields batches without end.

    BEWARE: priorities are saved in the store only when the source is a writable store (at each
    of its commits; the last ones when it closes). On a read-only store they start from what the
    writer saved and live in memory only. One prioritized sampler per writable store at a time.

    BEWARE: the order of rows within a batch follows the strategy: random for uniform, grouped
    by actor code for stratified, by ring slot (``row % window``) for prioritized. Shuffle if a
    consumer splits batches and needs the parts alike.
    """

    def __init__(self, source, batch_size: int, *, strategy: str = "uniform",
                 actor_fractions: Mapping[str, float] | None = None, alpha: float = 0.6, beta: float = 0.4,
                 seed: int | None = None, as_torch: bool = False, columns: Sequence[str] | None = None):
        if strategy not in STRATEGIES:
            raise SamplerError(f"strategy={strategy!r} is unknown; expected one of {list(STRATEGIES)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
            raise SamplerError(f"batch_size={batch_size!r}: expected a positive int (rows per batch)")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
            raise SamplerError(f"seed={seed!r}: expected None or a non-negative int")
        if not isinstance(as_torch, bool):
            raise SamplerError(f"as_torch={as_torch!r}: expected True (torch tensors) or False (numpy arrays)")
        self.strategy = strategy
        self.batch_size = int(batch_size)
        if as_torch:
            try:
                import torch  # noqa: F401
            except ImportError:
                raise SamplerError("as_torch=True asks for torch tensors, but torch is not installed; install it "
                                   "with `pip install 'replaystore[agent]'`, or pass as_torch=False for numpy "
                                   "arrays") from None
        self.as_torch = as_torch
        self.alpha = _check_number("alpha", alpha, "the priority exponent, 0 = uniform")
        self.beta = beta
        if actor_fractions is not None and strategy != "stratified":
            raise SamplerError(
                f"actor_fractions given with strategy={strategy!r}; they apply to strategy='stratified' only"
            )
        self._store, self._owns = _open_source(source)
        self._closed = False
        try:
            self._init_store_views(columns, actor_fractions)
        except BaseException:
            if self._owns:
                self._store.close()
            raise
        self._rng = np.random.default_rng(seed)

    def _init_store_views(self, columns, actor_fractions) -> None:
        store = self._store
        if store.closed:
            raise ClosedStoreError(f"Sampler: the store {store.path} is closed; reopen it first")
        self.actors = store.actors
        self.window = int(store.window)
        schema = store.schema
        names = schema.names if columns is None else tuple([columns] if isinstance(columns, str) else columns)
        unknown = [c for c in names if c not in schema]
        if unknown or not names:
            raise SamplerError(f"columns={list(names)}: unknown or none; the store has {list(schema.names)}")
        clash = [n for n in (ROW, WEIGHT) if n in schema]
        if clash:
            raise SamplerError(f"the schema has column(s) {clash}, whose names the sampler's batch keys use")
        self._columns = [(n, schema[n]) for n in names]
        self._wants_actor = ACTOR in names
        n_actors = len(self.actors)
        self.last_actor_counts = np.zeros(n_actors, np.int64)
        self._n, self._lo, self._seq = 0, 0, None
        self._record = None
        self._index: ActorRows | None = None
        self._tree: SumTree | None = None
        self._state: _sampler_state.PriorityState | None = None
        if self.strategy == "stratified":
            self._fractions = self._check_fractions(actor_fractions)
            self._counts = largest_remainder(self._fractions, self.batch_size)
            self._codes = np.repeat(np.arange(n_actors, dtype=np.uint8), self._counts)
        elif self.strategy == "prioritized":
            self._attach_priorities()

    def _check_fractions(self, fractions) -> np.ndarray:
        if not isinstance(fractions, Mapping) or not fractions:
            raise SamplerError(
                f"strategy='stratified' needs actor_fractions, a mapping of actor name to fraction such as "
                f"{{{', '.join(repr(n) + ': ...' for n in self.actors.names)}}}; got {fractions!r}"
            )
        out = np.zeros(len(self.actors), np.float64)
        for name, frac in fractions.items():
            if not isinstance(name, str):
                raise SamplerError(
                    f"actor_fractions key {name!r}: expected actor names (str) from {list(self.actors.names)}"
                )
            if name not in self.actors.names:
                raise SamplerError(
                    f"actor_fractions names actor {name!r}, which is not in the store's vocabulary "
                    f"{list(self.actors.names)}"
                )
            if isinstance(frac, bool) or not isinstance(frac, numbers.Real) or not (0 <= frac <= 1):
                raise SamplerError(f"actor_fractions[{name!r}]={frac!r}: expected a number in [0, 1]")
            out[self.actors.code(name)] = float(frac)
        total = float(out.sum())
        if abs(total - 1.0) > _FRACTION_TOLERANCE:
            raise SamplerError(f"actor_fractions {dict(fractions)} sum to {total:.6g}; they must sum to 1")
        return out / total

    def _attach_priorities(self) -> None:
        store = self._store
        if store.mode == "a":
            hooks = store._commit_hooks
            old = _sampler_state.attached_state(hooks)
            if old is not None and old.attached:
                raise SamplerError(
                    f"a prioritized Sampler is already attached to {store.path}; close it "
                    "(sampler.close()) before making another on the same writable store"
                )
            if old is not None:  # a closed sampler's priorities, newer than the last commit's
                old._unhook()
                self._loaded = (old.raw[:min(old.window, old.rows)].copy(), old.meta())
            else:
                self._loaded = _sampler_state.load(store)
            self._state = _sampler_state.PriorityState(self.window, hooks)
            self._state.dirty = old is not None and old.dirty
            weakref.finalize(self, self._state.detach)
        else:
            self._loaded = _sampler_state.load(store)
            self._state = _sampler_state.PriorityState(self.window, None)

    # ------------------------------------------------------------------ settings
    @property
    def beta(self) -> float:
        """Importance-sampling exponent (prioritized); may be annealed between batches."""
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = _check_number("beta", value, "the importance-sampling exponent, usually in [0, 1]")

    @property
    def store(self) -> ReplayStore:
        return self._store

    @property
    def rows_in_window(self) -> tuple[int, int]:
        """``(first, stop)`` of the window as of the last batch."""
        return self._lo, self._n

    # ------------------------------------------------------------------ new commits
    def _sync(self) -> None:
        s = self._store
        if s.closed:
            raise ClosedStoreError(f"sample: the store {s.path} is closed")
        if s.has_new_commits():
            s.refresh()
        # The store swaps in a new commit record at each commit it makes or sees (a writer's own
        # commits included), so one identity check covers both processes.
        record = s._record
        if record is self._record:
            return
        self._record = record
        seq, n = s.commit_seq, len(s)
        self._plan = GatherPlan(s, self._columns) if n else None
        fresh = self._seq is None or n < self._n
        lo = max(0, n - self.window)
        if self.strategy == "stratified":
            self._sync_actor_rows(fresh, n, lo)
        elif self.strategy == "prioritized":
            self._sync_priorities(fresh, n, lo)
        self._n, self._lo, self._seq = n, lo, seq

    def _sync_actor_rows(self, fresh: bool, n: int, lo: int) -> None:
        if fresh:
            self._index = ActorRows(len(self.actors))
            start = lo
        else:
            start = max(self._n, lo)
        if n > start:
            self._index.extend(self._store.read([ACTOR], start, n)[ACTOR], start)
        self._index.trim(lo)

    def _sync_priorities(self, fresh: bool, n: int, lo: int) -> None:
        st, w = self._state, self.window
        need = max(1, min(w, n))
        if fresh or self._tree is None:
            self._tree = SumTree(need)
            st.raw = np.zeros(self._tree.capacity, np.float64)
            saved = self._loaded
            self._loaded = None
            if saved is not None:
                st.max_priority = max(float(saved[1]["max_priority"]), 0.0) or 1.0
            leaf_values = np.zeros(self._tree.capacity, np.float64)
            self._fill_new_rows(lo, n, leaf_values)
            if saved is not None:
                raw, meta = saved
                known = np.arange(max(lo, int(meta["rows"]) - w), min(n, int(meta["rows"])), dtype=np.int64) % w
                known = known[known < len(raw)]
                st.raw[known] = raw[known]
                leaf_values[known] = raw[known] ** self.alpha
            self._tree.set_range(0, leaf_values)
        else:
            if need > self._tree.capacity:
                self._tree.grow(need)
                st.raw = np.concatenate([st.raw, np.zeros(self._tree.capacity - len(st.raw))])
            self._fill_new_rows(max(self._n, lo), n)
        st.rows = n

    def _fill_new_rows(self, start: int, stop: int, leaf_values: np.ndarray | None = None) -> None:
        """Rows ``[start, stop)`` get the max priority seen so far (their leaves wrap around).

        Their tree leaves are set too, or written into ``leaf_values`` when the tree is being built.
        """
        st, w = self._state, self.window
        start = max(start, stop - w)
        value = st.max_priority
        powered = value ** self.alpha
        while start < stop:
            leaf = start % w
            k = min(stop - start, w - leaf)
            st.raw[leaf:leaf + k] = value
            if leaf_values is None:
                self._tree.set_range(leaf, np.full(k, powered))
            else:
                leaf_values[leaf:leaf + k] = powered
            start += k

    # ------------------------------------------------------------------ sampling
    def sample(self) -> dict:
        """One batch: every requested column, plus ``row`` (int64), ``weight`` (float32)."""
        self._sync()
        lo, n, b = self._lo, self._n, self.batch_size
        if n <= lo:
            raise EmptyWindowError(
                f"sample: the store {self._store.path} has no committed rows yet; append rows and "
                "commit() before sampling"
            )
        actor = None
        weight = None
        if self.strategy == "uniform":
            rows = self._rng.integers(lo, n, b, dtype=np.int64)
        elif self.strategy == "stratified":
            rows = self._stratified_rows()
            actor = self._codes.copy()
        else:
            rows, weight = self._prioritized_rows()
        batch = self._plan.gather(rows, skip=ACTOR if actor is not None else None)
        if actor is not None:
            if self._wants_actor:
                batch[ACTOR] = actor
            self.last_actor_counts = self._counts.copy()
        else:
            codes = batch[ACTOR] if self._wants_actor else self._store.gather(rows, [ACTOR])[ACTOR]
            self.last_actor_counts = np.bincount(codes, minlength=len(self.actors)).astype(np.int64, copy=False)
        batch[ROW] = rows
        batch[WEIGHT] = np.ones(b, np.float32) if weight is None else weight
        if self.as_torch:
            import torch

            return {k: torch.from_numpy(v) for k, v in batch.items()}
        return batch

    def _stratified_rows(self) -> np.ndarray:
        have = self._index.counts()
        missing = [a for a in np.flatnonzero(self._fractions > 0).tolist() if have[a] == 0]
        if missing:
            names = [self.actors.name(a) for a in missing]
            comp = {nm: int(c) for nm, c in zip(self.actors.names, have)}
            raise EmptyWindowError(
                f"sample: actor(s) {names} have a non-zero fraction in actor_fractions but no rows in the "
                f"window [{self._lo}, {self._n}) (rows per actor there: {comp}); append rows of "
                "those actors, or give them fraction 0"
            )
        rows = np.empty(self.batch_size, np.int64)
        at = 0
        for a, k in enumerate(self._counts.tolist()):
            if k:
                own = self._index.rows(a)
                np.take(own, self._rng.integers(0, len(own), k), out=rows[at:at + k])
                at += k
        return rows

    def _prioritized_rows(self) -> tuple[np.ndarray, np.ndarray]:
        tree, b = self._tree, self.batch_size
        cums = tree.top_cumsum()
        total = float(cums[-1])
        if not total > 0:
            raise EmptyWindowError(
                f"sample: every row in the window [{self._lo}, {self._n}) has priority 0; "
                "give some rows a positive priority with update_priorities"
            )
        # One draw in each of b equal slices of the total (lower variance than b free draws).
        prefix = (np.arange(b) + self._rng.random(b)) * (total / b)
        leaves = tree.find(prefix, cums)
        values = tree.tree[tree.capacity + leaves]
        bad = values <= 0
        while bad.any():  # rounding at a slice edge can land on an empty leaf: draw those again
            leaves[bad] = tree.find(self._rng.random(int(bad.sum())) * total, cums)
            values = tree.tree[tree.capacity + leaves]
            bad = values <= 0
        rows = self._lo + (leaves - self._lo) % self.window
        # w_i = (N * P(i))^-beta / max_j w_j; N and the total cancel in the ratio.
        weight = (values.min() / values) ** self._beta
        return rows, weight.astype(np.float32)

    def update_priorities(self, rows, priorities) -> None:
        """Set the priorities of ``rows`` (from the last batches; in the window) to ``priorities``.

        Values are raw priorities (e.g. ``abs(td_error) + eps``), raised to ``alpha`` here; they
        must be finite and >= 0. A row given twice keeps the last value. New rows get the largest
        priority seen so far.
        """
        if self.strategy != "prioritized":
            raise SamplerError(f"update_priorities: this sampler's strategy is {self.strategy!r}, not 'prioritized'")
        rows, pr = _as_numpy(rows), _as_numpy(priorities)
        if rows.dtype.kind not in "iu" or rows.ndim != 1:
            raise SamplerError(f"update_priorities: rows must be a 1-D integer array (row ids), got {rows.dtype} "
                               f"with shape {rows.shape}")
        if pr.dtype.kind not in "iuf" or pr.shape != rows.shape:
            raise SamplerError(f"update_priorities: priorities must be numbers of the same shape as rows "
                               f"{rows.shape}, got {pr.dtype} with shape {pr.shape}")
        pr = pr.astype(np.float64)
        bad = ~np.isfinite(pr) | (pr < 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SamplerError(f"update_priorities: priority {float(pr[i])!r} for row {int(rows[i])} is negative or not "
                               "finite; priorities must be finite and >= 0 (e.g. abs(td_error) + 1e-6)")
        if len(rows) == 0:
            return
        self._check_rows("update_priorities", rows)
        leaves = rows.astype(np.int64) % self.window
        st = self._state
        st.raw[leaves] = pr
        self._tree.set(leaves, pr ** self.alpha)
        st.max_priority = max(st.max_priority, float(pr.max()))
        st.dirty = True

    def priorities(self, rows) -> np.ndarray:
        """The raw priorities (before ``alpha``) of ``rows`` in the window (prioritized only)."""
        if self.strategy != "prioritized":
            raise SamplerError(f"priorities: this sampler's strategy is {self.strategy!r}, not 'prioritized'")
        self._sync()
        rows = self._check_rows("priorities", _as_numpy(rows))
        return self._state.raw[rows.astype(np.int64) % self.window].copy()

    def _check_rows(self, where: str, rows: np.ndarray) -> np.ndarray:
        if rows.dtype.kind not in "iu" or rows.ndim != 1:
            raise SamplerError(f"{where}: rows must be a 1-D integer array (row ids), got {rows.dtype} "
                               f"with shape {rows.shape}")
        lo, n = self._lo, self._n
        outside = (rows < lo) | (rows >= n)
        if outside.any():
            r = int(rows[np.flatnonzero(outside)[0]])
            raise SamplerError(f"{where}: row {r} is outside the window [{lo}, {n}) the sampler "
                               "sees; pass rows from recent batches (batch['row'])")
        return rows

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        return self.sample()

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Release the store if the sampler opened it; priorities still go out at the next commit."""
        if self._closed:
            return
        self._closed = True
        if self._state is not None:
            self._state.detach()
        if self._owns:
            self._store.close()

    def __enter__(self) -> "Sampler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<Sampler {self.strategy} batch={self.batch_size} over {self._store.path!r} "
                f"window [{self._lo}, {self._n})>")


def _open_source(source) -> tuple[ReplayStore, bool]:
    if isinstance(source, ReplayStore):
        return source, False
    if isinstance(source, (str, os.PathLike)):
        return ReplayStore.open(source, "r"), True
    raise TypeError(f"Sampler: source must be a ReplayStore or a path to one, got {type(source).__name__}")


def _check_number(name: str, value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise SamplerError(f"{name}={value!r}: expected a finite number >= 0 ({what})")
    return float(value)


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)

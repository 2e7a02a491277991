"""``Sampler``: batches of committed rows from the replay window of a source (usually a store).

Each ``sample()`` checks the source for new commits (in a reader of a format-2 store an lstat
and two preads of the commit record, ``RecordWatch``; one integer comparison in the writer's own
process), lets its strategy (``_sampling_strategies``) pick row ids, and gathers every column
through the store's table (mapped segments, no HDF5 call; a batch over several segments takes
each column from one address range, ``SegmentSpans``). With ``as_torch`` the arrays are wrapped by ``torch.from_numpy``
(no copy), so no torch op runs and torch's thread count does not matter.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.random  # noqa: F401  here, not at the first Sampler: numpy imports it lazily (10 ms, first batch)

from ._sampling_prioritized import Prioritized
from ._sampling_source import RecordWatch, SampleSource, Window
from ._sampling_strategies import SamplingStrategy, Stratified, Uniform
from ..format._format import TRANSITIONS
from ..format._schema import ACTOR
from ..read._reader import StoreReader
from ..read._store import ReplayStore
from ..errors import ClosedStoreError, EmptyWindowError, SamplerError

STRATEGIES = {"uniform": Uniform, "stratified": Stratified, "prioritized": Prioritized}
ROW, WEIGHT, SHARD = "row", "weight", "shard"


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

    ``strategy``: ``"uniform"``; ``"stratified"``: exact per-batch counts per actor from
    ``actor_fractions`` (largest-remainder rounding), uniform within each actor's rows;
    ``"prioritized"``: proportional prioritized replay with ``alpha`` and ``beta``, fed by
    ``update_priorities``. Names are case-insensitive; a strategy object (``Uniform()``,
    ``Stratified(fractions)``, ``Prioritized(alpha, beta, save_seconds=...)``, or your own
    ``SamplingStrategy``) may be given instead, with its settings in it. Uniform and stratified
    draw with replacement.

    ``source`` is a ``ReplayStore`` (reader or writer), a path (opened read-only and closed with
    the sampler), a ``Run`` or run folder (its shards as one ``RunSource``) or any
    ``SampleSource``. ``columns`` picks the columns to return (default: all).
    A batch holds those columns plus ``row`` (int64), ``weight`` (float32; ones unless
    prioritized) and, for a source that has ``shard_of``, ``shard``. Iterating yields batches
    without end.

    BEWARE: prioritized replay keeps priorities in ``<store>.priorities`` beside the store: the
    sampler over the writable store saves them at most every ``save_seconds`` (1 s) while they
    change and when it closes (close it before the process ends to keep the last ones); a
    sampler over a reader loads them and keeps its changes in memory. One prioritized sampler
    per writable store at a time.

    BEWARE: the order of rows within a batch follows the strategy, and it is never random:
    ascending row ids for uniform, grouped by actor code (ascending within each) for stratified,
    by ring slot (``row % window``) for prioritized. Sorted batches let the store gather each
    segment's rows in one pass. Shuffle if a consumer splits batches and needs the parts alike.
    """

    def __init__(self, source, batch_size: int, *, strategy: str | SamplingStrategy = "uniform",
                 actor_fractions: Mapping[str, float] | None = None, alpha: float | None = None,
                 beta: float | None = None,
                 seed: int | None = None, as_torch: bool = False, columns: Sequence[str] | None = None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
            raise SamplerError(f"batch_size={batch_size!r}: expected a positive int (rows per batch)")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
            raise SamplerError(f"seed={seed!r}: expected None or a non-negative int")
        if not isinstance(as_torch, bool):
            raise SamplerError(f"as_torch={as_torch!r}: expected True (torch tensors) or False (numpy arrays)")
        self.strategy = _make_strategy(strategy, actor_fractions, alpha, beta)
        self.batch_size = int(batch_size)
        if as_torch:
            try:
                import torch  # noqa: F401
            except ImportError:
                raise SamplerError("as_torch=True asks for torch tensors, but torch is not installed; install it "
                                   "with `pip install 'replaystore[agent]'`, or pass as_torch=False for numpy "
                                   "arrays") from None
        self.as_torch = as_torch
        self._source, self._owns = _open_source(source)
        self._closed = False
        try:
            self._bind(columns)
        except BaseException:
            if self._owns:
                self._source.close()
            raise
        self._rng = np.random.default_rng(seed)

    def _bind(self, columns) -> None:
        source = self._source
        if source.closed:
            raise ClosedStoreError(f"Sampler: the store {source.path} is closed; reopen it first")
        self.actors = source.actors
        self.window = int(source.window)
        schema = source.schema
        names = schema.names if columns is None else tuple([columns] if isinstance(columns, str) else columns)
        unknown = [c for c in names if c not in schema]
        if unknown or not names:
            raise SamplerError(f"columns={list(names)}: unknown or none; the store has {list(schema.names)}")
        self._shard_of = getattr(source, "shard_of", None)
        self._gather_grouped = getattr(source, "gather_grouped", None)
        # The built-in strategies draw rows inside the synced window, so the batch goes straight to
        # the store's table, past gather()'s checks of the row ids (15-30 us a batch: a tenth of a
        # 32-row batch of 28 KB images). Any other strategy's rows are checked.
        self._direct = isinstance(source, ReplayStore) and type(self.strategy) in (Uniform, Stratified, Prioritized)
        self._sorted = type(self.strategy) is Uniform
        clash = [n for n in (ROW, WEIGHT) + ((SHARD,) if self._shard_of else ()) if n in schema]
        if clash:
            raise SamplerError(f"the schema has column(s) {clash}, whose names the sampler's batch keys use")
        self._columns = list(names)
        self._wants_actor = ACTOR in names
        self._n_actors = len(self.actors)
        self.last_actor_counts = np.zeros(self._n_actors, np.int64)
        # a reader of a format-2 store: its record is watched cheaply (RecordWatch) before the
        # reader's own check; a writer's own commits and other sources are asked directly
        watch = (RecordWatch(source.path) if isinstance(source, StoreReader) and source.format_version == 2 else None)
        self._window = Window(source, watch)
        self._polled = watch is not None  # its sync polls files/_watch.GATE once a batch for the gather too
        self.strategy.bind(source, self.batch_size)

    # ------------------------------------------------------------------ settings
    @property
    def beta(self) -> float:
        """Importance-sampling exponent (prioritized); may be annealed between batches."""
        return self._prioritized("beta").beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._prioritized("beta").beta = value

    @property
    def store(self) -> SampleSource:
        """The source the sampler draws from (a ``ReplayStore`` unless another source was given)."""
        return self._source

    @property
    def rows_in_window(self) -> tuple[int, int]:
        """``(first, stop)`` of the window as of the last batch."""
        return self._window.lo, self._window.n

    # ------------------------------------------------------------------ sampling
    def _sync(self) -> None:
        change = self._window.sync()
        if change is not None:
            self.strategy.update(change)

    def sample(self) -> dict:
        """One batch: every requested column, plus ``row`` (int64), ``weight`` (float32), maybe ``shard``."""
        self._sync()
        lo, n = self._window.lo, self._window.n
        if n <= lo:
            raise EmptyWindowError(f"sample: the store {self._source.path} has no committed rows yet; append rows "
                                   "and commit() before sampling")
        draw = self.strategy.draw(self._rng, lo, n)
        rows = draw.rows
        if draw.actor is not None:  # the strategy knows them: no need to read them
            cols = [c for c in self._columns if c != ACTOR]
        else:
            cols = self._columns if self._wants_actor else self._columns + [ACTOR]
        actor, weight = draw.actor, draw.weight
        if self._gather_grouped is not None:
            order, batch = self._gather_grouped(rows, cols)
            if order is not None:  # the batch came in the source's order: its small arrays follow
                rows = rows[order]
                actor = None if actor is None else actor[order]
                weight = None if weight is None else weight[order]
        elif self._direct:
            if self._source.closed:
                raise ClosedStoreError(f"sample: the store {self._source.path} is closed")
            # a uniform batch is sorted: its first and last rows bound it (saves finding its segments)
            bounds = (int(rows[0]), int(rows[-1])) if self._sorted else None
            batch = self._source._views[TRANSITIONS].gather(cols, rows, "sample", None, bounds, self._polled)
        else:
            batch = self._source.gather(rows, cols)
        if actor is not None:
            if self._wants_actor:
                batch[ACTOR] = actor
            counts = np.bincount(actor, minlength=self._n_actors)
        else:
            codes = batch[ACTOR] if self._wants_actor else batch.pop(ACTOR)
            counts = np.bincount(codes, minlength=self._n_actors)
        self.last_actor_counts = counts.astype(np.int64, copy=False)
        batch[ROW] = rows
        if weight is None:
            weight = np.empty(len(rows), np.float32)
            weight.fill(1.0)  # half the time of np.ones (its Python wrapper)
        batch[WEIGHT] = weight
        if self._shard_of is not None:
            batch[SHARD] = np.asarray(self._shard_of(rows))
        if self.as_torch:
            import torch

            return {k: torch.from_numpy(v) for k, v in batch.items()}
        return batch

    def update_priorities(self, rows, priorities) -> None:
        """Set the priorities of ``rows`` (from the last batches; in the window) to ``priorities``.

        Values are raw priorities (e.g. ``abs(td_error) + eps``), raised to ``alpha`` here; they
        must be finite and positive (zero is refused: a row that is never drawn is a silent hole in
        the replay; at least float32's smallest normal, 1.2e-38). A row given twice keeps the last value. New rows get the largest
        priority seen so far.
        """
        self._prioritized("update_priorities").update_priorities(_as_numpy(rows), _as_numpy(priorities))

    def priorities(self, rows) -> np.ndarray:
        """The raw priorities (before ``alpha``) of ``rows`` in the window (prioritized only)."""
        strategy = self._prioritized("priorities")
        self._sync()
        return strategy.priorities(_as_numpy(rows))

    def _prioritized(self, where: str) -> Prioritized:
        if not isinstance(self.strategy, Prioritized):
            raise SamplerError(f"{where}: this sampler's strategy is {self.strategy.name!r}, not 'prioritized'")
        return self.strategy

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        return self.sample()

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Save what the strategy keeps (priorities), and release the store if the sampler opened it."""
        if self._closed:
            return
        self._closed = True
        try:
            self.strategy.close()
        finally:
            self._window.close()
            if self._owns:
                self._source.close()

    def __enter__(self) -> "Sampler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<Sampler {self.strategy.name} batch={self.batch_size} over {self._source.path!r} "
                f"window [{self._window.lo}, {self._window.n})>")


def _make_strategy(strategy, actor_fractions, alpha, beta) -> SamplingStrategy:
    if isinstance(strategy, SamplingStrategy):
        given = [k for k, v in (("actor_fractions", actor_fractions), ("alpha", alpha), ("beta", beta)) if v is not None]
        if given:
            raise SamplerError(f"{', '.join(given)} given with the strategy object {strategy!r}; set them in "
                               "the object instead (Stratified(actor_fractions), Prioritized(alpha, beta))")
        return strategy
    if not isinstance(strategy, str) or strategy.lower() not in STRATEGIES:
        raise SamplerError(f"strategy={strategy!r} is unknown; expected one of {list(STRATEGIES)} "
                           "(any case) or a SamplingStrategy object")
    name = strategy.lower()
    if actor_fractions is not None and name != "stratified":
        raise SamplerError(f"actor_fractions given with strategy={strategy!r}; they apply to strategy='stratified' only")
    given = [k for k, v in (("alpha", alpha), ("beta", beta)) if v is not None]
    if given and name != "prioritized":
        raise SamplerError(f"{' and '.join(given)} given with strategy={strategy!r}; they apply to "
                           "strategy='prioritized' only")
    if name == "stratified":
        return Stratified(actor_fractions)
    if name == "prioritized":
        return Prioritized(**{k: v for k, v in (("alpha", alpha), ("beta", beta)) if v is not None})
    return Uniform()


def _open_source(source) -> tuple[SampleSource, bool]:
    from ..run._run import Run  # a run of shards is sampled through its RunSource (store/run/_run_source.py)

    if isinstance(source, Run) or (isinstance(source, (str, os.PathLike)) and Run.is_run(source)):
        from ..run._run_source import RunSource

        return RunSource(source if isinstance(source, Run) else Run.open(source)), True
    if isinstance(source, (str, os.PathLike)):
        return ReplayStore.open(source, "r"), True
    if isinstance(source, (ReplayStore, SampleSource)):
        return source, False
    raise TypeError(f"Sampler: source must be a ReplayStore or a path to one, got {type(source).__name__}; "
                    "another kind of source needs the members listed by replaystore.store.SampleSource")


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)

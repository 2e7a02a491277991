"""``RunSampler``: batches over the committed rows of every shard of a run, as if concatenated.

The run's rows are the concatenation of each shard's replay window ``[lo_s, n_s)``, in the order
the sampler first saw the shards. A global position ``p`` lies in shard ``s`` when
``offset_s <= p < offset_s + size_s``, at row ``lo_s + p - offset_s`` there. Each ``sample()``
looks for new shards (one listing of the folder) and new commits (one stat per shard), so shards
that grow, appear, or lose their writer keep being sampled from their committed rows.

Per strategy, the distribution is the one a single store holding the concatenation would give:
uniform over all rows; stratified with exact per-actor counts, uniform within each actor's rows
of all shards; prioritized with ``p_i^alpha / sum_j p_j^alpha`` over all rows (one sum tree per
shard under one total, drawn in ``batch_size`` equal slices of the whole mass, as one tree is).

Only the store's public reading API is used (``refresh``, ``window_start``, ``read``, ``gather``),
so a shard is read the same way whatever its file format.

Written as a thin layer beside the single-store ``Sampler``: when the sampler gets a source
protocol, this becomes its run source (see the report of branch ``scale``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ._run import Run
from ._sampler_index import ActorRows, largest_remainder
from ._schema import ACTOR
from ._store import ReplayStore
from ._sumtree import SumTree
from .errors import EmptyWindowError, SamplerError, StoreLockedError

STRATEGIES = ("uniform", "stratified", "prioritized")
SHARD, ROW, WEIGHT = "shard", "row", "weight"


@dataclass
class _Shard:
    """One shard as the sampler sees it: its reader, its window and its per-strategy index."""
    name: str
    store: ReplayStore
    lo: int = 0
    n: int = 0
    index: ActorRows | None = None
    tree: SumTree | None = None
    raw: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def size(self) -> int:
        return self.n - self.lo


class RunSampler:
    """Batches from all shards of a ``Run`` (``Sampler(run, ...)`` makes one).

    Each batch has the requested columns plus ``shard`` (int32, an index into ``shard_names``),
    ``row`` (int64, the row within that shard) and ``weight`` (float32).
    ``update_priorities(rows, priorities, shards=batch["shard"])`` addresses (shard, row).

    BEWARE: rows come grouped by shard (and by actor for stratified); shuffle if a consumer
    splits batches. Priorities live in memory only: shards belong to their writer processes.
    """

    def __init__(self, run: Run, batch_size: int, *, strategy: str = "uniform",
                 actor_fractions: Mapping[str, float] | None = None, alpha: float = 0.6, beta: float = 0.4,
                 seed: int | None = None, as_torch: bool = False, columns: Sequence[str] | None = None):
        if not isinstance(run, Run):
            raise TypeError(f"RunSampler: run must be a store.Run, got {type(run).__name__}")
        if strategy not in STRATEGIES:
            raise SamplerError(f"strategy={strategy!r} is unknown; expected one of {list(STRATEGIES)}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
            raise SamplerError(f"batch_size={batch_size!r}: expected a positive int (rows per batch)")
        if actor_fractions is not None and strategy != "stratified":
            raise SamplerError(f"actor_fractions given with strategy={strategy!r}; they apply to 'stratified' only")
        self.run, self.strategy, self.batch_size = run, strategy, int(batch_size)
        self.actors, self.window, self.as_torch = run.actors, run.window, bool(as_torch)
        self.alpha = _check_number("alpha", alpha, "the priority exponent, 0 = uniform")
        self.beta = _check_number("beta", beta, "the importance-sampling exponent")
        names = run.schema.names if columns is None else tuple([columns] if isinstance(columns, str) else columns)
        unknown = [c for c in names if c not in run.schema]
        if unknown or not names:
            raise SamplerError(f"columns={list(names)}: unknown or none; the run has {list(run.schema.names)}")
        self._columns = list(names)
        self._gather_cols = [c for c in names if not (c == ACTOR and strategy == "stratified")]
        if strategy == "stratified":
            self._fractions = _check_fractions(actor_fractions, self.actors)
            self._counts = largest_remainder(self._fractions, self.batch_size)
        self._max_priority = 1.0
        self._rng = np.random.default_rng(seed)
        self._shards: list[_Shard] = []
        self._by_name: dict[str, int] = {}
        self._closed = False
        self.last_actor_counts = np.zeros(len(self.actors), np.int64)
        if as_torch:
            import torch  # noqa: F401  (fails early, here, when torch is missing)
        self._discover()

    @property
    def shard_names(self) -> list[str]:
        """Shard names by index (``batch["shard"]``); new shards are appended as they appear."""
        return [s.name for s in self._shards]

    def shard_store(self, index: int) -> ReplayStore:
        """The read handle of shard ``index`` (as in ``batch["shard"]``), e.g. to gather n-step rows."""
        return self._shards[int(index)].store

    def composition(self) -> dict:
        """Committed rows per actor name over all shards (their whole stores, not only the windows)."""
        counts = np.zeros(len(self.actors), np.int64)
        for sh in self._shards:
            counts += sh.store.actor_counts(0)
        total = int(counts.sum())
        return {"total": total, "counts": {n: int(c) for n, c in zip(self.actors.names, counts)},
                "fractions": {n: (float(c) / total if total else 0.0) for n, c in zip(self.actors.names, counts)}}

    def committed(self) -> int:
        """Rows in all shards' windows as of the last batch (call ``sample`` or ``refresh`` first)."""
        return int(sum(sh.size for sh in self._shards))

    def refresh(self) -> int:
        """Look for new shards and commits now; returns the rows in all windows."""
        self._sync()
        return self.committed()

    # ------------------------------------------------------------------ following the run
    def _discover(self) -> None:
        for name in self.run.shards():
            if name not in self._by_name:
                try:
                    store = self.run.open_shard(name, "r")
                except StoreLockedError:
                    continue  # its writer is still making it: it has no committed rows to give yet
                self._by_name[name] = len(self._shards)
                self._shards.append(_Shard(name, store))

    def _sync(self) -> None:
        if self._closed:
            raise SamplerError("sample: this sampler is closed")
        self._discover()
        for sh in self._shards:
            s = sh.store
            if s.has_new_commits():
                s.refresh()
            n = len(s)
            if n == sh.n:
                continue
            fresh = n < sh.n  # never happens to a sound shard (nothing committed is lost), but be safe
            lo = s.window_start()
            if self.strategy == "stratified":
                self._sync_actor_rows(sh, fresh, lo, n)
            elif self.strategy == "prioritized":
                self._sync_priorities(sh, fresh, lo, n)
            sh.lo, sh.n = lo, n

    def _sync_actor_rows(self, sh: _Shard, fresh: bool, lo: int, n: int) -> None:
        if fresh or sh.index is None:
            sh.index, start = ActorRows(len(self.actors)), lo
        else:
            start = max(sh.n, lo)
        if n > start:
            sh.index.extend(sh.store.read([ACTOR], start, n)[ACTOR], start)
        sh.index.trim(lo)

    def _sync_priorities(self, sh: _Shard, fresh: bool, lo: int, n: int) -> None:
        w = self.window
        need = max(1, min(w, n))
        if fresh or sh.tree is None:
            sh.tree, start = SumTree(need), lo
            sh.raw = np.zeros(sh.tree.capacity)
        else:
            start = max(sh.n, lo)
            if need > sh.tree.capacity:
                sh.tree.grow(need)
                sh.raw = np.concatenate([sh.raw, np.zeros(sh.tree.capacity - len(sh.raw))])
        start = max(start, n - w)
        value, powered = self._max_priority, self._max_priority ** self.alpha
        while start < n:  # new rows get the largest priority seen so far, in ring slots row % window
            leaf = start % w
            k = min(n - start, w - leaf)
            sh.raw[leaf:leaf + k] = value
            sh.tree.set_range(leaf, np.full(k, powered))
            start += k

    # ------------------------------------------------------------------ sampling
    def sample(self) -> dict:
        """One batch: the requested columns, plus ``shard``, ``row`` and ``weight``."""
        self._sync()
        weight = actor = None
        if self.strategy == "uniform":
            shard, rows = self._uniform()
        elif self.strategy == "stratified":
            shard, rows, actor = self._stratified()
        else:
            shard, rows, weight = self._prioritized()
        batch = self._gather(shard, rows)
        if actor is not None:
            if ACTOR in self._columns:
                batch[ACTOR] = actor
            self.last_actor_counts = self._counts.copy()
        else:
            codes = batch[ACTOR] if ACTOR in batch else batch.pop("_codes")
            self.last_actor_counts = np.bincount(codes, minlength=len(self.actors)).astype(np.int64)
        batch[SHARD], batch[ROW] = shard.astype(np.int32), rows
        batch[WEIGHT] = np.ones(self.batch_size, np.float32) if weight is None else weight
        if self.as_torch:
            import torch

            return {k: torch.from_numpy(v) for k, v in batch.items()}
        return batch

    def _sizes(self) -> np.ndarray:
        sizes = np.array([sh.size for sh in self._shards], np.int64)
        if not sizes.sum():
            raise EmptyWindowError(f"sample: no shard of run {self.run.path} has committed rows yet (shards: "
                                   f"{self.shard_names or 'none'}); workers must append and commit first")
        return sizes

    def _uniform(self):
        sizes = self._sizes()
        # Sorted draws: the same multiset of rows as unsorted ones, grouped by shard for one gather each
        pos = np.sort(self._rng.integers(0, int(sizes.sum()), self.batch_size))
        return self._locate(pos, sizes, np.array([sh.lo for sh in self._shards], np.int64))

    @staticmethod
    def _locate(pos: np.ndarray, sizes: np.ndarray, base: np.ndarray):
        """Global positions -> (shard index, row): row = base[shard] + pos - offset[shard]."""
        ends = np.cumsum(sizes)
        shard = np.searchsorted(ends, pos, side="right")
        return shard, pos - (ends - sizes)[shard] + base[shard]

    def _stratified(self):
        per = np.array([sh.index.counts() if sh.index is not None else np.zeros(len(self.actors), np.int64)
                        for sh in self._shards], np.int64).reshape(len(self._shards), len(self.actors))
        have = per.sum(axis=0)
        missing = [a for a in np.flatnonzero(self._fractions > 0).tolist() if have[a] == 0]
        if missing:
            comp = {nm: int(c) for nm, c in zip(self.actors.names, have)}
            raise EmptyWindowError(
                f"sample: actor(s) {[self.actors.name(a) for a in missing]} have a non-zero fraction in "
                f"actor_fractions but no rows in any shard's window (rows per actor: {comp}); append rows of "
                "those actors, or give them fraction 0")
        shards, rows, codes = [], [], []
        for a, k in enumerate(self._counts.tolist()):
            if not k:
                continue
            pos = np.sort(self._rng.integers(0, int(have[a]), k))
            ends = np.cumsum(per[:, a])
            sh = np.searchsorted(ends, pos, side="right")
            local = pos - (ends - per[:, a])[sh]
            r = np.empty(k, np.int64)
            cuts = np.flatnonzero(np.diff(sh)) + 1  # sorted draws: each shard's are one slice
            for x, z in zip(np.r_[0, cuts].tolist(), np.r_[cuts, k].tolist()):
                np.take(self._shards[int(sh[x])].index.rows(a), local[x:z], out=r[x:z])
            shards.append(sh)
            rows.append(r)
            codes.append(np.full(k, a, np.uint8))
        shard, rows, codes = np.concatenate(shards), np.concatenate(rows), np.concatenate(codes)
        order = np.argsort(shard, kind="stable")  # grouped by shard for one gather each
        return shard[order], rows[order], codes[order]

    def _prioritized(self):
        self._sizes()
        # each shard's total is the last entry of its tree's top cumsum, what its find() draws below
        cums = [sh.tree.top_cumsum() if sh.tree is not None else np.zeros(1) for sh in self._shards]
        totals = np.array([float(c[-1]) for c in cums])
        ends = np.cumsum(totals)
        total = float(ends[-1])
        if not total > 0:
            raise EmptyWindowError(f"sample: every row of run {self.run.path} has priority 0; give some rows a "
                                   "positive priority with update_priorities")
        b = self.batch_size
        prefix = (np.arange(b) + self._rng.random(b)) * (total / b)  # one draw per equal slice of the mass
        shard = np.minimum(np.searchsorted(ends, prefix, side="right"), len(totals) - 1)
        while True:  # a draw on an empty shard's edge (rounding) moves to a shard with mass
            bad = totals[shard] <= 0
            if not bad.any():
                break
            shard[bad] = np.minimum(np.searchsorted(ends, self._rng.random(int(bad.sum())) * total, side="right"),
                                    len(totals) - 1)
        # ascending prefixes land in ascending shards: each shard's draws are one slice
        # (a redrawn one out of order is put back in place by the stable sort)
        if len(shard) > 1 and (np.diff(shard) < 0).any():
            order = np.argsort(shard, kind="stable")
            shard, prefix = shard[order], prefix[order]
        rows = np.empty(b, np.int64)
        values = np.empty(b)
        cuts = np.flatnonzero(np.diff(shard)) + 1
        for a, z in zip(np.r_[0, cuts].tolist(), np.r_[cuts, b].tolist()):
            s = int(shard[a])
            sh, t = self._shards[s], self._shards[s].tree
            local = np.clip(prefix[a:z] - (ends[s] - totals[s]), 0.0, np.nextafter(totals[s], 0))
            leaves = t.find(local, cums[s])
            v = t.tree[t.capacity + leaves]
            bad = v <= 0
            while bad.any():
                leaves[bad] = t.find(self._rng.random(int(bad.sum())) * totals[s], cums[s])
                v = t.tree[t.capacity + leaves]
                bad = v <= 0
            rows[a:z] = sh.lo + (leaves - sh.lo) % self.window
            values[a:z] = v
        weight = (values.min() / values) ** self.beta  # (N P(i))^-beta / max_j: N and the total cancel
        return shard, rows, weight.astype(np.float32)

    def _gather(self, shard: np.ndarray, rows: np.ndarray) -> dict:
        want = self._gather_cols + ([ACTOR] if ACTOR not in self._gather_cols and self.strategy != "stratified" else [])
        cuts = np.flatnonzero(np.diff(shard)) + 1
        starts, stops = np.r_[0, cuts].tolist(), np.r_[cuts, len(shard)].tolist()
        if len(starts) == 1:  # one shard: its arrays are the batch
            got = self._shards[int(shard[0])].store.gather(rows, want)
        else:
            parts = [self._shards[int(shard[a])].store.gather(rows[a:z], want) for a, z in zip(starts, stops)]
            got = {c: np.concatenate([p[c] for p in parts]) for c in want}
        if ACTOR in got and ACTOR not in self._columns:
            got["_codes"] = got.pop(ACTOR)
        return got

    # ------------------------------------------------------------------ priorities
    def update_priorities(self, rows, priorities, shards=None) -> None:
        """Set the raw priorities of (``shards[i]``, ``rows[i]``) (from recent batches) to ``priorities``."""
        if self.strategy != "prioritized":
            raise SamplerError(f"update_priorities: this sampler's strategy is {self.strategy!r}, not 'prioritized'")
        if shards is None:
            raise SamplerError("update_priorities: a run's rows are (shard, row) pairs; pass "
                               "shards=batch['shard'] with rows=batch['row']")
        shard, rows, pr = _as_numpy(shards), _as_numpy(rows), _as_numpy(priorities)
        if rows.dtype.kind not in "iu" or shard.dtype.kind not in "iu" or rows.ndim != 1 or shard.shape != rows.shape:
            raise SamplerError(f"update_priorities: rows and shards must be 1-D integer arrays of one shape, got "
                               f"{rows.dtype}{rows.shape} and {shard.dtype}{shard.shape}")
        if pr.dtype.kind not in "iuf" or pr.shape != rows.shape:
            raise SamplerError(f"update_priorities: priorities must be numbers shaped like rows {rows.shape}, got "
                               f"{pr.dtype}{pr.shape}")
        pr = pr.astype(np.float64)
        bad = ~np.isfinite(pr) | (pr < 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SamplerError(f"update_priorities: priority {float(pr[i])!r} for row {int(rows[i])} is negative or "
                               "not finite; priorities must be finite and >= 0 (e.g. abs(td_error) + 1e-6)")
        self._check_rows("update_priorities", shard, rows)
        for s in np.unique(shard).tolist():
            m = shard == s
            sh = self._shards[s]
            leaves = rows[m].astype(np.int64) % self.window
            sh.raw[leaves] = pr[m]
            sh.tree.set(leaves, pr[m] ** self.alpha)
        if len(pr):
            self._max_priority = max(self._max_priority, float(pr.max()))

    def priorities(self, rows, shards) -> np.ndarray:
        """The raw priorities (before ``alpha``) of (``shards[i]``, ``rows[i]``)."""
        if self.strategy != "prioritized":
            raise SamplerError(f"priorities: this sampler's strategy is {self.strategy!r}, not 'prioritized'")
        self._sync()
        shard, rows = _as_numpy(shards), _as_numpy(rows)
        self._check_rows("priorities", shard, rows)
        return np.array([self._shards[s].raw[r % self.window] for s, r in zip(shard.tolist(), rows.tolist())])

    def _check_rows(self, where: str, shard: np.ndarray, rows: np.ndarray) -> None:
        if len(shard) and (int(shard.min()) < 0 or int(shard.max()) >= len(self._shards)):
            raise SamplerError(f"{where}: shard index {int(shard.max())} is unknown; this sampler has shards "
                               f"0..{len(self._shards) - 1} ({self.shard_names})")
        for s in np.unique(shard).tolist():
            sh, r = self._shards[s], rows[shard == s]
            out = (r < sh.lo) | (r >= sh.n)
            if out.any():
                raise SamplerError(f"{where}: row {int(r[out][0])} of shard {sh.name!r} is outside its window "
                                   f"[{sh.lo}, {sh.n}); pass rows from recent batches (batch['row'])")

    # ------------------------------------------------------------------ plumbing
    def __iter__(self):
        return self

    def __next__(self) -> dict:
        return self.sample()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for sh in self._shards:
            sh.store.close()

    def __enter__(self) -> "RunSampler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RunSampler {self.strategy} batch={self.batch_size} over {self.run.path!r}: {len(self._shards)} shards>"


def _check_number(name: str, value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise SamplerError(f"{name}={value!r}: expected a finite number >= 0 ({what})")
    return float(value)


def _check_fractions(fractions, actors) -> np.ndarray:
    if not isinstance(fractions, Mapping) or not fractions:
        raise SamplerError(f"strategy='stratified' needs actor_fractions, a mapping of actor name to fraction over "
                           f"{list(actors.names)}; got {fractions!r}")
    out = np.zeros(len(actors))
    for name, frac in fractions.items():
        if name not in actors.names:
            raise SamplerError(f"actor_fractions names actor {name!r}, not in the run's vocabulary {list(actors.names)}")
        if isinstance(frac, bool) or not isinstance(frac, numbers.Real) or not (0 <= frac <= 1):
            raise SamplerError(f"actor_fractions[{name!r}]={frac!r}: expected a number in [0, 1]")
        out[actors.code(name)] = float(frac)
    if abs(out.sum() - 1.0) > 1e-6:
        raise SamplerError(f"actor_fractions {dict(fractions)} sum to {out.sum():.6g}; they must sum to 1")
    return out / out.sum()


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)

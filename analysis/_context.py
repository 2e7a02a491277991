"""What every transition check reads: the store's scalar columns, the episode layout, and one
blocked pass over the state columns whose per-row results (chain breaks, copies, row hashes,
per-segment state moments) the checks share. Nothing here loops over rows in Python.

Memory stays bounded as stores grow: the row pass keeps 10 bytes a row (an 8-byte hash and two
flags), never the states themselves; and per segment, sums over each state element (per actor, of x
and x^2; over the segment's runs, five more): 18 + 23 MB for 84x84x4 stacks and two actors. A check that learns from states gathers the rows it samples
(``Context.heads``); one that needs every row's state reads them block by block again
(``Context.head_blocks``). The pages of the mapped segments a block touched are dropped from this
process after it (``release_pages``): clean file pages, but they count in RSS."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ._envfacts import EnvFacts
from ._stats import CHUNK_ROWS  # rows per chunk of the per-segment counts: their temporaries stay this size

SEGMENTS = 20       # consecutive row segments for the over-time comparisons
MIN_SEGMENT = 100   # rows: fewer per segment give too few rows per actor to compare
BLOCK_BYTES = 8 << 20  # per state column and block: below glibc's mmap threshold, so blocks reuse warm pages
BLOCK_ROWS = 1 << 17  # rows per block at most
HEAD = 8            # state elements kept in memory (the CartPole policy reads 4)
HASHED = 4          # elements of state and of next_state hashed (candidates are then compared whole)
# Scalar columns mixed into the row hash. The actor tags are part of a row appended twice: hashing them
# keeps the natural repeats of other actors from becoming candidates at all. Step numbers are not: the
# store numbers a re-appended batch afresh.
KEYED = ("reward", "discrete_action", "actor")
# rows gathered at a time: rows spread over a store fault in up to 64 KiB of mapped pages each (the
# kernel's fault-around), 300 MiB of RSS for 8192 rows of a 10M-row store, dropped after each part
GATHER_ROWS = 512
MOMENT_ROWS = 100_000  # state moments from every k-th row, k = rows // MOMENT_ROWS (a 10x test needs no more)
MOMENT_BYTES = 4 << 20  # float64 powers of the sampled states computed at a time
EPISODES_LISTED = 20


class Skip(Exception):
    """A check cannot run on this store; the message says why (it goes into the report). ``found``:
    findings that say so to the reader too (e.g. NO_TELEMETRY)."""

    def __init__(self, reason: str, found=()):
        super().__init__(reason)
        self.found = list(found)


@dataclass
class Layout:
    """Episode runs: maximal blocks of consecutive rows with one episode id."""

    start: np.ndarray      # first row of each run
    stop: np.ndarray       # one past its last row
    ids: np.ndarray        # episode id of each run
    pair_ok: np.ndarray    # (n-1,) rows t, t+1 are consecutive steps of one episode (same id, no done at t)
    interleaved: bool      # some episode id has several runs without a done between them


@dataclass
class RowPass:
    chain_bad: np.ndarray  # (n-1,) next_state[t] != state[t+1]
    copy: np.ndarray       # (n,) next_state[t] == state[t]
    hash: np.ndarray       # (n,) uint64 hash of the row's content: the first HASHED elements of both states,
    #                        mixed with the KEYED scalar columns the store has (``keyed`` names them)
    seg_count: np.ndarray  # (segments * A,) rows per segment and actor
    seg_sum: np.ndarray    # (segments * A, D) sum of state elements
    seg_sumsq: np.ndarray  # (segments * A, D) sum of squares
    # Runs: maximal blocks of consecutive sampled rows of one segment, actor and episode, whose sums of
    # x and x^2 are T1 and T2 and length m. Per segment, over its runs (every actor's):
    run_sums: np.ndarray   # (segments, 5, D) sums of T1^2, T2^2, T1*T2, m*T1, m*T2
    run_m2: np.ndarray     # (segments,) sum of m^2
    run_count: np.ndarray  # (segments * A,) runs per segment and actor
    #                        STATE_DISTRIBUTION's test draws an actor's runs at random (_behaviour._tests)
    width: int
    amin: np.ndarray = None  # (A, D) smallest finite value of each element per actor (sampled rows)
    amax: np.ndarray = None  # (A, D) largest
    keyed: tuple = ()        # the scalar columns mixed into ``hash``


class Context:
    """One audit's inputs. ``cols`` holds the scalar columns read in full; the state columns are
    read block by block once, by ``rows``, when a check first asks for them."""

    def __init__(self, store, names, meta: dict, expected: dict, cols: dict, env: EnvFacts | None):
        self.store = store
        self.names = tuple(names)
        self.A = len(self.names)
        self.meta = meta
        self.expected = expected
        self.cols = cols
        self.env = env
        self.columns = tuple(store.schema.names)
        self.n = len(cols["actor"])
        self.codes = cols["actor"]
        self.seg_rows = max(MIN_SEGMENT, math.ceil(self.n / SEGMENTS))
        self.nseg = max(1, math.ceil(self.n / self.seg_rows))
        # 2 bytes a row, not 8: every check indexes it, and at 10M rows an intp copy is 80 MB
        self.seg = np.repeat(np.arange(self.nseg, dtype=np.int16), self.seg_rows)[:self.n]
        self.sections: dict = {}  # the report sections the older checks read (composition, telemetry)
        self.policies: dict = {}    # actor -> callable, given by the caller (never imported from the store)
        self.trust_policies = False  # the caller allows importing policies the store's metadata names
        self.env_problems: list = []  # why some facts are missing (no gymnasium, a malformed env block)

    def has(self, *columns) -> bool:
        return all(c in self.columns for c in columns)

    def segment_bounds(self, k: int) -> tuple[int, int]:
        return k * self.seg_rows, min(self.n, (k + 1) * self.seg_rows)

    def actor_rows(self, code: int, first: int, last: int, mask=None) -> np.ndarray:
        """The rows of actor ``code`` (where ``mask`` is also set) from the start of segment ``first``
        to the end of segment ``last``: where a finding that spans those segments lies."""
        lo, hi = self.segment_bounds(int(first))[0], self.segment_bounds(int(last))[1]
        sel = self.codes[lo:hi] == code
        if mask is not None:
            sel &= mask[lo:hi]
        return np.flatnonzero(sel) + lo

    @cached_property
    def layout(self) -> Layout:
        ep, done = self.cols["episode"], self.cols["done"].astype(bool)
        n = self.n
        change = np.ones(n, bool)
        np.not_equal(ep[1:], ep[:-1], out=change[1:])
        start = np.flatnonzero(change)
        stop = np.append(start[1:], n)
        ids = ep[start]
        pair_ok = ~change[1:] & ~done[:-1]
        # Several runs of one id are either interleaved episodes (no done between) or a reused id.
        order = np.argsort(ids, kind="stable")
        same = ids[order][1:] == ids[order][:-1]
        ended = done[stop - 1]
        interleaved = bool((same & ~ended[order][:-1]).any())
        return Layout(start, stop, ids, pair_ok, interleaved)

    @cached_property
    def rows(self) -> RowPass:
        return row_pass(self)

    def chunks(self):
        """``(lo, hi)`` over the rows, ``CHUNK_ROWS`` at a time: for sums and counts per segment whose
        temporaries (group indices, masks) would otherwise be as long as the store."""
        for lo in range(0, self.n, CHUNK_ROWS):
            yield lo, min(self.n, lo + CHUNK_ROWS)

    @cached_property
    def head_width(self) -> int:
        shape = self.store.schema["state"].shape
        return min(int(np.prod(shape)) if shape else 1, HEAD)

    def heads(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """The first ``HEAD`` elements of ``state`` and ``next_state`` of ``rows`` (any order), float32,
        gathered from the store: what the checks that learn from a sample of rows read."""
        rows = np.asarray(rows, np.int64)
        h = self.head_width
        out = np.empty((2, rows.size, h), np.float32)
        for lo in range(0, rows.size, GATHER_ROWS):
            part = rows[lo:lo + GATHER_ROWS]
            g = self.store.gather(part, ["state", "next_state"])
            for k, c in enumerate(("state", "next_state")):
                out[k, lo:lo + part.size] = g[c].reshape(part.size, -1)[:, :h]
            release_pages(self.store)
        return out[0], out[1]

    def head_blocks(self, column: str):
        """``(lo, hi, head)`` over the whole store, ``head`` the first ``HEAD`` elements of ``column``
        of rows ``[lo, hi)``: for a check that needs every row's state, without holding them all."""
        s0 = self.store.schema[column]
        width = int(np.prod(s0.shape)) if s0.shape else 1
        block = min(BLOCK_ROWS, max(1024, BLOCK_BYTES // max(1, width * s0.dtype.itemsize)))
        for lo in range(0, self.n, block):
            hi = min(self.n, lo + block)
            x = self.store.read([column], lo, hi)[column].reshape(hi - lo, width)
            yield lo, hi, np.ascontiguousarray(x[:, :self.head_width])
            release_pages(self.store)

    def where(self, rows: np.ndarray) -> dict:
        """Where rows lie: their half-open range, how many, and the episodes they touch."""
        rows = np.asarray(rows)
        out = {"rows": [int(rows.min()), int(rows.max()) + 1], "count": int(rows.size)}
        if "episode" in self.cols:
            eps = np.unique(self.cols["episode"][rows])
            out["episodes"] = eps[:EPISODES_LISTED].tolist()
            out["episodes_count"] = int(eps.size)
        return out


def evidence(measure: str, value, threshold, **more) -> dict:
    """A finding's ``details``: what was measured, its value and the threshold it crossed, and more."""
    return {"measure": measure, "evidence": value, "threshold": threshold, **more}


def row_pass(ctx: Context) -> RowPass:
    """One pass over ``state``/``next_state`` in blocks of about ``BLOCK_BYTES`` per column."""
    s0 = ctx.store.schema["state"]
    width = int(np.prod(s0.shape)) if s0.shape else 1
    n, A = ctx.n, ctx.A
    # at most BLOCK_ROWS: narrow states would otherwise make blocks of millions of rows, whose per-row
    # temporaries (the hashed words: 64 bytes a row) outweigh the states read
    block = min(BLOCK_ROWS, max(1024, BLOCK_BYTES // max(1, width * s0.dtype.itemsize)))
    out = RowPass(np.zeros(max(0, n - 1), bool), np.zeros(n, bool), np.zeros(n, np.uint64), np.zeros(ctx.nseg * A, np.int64),
                  np.zeros((ctx.nseg * A, width)), np.zeros((ctx.nseg * A, width)), np.zeros((ctx.nseg, 5, width)),
                  np.zeros(ctx.nseg), np.zeros(ctx.nseg * A, np.int64), width,
                  np.full((A, width), np.inf), np.full((A, width), -np.inf))
    hk = min(width, HASHED)
    mult = _hash_multipliers(2 * hk)
    out.keyed = tuple(c for c in KEYED if c in ctx.cols)
    run = _OpenRun()
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        hi1 = min(n, hi + 1)  # one row more: the chain compares next_state[t] with state[t + 1]
        b = ctx.store.read(["state", "next_state"], lo, hi1)
        s = b["state"].reshape(hi1 - lo, width)
        ns = b["next_state"].reshape(hi1 - lo, width)
        m = hi - lo
        k = hi1 - lo - 1
        if k > 0:
            out.chain_bad[lo:lo + k] = _rows_differ(ns[:k], s[1:k + 1])
        # a row with a NaN is never a copy (the cost of the NaN recheck on every row is not worth it);
        # the first element rules out almost every row before the whole rows are compared
        cand = np.flatnonzero(ns[:m, 0] == s[:m, 0])
        if cand.size:
            out.copy[lo + cand] = ~(ns[cand] != s[cand]).any(axis=1)
        words = np.concatenate([s[:m, :hk], ns[:m, :hk]], axis=1).astype(np.float64).view(np.uint64)
        out.hash[lo:hi] = (words * mult).sum(axis=1, dtype=np.uint64)
        _key(out, ctx, lo, hi)
        _moments(out, ctx, lo, hi, s[:m], run)
        del b, s, ns
        release_pages(ctx.store)
    run.close(out, ctx.A)
    return out


def release_pages(store) -> None:
    """Drop this process's mapping of the store's segment pages (``ReplayStore.release_pages``): kept
    mapped, they count in the process's RSS, all of the store's bytes by the end of an audit. A
    source without it (a remote one) is left alone."""
    release = getattr(store, "release_pages", None)
    if release is not None:
        release()


def _key(out: RowPass, ctx: Context, lo: int, hi: int) -> None:
    """Mix the scalar columns ``out.keyed`` of rows ``[lo, hi)`` into their hash (wrapping arithmetic)."""
    word = np.empty(hi - lo, np.uint64)
    for k, c in enumerate(out.keyed):
        np.copyto(word.view(np.float64), ctx.cols[c][lo:hi], casting="unsafe")  # the value as a float64's bits
        np.multiply(word, np.uint64(0x9E3779B97F4A7C15 + 2 * k), out=word)
        out.hash[lo:hi] += word


def _rows_differ(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a != b).any(axis=1)
    if a.dtype.kind == "f" and d.any() and np.isnan(a[d]).any():
        # NaN == NaN for our purpose (a store that allows non-finite states): recheck the few rows that differ.
        i = np.flatnonzero(d)
        x, y = a[i], b[i]
        d[i] = ((x != y) & ~(np.isnan(x) & np.isnan(y))).any(axis=1)
    return d


def _hash_multipliers(k: int) -> np.ndarray:
    # Fixed odd 64-bit multipliers: a multilinear hash of the row's words (wrapping arithmetic).
    return np.random.default_rng(0x5EED).integers(1, 2**63, size=k, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


class _OpenRun:
    """The run of sampled rows that the last sub-block ended in: it may go on in the next one."""

    def __init__(self):
        self.key, self.t1, self.t2, self.m = None, None, None, 0

    def close(self, out: RowPass, A: int) -> None:
        if self.key is not None and self.key[0] >= 0:
            _add_runs(out, A, np.array([self.key[0]]), self.t1[None], self.t2[None], np.array([self.m], np.float64))
        self.key = None


def _add_runs(out: RowPass, A: int, group, t1, t2, m) -> None:
    for g in np.unique(group).tolist():
        sel = group == g
        a, b, n = t1[sel], t2[sel], m[sel]
        r = out.run_sums[g // A]
        r[0] += np.einsum("ij,ij->j", a, a)
        r[1] += np.einsum("ij,ij->j", b, b)
        r[2] += np.einsum("ij,ij->j", a, b)
        r[3] += n @ a
        r[4] += n @ b
        out.run_m2[g // A] += float(n @ n)
        out.run_count[g] += int(sel.sum())


def _run_totals(x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sums of ``x``'s rows over runs beginning at ``starts``: the runs' d-th rows added for each d
    (along the rows, np.add.reduceat was 4x slower and np.cumsum 8x on 84x84x4 frames)."""
    length = np.diff(np.append(starts, x.shape[0]))
    t = x[starts].astype(np.float64)
    for d in range(1, int(length.max())):
        sel = np.flatnonzero(length > d)
        t[sel] += x[starts[sel] + d]
    return t


def _moments(out: RowPass, ctx: Context, lo: int, hi: int, s: np.ndarray, run: _OpenRun) -> None:
    k = max(1, ctx.n // MOMENT_ROWS)
    first = (-lo) % k  # every k-th row of the store, whatever the block
    rows = np.arange(lo + first, hi, k)
    if not rows.size:
        return
    codes = ctx.codes[rows].astype(np.intp)
    known = codes < ctx.A
    group = np.where(known, ctx.seg[rows] * ctx.A + codes, -1)
    ep = ctx.cols["episode"][rows] if "episode" in ctx.cols else np.zeros(rows.size, np.int64)
    sampled = s[first:hi - lo:k]
    # MOMENT_BYTES of float64 run sums at a time: a block holds at least 1,024 rows, and of 84x84x4
    # images a float copy of them all was 115 MB (and its squares as much again).
    step = max(1, MOMENT_BYTES // (8 * out.width))
    for a in range(0, rows.size, step):
        _moment_sums(out, ctx, sampled[a:a + step], group[a:a + step], ep[a:a + step], run)


def _moment_sums(out: RowPass, ctx: Context, x: np.ndarray, group: np.ndarray, ep: np.ndarray,
                 run: _OpenRun) -> None:
    if not np.isfinite(x).all():
        fin = np.isfinite(x)
        lo_x, hi_x = np.where(fin, x, np.inf), np.where(fin, x, -np.inf)
        x = np.where(fin, x, 0)
    else:
        lo_x = hi_x = x
    # float32 as before (exact for 8-bit pixels and their squares), summed in float64
    x = x.astype(np.float32, copy=False)
    xx = x * x
    # A block spans one or two segments: a few masked sums. No BLAS: its threads made a one-hot
    # product 6-10x slower than these sums on the shared 2-core machine.
    for g in np.unique(group[group >= 0]).tolist():
        sel = group == g
        out.seg_count[g] += int(sel.sum())
        out.seg_sum[g] += x[sel].sum(axis=0, dtype=np.float64)
        out.seg_sumsq[g] += xx[sel].sum(axis=0, dtype=np.float64)
        a = g % ctx.A
        np.minimum(out.amin[a], lo_x[sel].min(axis=0), out=out.amin[a])
        np.maximum(out.amax[a], hi_x[sel].max(axis=0), out=out.amax[a])
    # the runs' sums; the first continues the open run when it has its key, the last stays open
    change = np.ones(group.size, bool)
    change[1:] = (group[1:] != group[:-1]) | (ep[1:] != ep[:-1])
    starts = np.flatnonzero(change)
    t1, t2 = _run_totals(x, starts), _run_totals(xx, starts)
    m = np.diff(np.append(starts, group.size)).astype(np.float64)
    g = group[starts]
    if run.key == (int(g[0]), int(ep[0])):
        t1[0] += run.t1
        t2[0] += run.t2
        m[0] += run.m
    else:
        run.close(out, ctx.A)
    keep = g[:-1] >= 0
    if keep.any():
        _add_runs(out, ctx.A, g[:-1][keep], t1[:-1][keep], t2[:-1][keep], m[:-1][keep])
    run.key, run.t1, run.t2, run.m = (int(g[-1]), int(ep[starts[-1]])), t1[-1].copy(), t2[-1].copy(), float(m[-1])

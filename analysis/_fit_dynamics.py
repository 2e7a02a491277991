"""Checks that learn the run's dynamics from a sample of its rows: does each actor's stored discrete
action explain its state change under a model learned from the other actors' rows (ACTION_FIT), and
are there rows unlike any row elsewhere in the run (FOREIGN_ROWS)? Both use only numpy least squares
and scipy's cKDTree on at most ``_fit.SAMPLE`` rows."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ._anomalies import Anomaly
from ._context import Context, Skip, evidence
from ._fit import Scaler, finite, fit_data, spread
from ._fit_checks import (FIT_HIGH, FIT_LOW, FOREIGN_RATIO, FOREIGN_RUN, MIN_FIT_ROWS, ORDINAL_GAP,
                          _where)

FOREIGN_SAMPLE = 4096  # rows compared with the rest of the run (a nearest-neighbour query each)
FIT_ROWS = 4096        # rows the dynamics models learn from and explain
MAX_ACTIONS = 32  # discrete actions beyond this are not a small action set to fit one by one
TAG_SHARE = 0.9   # a foreign block is one actor's when that actor holds this share of its rows


# ----------------------------------------------------------------------------- FOREIGN_ROWS
class _Far:
    """Nearest sampled row outside a row's own segment and the two beside it: a block of up to one
    segment never finds itself. One tree per segment queried, built on the rows it may match."""

    def __init__(self, z: np.ndarray, seg: np.ndarray):
        self.z, self.seg, self.trees = z, seg, {}

    def __call__(self, q: np.ndarray, qseg: np.ndarray):
        d, j = np.full(len(q), np.inf), np.zeros(len(q), np.intp)
        for g in np.unique(qseg).tolist():
            if g not in self.trees:
                ref = np.flatnonzero(np.abs(self.seg - g) > 1)
                self.trees[g] = (ref, cKDTree(self.z[ref]) if ref.size else None)
            ref, tree = self.trees[g]
            if tree is None:
                continue
            m = qseg == g
            dd, jj = tree.query(q[m])
            d[m], j[m] = dd, ref[jj]
        return d, j


def _runs(flag: np.ndarray) -> list[tuple[int, int]]:
    """Half-open index ranges of consecutive True values."""
    edges = np.flatnonzero(np.diff(np.r_[0, flag.astype(np.int8), 0]))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def foreign_rows(ctx: Context):
    """Blocks of consecutive rows whose (state, state change, reward) lie far from every row in the
    rest of the run: another environment's rows, or another run's."""
    fd = fit_data(ctx)

    def feats(rows):
        x = np.concatenate([fd.state(rows), fd.delta(rows), fd.rewards(rows)], axis=1)
        ok = finite(x)
        return rows[ok], x[ok]

    if ctx.nseg < 4:
        raise Skip(f"{ctx.nseg} segments: too few to compare a block of rows with the rest of the run")
    s, x = feats(spread(fd.sample, FOREIGN_SAMPLE))
    if s.size < 4 * FOREIGN_RUN:
        raise Skip(f"{s.size} finite sampled rows: too few to tell rows unlike the rest")
    scale = Scaler(x)
    zs = scale(x)
    far = _Far(zs, ctx.seg[s])
    d, j = far(zs, ctx.seg[s])
    pos = d[np.isfinite(d) & (d > 0)]
    typical = float(np.median(pos)) if pos.size else 0.0
    if typical <= 0:
        raise Skip("the sampled rows repeat exactly: no typical distance between rows")
    # A rare row's nearest far row is rare too (as far from its own); a foreign row's is an ordinary
    # row of the run: the distance is measured against that neighbour's own (local outlier factor).
    local = np.maximum(np.where(np.isfinite(d), d, typical), typical)
    score = d / local[j]
    window = ctx.seg_rows
    ev = {"typical_distance": typical, "max_ratio": float(score.max()), "threshold_ratio": FOREIGN_RATIO,
          "threshold_rows": FOREIGN_RUN, "block_rows_at_most": window, "sampled_rows": int(s.size)}
    ev["longest_run"] = max([b - a for a, b in _runs(score > FOREIGN_RATIO)] or [0])
    out = []
    for a, b in _runs(score > FOREIGN_RATIO):
        if b - a < FOREIGN_RUN:
            continue
        # refine on every row between the unflagged sampled rows around the run
        lo = int(s[a - 1]) + 1 if a > 0 else 0
        hi = int(s[b]) if b < s.size else ctx.n
        cand, xc = feats(np.arange(lo, hi))
        dc, jc = far(scale(xc), ctx.seg[cand])
        sc = dc / local[jc]
        flagged = cand[sc > FOREIGN_RATIO]
        if not flagged.size:
            continue
        rows = np.arange(int(flagged.min()), int(flagged.max()) + 1)
        codes = ctx.codes[rows]
        counts = np.bincount(np.minimum(codes, ctx.A), minlength=ctx.A + 1)[:ctx.A]
        top = int(counts.argmax())
        actor = ctx.names[top] if counts[top] >= TAG_SHARE * rows.size else None
        tags = {ctx.names[k]: int(c) for k, c in enumerate(counts) if c}
        w = _where(ctx, rows)
        ratio = float(np.median(sc[sc > FOREIGN_RATIO]))
        out.append(Anomaly(
            "FOREIGN_ROWS", "error",
            f"rows {w['rows']} ({rows.size} rows, tagged {tags}) lie far from every row elsewhere in the run: "
            f"their nearest row outside their segments ({window} rows each) is {ratio:.3g}x as far as that row's own "
            f"(threshold {FOREIGN_RATIO:g}x on {FOREIGN_RUN} consecutive rows): rows of another environment or run",
            actor=actor, rows=w["rows"], episodes=w["episodes"],
            details=evidence("median distance to the rest of the run over that neighbour's own (more than)", ratio,
                             FOREIGN_RATIO, tags=tags, segment_rows=window, **w)))
    return out, ev


# ----------------------------------------------------------------------------- ACTION_FIT
def _poly2(z: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(z.shape[1])
    return np.concatenate([np.ones((len(z), 1)), z, z[:, i] * z[:, j]], axis=1)


def _design(basis: np.ndarray, zs: np.ndarray, a: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """State terms, plus per action an intercept and a slope on each state element."""
    lin = np.concatenate([np.ones((len(zs), 1)), zs], axis=1)
    onehot = (a[:, None] == actions[None, :]).astype(np.float64)
    return np.concatenate([basis, (onehot[:, :, None] * lin[:, None, :]).reshape(len(zs), -1)], axis=1)


def _solve(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares by the normal equations with a whisper of ridge: a few-dozen-column solve,
    where LAPACK's SVD (np.linalg.lstsq) took seconds on the shared 2-core machine."""
    xtx = x.T @ x
    xtx[np.diag_indices_from(xtx)] += 1e-9 * max(1.0, float(np.trace(xtx)) / len(xtx))
    return np.linalg.solve(xtx, x.T @ y)


class _Model:
    """delta ~ poly2(state) + per-action (intercept + slope) terms, fitted by least squares."""

    def __init__(self, basis, zs, zd, a, actions):
        self.actions = actions
        self.w = _solve(_design(basis, zs, a, actions), zd)

    def errors(self, basis, zs, zd) -> np.ndarray:
        """(rows, actions): squared error of each row's state change under each action."""
        out = np.empty((len(zs), len(self.actions)))
        for k, act in enumerate(self.actions):
            pred = _design(basis, zs, np.full(len(zs), act), self.actions) @ self.w
            out[:, k] = ((zd - pred) ** 2).sum(axis=1)
        return out

    def explained(self, basis, zs, zd, a) -> np.ndarray:
        """Per row: True where the stored action predicts the state change best; False where another
        does; rows whose action this model never saw are left out (NaN)."""
        best = self.actions[self.errors(basis, zs, zd).argmin(axis=1)]
        known = np.isin(a, self.actions)
        return np.where(known, best == a, np.nan)


def _ordinal_loss(basis, zs, zd, a) -> float:
    """Share of what the actions explain of the state change that is lost when the action code is
    taken as a number (one slope per state term): near 0 where the codes are ordered as their effects."""
    acts = np.unique(a)
    if acts.size < 3:
        return 0.0

    def mse(x):
        return float(((zd - x @ _solve(x, zd)) ** 2).mean())

    lin = np.concatenate([np.ones((len(zs), 1)), zs], axis=1)
    full, none = mse(_design(basis, zs, a, acts)), mse(basis)
    ordinal = mse(np.concatenate([basis, a[:, None] * lin], axis=1))
    return float((ordinal - full) / max(none - full, 1e-300))


def action_fit(ctx: Context):
    """Each actor's stored discrete actions against a dynamics model learned from each other actor."""
    fd = fit_data(ctx)
    if fd.discrete is None:
        raise Skip("no discrete actions that vary: the fit of continuous actions is not checked yet")
    if ctx.A < 2:
        raise Skip("one actor: no other actor's rows to learn the dynamics from")
    s = spread(fd.sample, FIT_ROWS)
    st, dt = fd.state(s), fd.delta(s)
    ok = finite(st) & finite(dt)
    s, st, dt = s[ok], st[ok], dt[ok]
    if np.unique(fd.discrete[s]).size > MAX_ACTIONS:
        raise Skip(f"more than {MAX_ACTIONS} distinct discrete actions: not a small action set")
    zs, zd = Scaler(st)(st), Scaler(dt)(dt)
    basis, a, codes = _poly2(zs), fd.discrete[s].astype(np.int64), ctx.codes[s]
    models, own = {}, {}
    for i in range(ctx.A):
        m = codes == i
        acts, cnt = np.unique(a[m], return_counts=True)
        acts = acts[cnt >= MIN_FIT_ROWS]
        if acts.size >= 2 and m.sum() >= 5 * basis.shape[1]:
            models[i] = _Model(basis[m], zs[m], zd[m], a[m], acts)
    if len(models) < 2:
        raise Skip(f"fewer than two actors with {MIN_FIT_ROWS}+ rows on two actions: nothing to compare")
    share = {}  # (x, y): share of x's rows explained by y's model
    per_row = {}
    for x in models:
        m = codes == x
        for y in models:
            e = models[y].explained(basis[m], zs[m], zd[m], a[m])
            if x != y:
                per_row[x, y] = e
            share[x, y] = float(np.nanmean(e)) if np.isfinite(e).any() else np.nan
    names = ctx.names
    ev = {"explained_share": {f"{names[x]} by {names[y]}'s model": share[x, y] for x, y in share},
          "threshold_low": FIT_LOW, "threshold_own": FIT_HIGH}
    bad = {x: [y for y in models if y != x and share[x, y] < FIT_LOW] for x in models}
    # the model is good enough to judge where the actor's own rows fit it, or two other actors' rows
    # explain each other (then the actor's actions are noise to the dynamics, a finding too)
    agree = any(share[y, z] >= FIT_HIGH and share[z, y] >= FIT_HIGH for y in models for z in models if y < z)
    suspects = [x for x in models if bad[x] and len(bad[x]) == len(models) - 1 and (share[x, x] >= FIT_HIGH or agree)]
    if len(models) == 2 and len(suspects) == 2:
        # each actor's actions explain only its own rows: the one whose codes lost the order of their
        # effects is the relabelled one (a permutation of ordered codes breaks a linear fit in the code)
        mis = {x: _ordinal_loss(basis[codes == x], zs[codes == x], zd[codes == x], a[codes == x]) for x in models}
        ev["ordinal_loss"] = {names[x]: mis[x] for x in mis}
        hi, lo = sorted(models, key=lambda x: -mis[x])
        suspects = [hi] if mis[hi] - mis[lo] >= ORDINAL_GAP else [None]
    out = []
    for x in suspects:
        ref = [y for y in models if y != (x if x is not None else -1)]
        who = x if x is not None else min(models)
        y = ref[0] if x is not None else max(models)
        e = per_row[who, y]
        m = np.flatnonzero(codes == who)
        seg = ctx.seg[s[m]]
        known = np.isfinite(e)
        cnt = np.bincount(seg[known], minlength=ctx.nseg)
        hit = np.bincount(seg[known], e[known], minlength=ctx.nseg)
        flagged = np.flatnonzero((cnt > 0) & (hit < FIT_LOW * np.maximum(cnt, 1)))
        if not flagged.size:
            flagged = np.unique(seg)
        rows = ctx.actor_rows(who, flagged[0], flagged[-1])
        if x is None:  # either actor's rows may be the wrong ones: name both actors' rows
            rows = np.union1d(rows, ctx.actor_rows(y, flagged[0], flagged[-1]))
        w = _where(ctx, rows)
        label = repr(names[x]) if x is not None else f"one of {names[who]!r} and {names[y]!r}"
        out.append(Anomaly(
            "ACTION_FIT", "error",
            f"the stored actions of {label} do not explain its transitions: under a dynamics model learned from "
            f"{names[y]!r}'s rows they explain {share[who, y]:.1%} of its state changes (threshold {FIT_LOW:.0%}), "
            f"while its own rows' model explains {share[who, who]:.1%}, rows {w['rows']}: its actions were "
            "stored under another action table", actor=names[x] if x is not None else None, rows=w["rows"],
            episodes=w["episodes"],
            details=evidence("share of the actor's rows whose stored action best predicts the state change "
                             "(less than)", share[who, y], FIT_LOW, own_model_share=share[who, who],
                             reference=names[y], segments=flagged.tolist(), segment_rows=ctx.seg_rows, **w)))
    return out, ev

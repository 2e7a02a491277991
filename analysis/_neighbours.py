"""Tags against behaviour without a policy. Where the run declares an actor deterministic (metadata
``env.actors.<actor>.deterministic``, or ``--env-facts``), that actor acts the same on the same or
nearby states. Each row is compared with its nearest neighbour among the deterministic actor's rows
of other episodes (a scipy ``cKDTree`` over the standardized state): rows tagged with that actor
that act otherwise (another actor's rows carrying its tag), and segments where another actor's
rows act like it while the tagged rows do not (tags swapped), are findings. When the tagged rows
agree with it no more than another actor's rows do, the tags carry no information about behaviour.

The neighbourhoods are found on the first ``_context.HEAD`` state elements (those the row pass keeps),
standardized by the actor's spread, over at most ``MAX_TREE`` of its rows; at most ``MAX_QUERY`` rows
spread over the store are judged. An actor with a policy given to the audit is judged by
``TAG_POLICY`` instead."""

from __future__ import annotations

import numpy as np

from ._anomalies import Anomaly
from ._context import Context, Skip, evidence

# Calibrated on gymnasium runs (analysis._gymruns, 3000 rows, seeds 1-4; benchmarks/calibrate_tags.py): the
# scripted expert's rows agree with a unanimous neighbourhood of its own rows on 0.990-0.997 (Acrobot),
# 0.991-0.999 (MountainCar) and 0.984-0.996 (Pendulum) of the rows judged; the noisy learner's on 0.82-0.85
# and 0.55-0.60. With a tenth of all rows learner rows tagged 'expert' the expert's rate falls to 0.937,
# 0.951 and 0.873.
AGREEMENT = 0.97       # a deterministic actor's rows agree with a unanimous neighbourhood of its own rows this often
SEGMENT_P = 1e-6       # a segment's disagreements (or another actor's agreements) this unlikely at the usual rate
UNINFORMATIVE = 0.03   # the tagged rows agree no more than another actor's (within this): tags carry no information
MAX_TREE = 10_000      # rows of the deterministic actor in the tree (spread over the store)
MAX_QUERY = 20_000     # rows compared with their neighbourhood (spread over the store)
EPS = 0.5              # approximate neighbours (within 1.5x the nearest distance): a k-d tree in 8 dimensions
                       # answered 40k exact 16-neighbour queries in 2.4 s of CPU, approximate ones in 0.4 s
K = 16                 # neighbours asked for, to find NEIGHBOURS from other episodes
NEIGHBOURS = 5         # neighbours from other episodes that make a row's neighbourhood
MIN_NEIGHBOURS = 3
MIN_TREE = 50
MIN_ROWS = 30          # judged rows of an actor in a segment before its agreement counts
MIN_OFF = 4            # disagreements (clusters of rows) in a segment before it counts
CLUSTER_GAP = 3        # disagreeing rows this close together are one disagreement
CONTINUOUS_TOL = 0.05  # continuous actions agree within this share of the action range (or of 4 std)


def _spread(rows: np.ndarray, cap: int) -> np.ndarray:
    return rows if rows.size <= cap else rows[np.linspace(0, rows.size - 1, cap).astype(np.int64)]


def _actions(ctx: Context):
    """The action column to compare: ``(values (n, k) float64, tolerance per element, kind)``."""
    env = ctx.env
    cdim = ctx.store.schema["continuous_action"].shape[0] if ctx.has("continuous_action") \
        and ctx.store.schema["continuous_action"].shape else 0
    continuous = cdim > 0 and (env.action_shape is not None or env.n_actions is None)
    if not continuous:
        if "discrete_action" not in ctx.cols:
            raise Skip("no action column to compare")
        return ctx.cols["discrete_action"].astype(np.float64)[:, None], np.full(1, 0.5), "discrete"
    c = ctx.store.read(["continuous_action"])["continuous_action"].astype(np.float64).reshape(ctx.n, -1)
    if env.action_low is not None and env.action_low.size == c.shape[1] and np.isfinite(
            env.action_high - env.action_low).all():
        tol = CONTINUOUS_TOL * (env.action_high - env.action_low)
    else:
        tol = CONTINUOUS_TOL * 4 * np.nanstd(c, axis=0)
    return c, np.maximum(tol, 1e-9), "continuous"


def tag_behaviour(ctx: Context):
    from scipy.spatial import cKDTree

    from ._tags import resolve

    env = ctx.env
    declared = [a for a in (env.deterministic_actors() if env is not None else []) if a in ctx.names]
    if not declared:
        raise Skip("no actor is declared deterministic or scripted (metadata env.actors.<actor>.deterministic, "
                   "or --env-facts): nothing says how any actor should behave")
    policies, _ = resolve(ctx)
    todo = [a for a in declared if a not in policies]
    if not todo:
        raise Skip(f"{declared} have a policy: TAG_POLICY checks their rows against it")
    act, tol, kind = _actions(ctx)
    # the states of the sampled rows only, gathered (rows with a non-finite state are dropped after)
    ok = np.isfinite(act).all(axis=1) & (ctx.codes < ctx.A)
    ep = ctx.cols.get("episode")
    out, ev = [], {"actions": kind, "tolerance": tol.tolist(), "threshold_agreement": AGREEMENT,
                   "elements": ctx.head_width, "per_actor": {}}
    q, xq = _finite_states(ctx, _spread(np.flatnonzero(ok), MAX_QUERY))
    for name in todo:
        d = ctx.names.index(name)
        mine, xm = _finite_states(ctx, _spread(np.flatnonzero(ok & (ctx.codes == d)), MAX_TREE))
        if mine.size < MIN_TREE:
            ev["per_actor"][name] = f"{mine.size} rows: too few to compare neighbours (at least {MIN_TREE})"
            continue
        scale = xm.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        tree = cKDTree(xm / scale)
        _, idx = tree.query(xq / scale, k=min(K, mine.size), eps=EPS)
        cand = mine[idx]
        valid = (cand != q[:, None]) & ((ep[cand] != ep[q][:, None]) if ep is not None
                                        else (np.abs(cand - q[:, None]) > 1))
        # the first NEIGHBOURS valid neighbours of each row (other episodes, not itself)
        valid &= np.cumsum(valid, axis=1) <= NEIGHBOURS
        enough = valid.sum(axis=1) >= MIN_NEIGHBOURS
        # a neighbourhood that acts as one (every neighbour within tolerance of the first): a deterministic
        # policy's rows there take that action too. Mixed neighbourhoods sit on a decision boundary and say
        # nothing; a row off a unanimous neighbourhood acts unlike the actor.
        first = valid.argmax(axis=1)
        ref = act[cand[np.arange(q.size), first]]
        same = (np.abs(act[cand] - ref[:, None, :]) <= tol / 2).all(axis=2) | ~valid
        judged = enough & same.all(axis=1)
        q, ref = q[judged], ref[judged]
        agree = (np.abs(act[q] - ref) <= tol).all(axis=1)
        found, e = _judge(ctx, d, q, agree)
        out += found
        ev["per_actor"][name] = e
    return out, ev


def _finite_states(ctx: Context, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = ctx.heads(rows)[0].astype(np.float64)
    ok = np.isfinite(x).all(axis=1)
    return rows[ok], x[ok]


def _judge(ctx: Context, d: int, q: np.ndarray, agree: np.ndarray):
    name = ctx.names[d]
    g = ctx.seg[q] * ctx.A + ctx.codes[q].astype(np.intp)
    cnt = np.bincount(g, minlength=ctx.nseg * ctx.A).reshape(ctx.nseg, ctx.A)
    hit = np.bincount(g, weights=agree, minlength=ctx.nseg * ctx.A).reshape(ctx.nseg, ctx.A)
    whole = hit.sum(0) / np.maximum(1, cnt.sum(0))
    rate = hit / np.maximum(1, cnt)
    ev = {"agreement_with_neighbour": {x: float(whole[i]) for i, x in enumerate(ctx.names)},
          "judged_rows": {x: int(cnt[:, i].sum()) for i, x in enumerate(ctx.names)}}
    # a stretch of segments is off when the actor's disagreements there are beyond chance at its rate over
    # the other segments, or another actor's agreements are beyond chance at that actor's usual rate
    # (binomial tails), while the actor agrees under AGREEMENT there: tags swapped in a stretch of the run
    from scipy.stats import binom

    # disagreements of consecutive rows (an episode hovering at a decision boundary) count once: the
    # binomial tail assumes independent rows, and a mislabelled actor's deviations come one by one
    offr = q[(ctx.codes[q] == d) & ~agree]
    onset = offr[np.r_[True, np.diff(offr) > CLUSTER_GAP]] if offr.size else offr
    off_n = np.bincount(ctx.seg[onset], minlength=ctx.nseg)
    low = (cnt[:, d] >= MIN_ROWS) & (rate[:, d] < AGREEMENT)
    bad_seg = np.zeros(ctx.nseg, bool)
    swapped = {i: [] for i in range(ctx.A) if i != d}
    for run in np.split(np.flatnonzero(low), np.flatnonzero(np.diff(np.flatnonzero(low)) > 1) + 1):
        if not run.size:
            continue
        out_run = np.ones(ctx.nseg, bool)
        out_run[run] = False
        c, o = cnt[run, d].sum(), off_n[run].sum()
        rest_off = (cnt[out_run, d].sum() - hit[out_run, d].sum() + 1) / (cnt[out_run, d].sum() + 2)
        flagged = o >= MIN_OFF and binom.sf(o - 1, c, max(rest_off, 1e-4)) < SEGMENT_P
        for i in swapped:
            ci, hi = cnt[run, i].sum(), hit[run, i].sum()
            typical = (hit[out_run, i].sum() + 1) / (cnt[out_run, i].sum() + 2)
            if ci >= MIN_ROWS and hi / ci > hit[run, d].sum() / max(1, c) \
                    and binom.sf(hi - 1, ci, typical) < SEGMENT_P:
                swapped[i].append((run, typical))
                flagged = True
        bad_seg[run] = flagged
    whole_bad = cnt[:, d].sum() >= MIN_ROWS and whole[d] < AGREEMENT
    out = []
    if not (bad_seg.any() or whole_bad):
        return out, ev
    segs = np.flatnonzero(bad_seg) if bad_seg.any() else np.arange(ctx.nseg)
    in_segs = np.isin(ctx.seg[q], segs)
    off = q[(ctx.codes[q] == d) & ~agree & in_segs]
    w = ctx.where(off if off.size else q[ctx.codes[q] == d])
    others = {x: float(whole[i]) for i, x in enumerate(ctx.names) if i != d and cnt[:, i].sum() >= MIN_ROWS}
    informative = not any(abs(v - whole[d]) <= UNINFORMATIVE for v in others.values())
    worst = float(rate[segs, d].min()) if bad_seg.any() else float(whole[d])
    out.append(Anomaly(
        "TAG_BEHAVIOUR", "error",
        f"rows tagged {name!r}, declared deterministic, act like their nearest {name!r} neighbour on only "
        f"{worst:.1%} of states (threshold {AGREEMENT:.0%}) in {segs.size} of {ctx.nseg} segments, rows {w['rows']}"
        + (": rows of another actor carry its tag" if informative else
           f"; the other actors' rows agree as often ({ {k: round(v, 3) for k, v in others.items()} }): the tags "
           "carry no information about behaviour"), actor=name, rows=w["rows"], episodes=w["episodes"],
        details=evidence("share of the actor's rows acting like their nearest same-actor neighbour (under)", worst,
                         AGREEMENT, segments=segs.tolist(), segment_rows=ctx.seg_rows, informative=informative,
                         **w)))
    if not bad_seg.any():
        return out, ev
    for i, runs in swapped.items():
        x = ctx.names[i]
        if not runs:
            continue
        swapped_segs = np.concatenate([r for r, _ in runs])
        typical = float(np.mean([t for _, t in runs]))
        rows = ctx.actor_rows(i, swapped_segs[0], swapped_segs[-1])
        w = ctx.where(rows)
        out.append(Anomaly(
            "TAG_BEHAVIOUR", "error",
            f"rows tagged {x!r} act like the deterministic {name!r} on {float(rate[swapped_segs, i].min()):.1%} of "
            f"states in {swapped_segs.size} segment(s), rows {w['rows']}, where {name!r}'s own rows do not "
            f"(elsewhere {x!r} agrees on {typical:.1%}): the tags of {x!r} and {name!r} are swapped there", actor=x, rows=w["rows"],
            episodes=w["episodes"],
            details=evidence(f"share of the actor's rows acting like {name!r} in the swapped segments (at least)",
                             float(rate[swapped_segs, i].min()), typical, segments=swapped_segs.tolist(),
                             segment_rows=ctx.seg_rows, elsewhere=float(typical), **w)))
    return out, ev

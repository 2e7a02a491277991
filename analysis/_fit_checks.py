"""Do actions and rewards fit the transitions? Checks that learn from the store itself, on a bounded
sample (``_fit.SAMPLE`` rows), how state and action predict the next state and the reward, and
compare the actors: stored actions that do not explain an actor's transitions (ACTION_FIT), rewards
that fit the previous row better than their own (REWARD_LAG), rows unlike any other in the run
(FOREIGN_ROWS), one actor's rewards piled up at a bound the others pass (REWARD_CLIPPED) and actions
outside the action space (ACTION_BOUNDS). Thresholds: benchmarks/calibrate_fit.py measures them on
clean runs of several environments and seeds (BENCHMARKS.md)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ._anomalies import Anomaly
from ._context import Context, Skip, evidence, release_pages
from ._fit import Scaler, action_facts, finite, fit_data, spread

# The codes these checks raise (ANOMALY_CODES lists them too: _checks.py adds them there).
FIT_CODES = {
    "ACTION_BOUNDS": "error: an actor's actions lie outside the environment's action space (stored before "
                     "clipping, or another action table)",
    "REWARD_CLIPPED": "error: 5% or more of an actor's rewards sit exactly at its extreme value while 5% of the "
                      "other actors' rewards pass it (its rewards were clipped)",
    "REWARD_LAG": "error: an actor's rewards fit the previous row of its episode 2x better than their own "
                  "(rewards stored one step late)",
    "ACTION_FIT": "error: an actor's stored discrete actions do not explain its state changes under the dynamics "
                  "learned from the other actors' rows (its own model does: another action table)",
    "FOREIGN_ROWS": "error: a block of consecutive rows lies far from every row elsewhere in the run (another "
                    "environment's or run's rows)",
}

BOUND_TOL = 1e-6       # relative: float32 rounding of a bound is not "outside"
PILE_SHARE = 0.05      # an actor's rewards exactly at its extreme value (at least this share) ...
PASS_SHARE = 0.05      # ... while this share of the other actors' rewards lies beyond that value
MIN_PILE = 20          # rows at the bound before a pile counts
PILE_MAX = 0.5         # a value that holds most of an actor's rewards is what the environment pays, not a clip
LAG_RATIO = 2.0        # own-row reward error over previous-row error (more than)
LAG_MIN_SPREAD = 1e-6  # ... and the own-row error above this share of the rewards' spread (not round-off)
MIN_LAG_ROWS = 100
LAG_ROWS = 1500        # rows per actor in the local fits (their cost grows with rows x neighbours x features^2)
LOCAL_RIDGE = 1e-3
FOREIGN_RATIO = 4.0    # distance to the nearest row elsewhere over that row's own (more than) ...
FOREIGN_RUN = 100      # ... on this many consecutive sampled rows at least
FIT_LOW = 0.35         # share of an actor's rows whose stored action explains the transition (below)
FIT_HIGH = 0.6         # ... where the actors' own models explain their own rows (at least)
ORDINAL_GAP = 0.3      # tie-break: the action effect one actor's codes lose as numbers, over the other's
MIN_FIT_ROWS = 30      # rows per action in a reference before the action counts


def _where(ctx: Context, rows: np.ndarray) -> dict:
    w = ctx.where(rows)
    w.setdefault("episodes", None)
    return w


# ----------------------------------------------------------------------------- ACTION_BOUNDS
def action_bounds(ctx: Context):
    """Actions outside the environment's action space: discrete codes outside [0, n), continuous
    elements outside [low, high]."""
    facts = action_facts(ctx.meta)
    if facts is None:
        raise Skip("no action space known: the env_id is not registered in gymnasium and the metadata "
                   "has no 'env' block with n_actions or action_low/action_high")
    if facts.problem:
        raise Skip(f"no usable action space: {facts.problem}")
    bad = np.zeros(ctx.n, bool)
    desc = []
    if facts.n_actions is not None and ctx.has("discrete_action"):
        d = ctx.cols["discrete_action"]
        first = facts.first_action
        bad |= (d < first) | (d >= first + facts.n_actions)
        desc.append(f"discrete actions in [{first}, {first + facts.n_actions})")
    shape = ctx.store.schema["continuous_action"].shape if ctx.has("continuous_action") else ()
    if facts.low is not None and facts.high is not None and shape and shape[0]:
        width = int(np.prod(shape))
        if width != facts.low.size:
            raise Skip(f"the store's continuous actions have {width} elements, the action space "
                       f"{facts.low.size} ({facts.source})")
        tol_lo = BOUND_TOL * (1 + np.abs(facts.low))
        tol_hi = BOUND_TOL * (1 + np.abs(facts.high))
        for lo, hi in ctx.chunks():  # chunk by chunk: a float64 copy of the column was 8 bytes a row per element
            c = ctx.store.read(["continuous_action"], lo, hi)["continuous_action"].reshape(hi - lo, width)
            c = c.astype(np.float64)
            bad[lo:hi] |= ((c < facts.low - tol_lo) | (c > facts.high + tol_hi)).any(axis=1)
            release_pages(ctx.store)
        desc.append(f"continuous actions in [{facts.low.tolist()}, {facts.high.tolist()}]")
    if not desc:
        raise Skip(f"the action space ({facts.source}) does not match the store's action columns")
    ev = {"source": facts.source, "expected": desc, "outside_share": {}}
    out = []
    for i, x in enumerate(ctx.names):
        mine = ctx.codes == i
        k = int(mine.sum())
        rows = np.flatnonzero(bad & mine)
        ev["outside_share"][x] = float(rows.size / k) if k else None
        if not rows.size:
            continue
        w = _where(ctx, rows)
        share = rows.size / k
        out.append(Anomaly(
            "ACTION_BOUNDS", "error",
            f"{rows.size} of {x!r}'s {k} actions ({share:.1%}) lie outside the action space ({' and '.join(desc)}, "
            f"from {facts.source}), rows {w['rows']}: actions stored before clipping, or another action table",
            actor=x, rows=w["rows"], episodes=w["episodes"],
            details=evidence("share of the actor's actions outside the action space (more than)", share, 0.0,
                             source=facts.source, **w)))
    return out, ev


# ----------------------------------------------------------------------------- REWARD_CLIPPED
def reward_clipped(ctx: Context):
    """An actor whose rewards pile up exactly at its extreme value while the other actors' pass it."""
    r = ctx.cols["reward"]  # in its own dtype: a float64 copy was 8 bytes a row, and comparisons are exact either way
    if r.dtype.kind != "f":
        r = r.astype(np.float64)
    ok = np.isfinite(r)
    ev = {"threshold_pile": PILE_SHARE, "pile_at_most": PILE_MAX, "threshold_pass": PASS_SHARE, "per_actor": {}}
    out = []
    for i, x in enumerate(ctx.names):
        mine = ok & (ctx.codes == i)
        others = ok & (ctx.codes != i)
        k, ko = int(mine.sum()), int(others.sum())
        if k < MIN_PILE or ko < MIN_PILE:
            continue
        # masked reductions, no copies of the actors' rewards (8 bytes a row in all)
        lowest, highest = np.min(r, where=mine, initial=np.inf), np.max(r, where=mine, initial=-np.inf)
        for side, bound in (("low", lowest), ("high", highest)):
            at = np.count_nonzero((r == bound) & mine)
            pile = at / k
            past = (r < bound) if side == "low" else (r > bound)
            beyond = np.count_nonzero(past & others) / ko
            ev["per_actor"].setdefault(x, {})[side] = {"bound": float(bound), "share_at_bound": pile,
                                                        "others_beyond": beyond}
            if at < MIN_PILE or not PILE_SHARE <= pile <= PILE_MAX or beyond < PASS_SHARE:
                continue
            rows = np.flatnonzero(mine & (r == bound))
            w = _where(ctx, rows)
            out.append(Anomaly(
                "REWARD_CLIPPED", "error",
                f"{pile:.1%} of {x!r}'s rewards sit exactly at {bound:.4g} (its {side}est; threshold "
                f"{PILE_SHARE:.0%}) while {beyond:.1%} of the other actors' rewards lie beyond it (threshold "
                f"{PASS_SHARE:.0%}), rows {w['rows']}: its rewards were clipped", actor=x, rows=w["rows"],
                episodes=w["episodes"],
                details=evidence("share of the actor's rewards exactly at its extreme (at least)", pile, PILE_SHARE,
                                 bound=float(bound), others_beyond=beyond, others_threshold=PASS_SHARE, **w)))
    return out, ev


# ----------------------------------------------------------------------------- REWARD_LAG
def _loo_error(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|y - its local linear prediction| from the nearest other rows in feature space ``x`` (leave one
    out): smooth reward functions are fitted to second order, so only a reward that belongs to
    another row leaves a large error."""
    m, p = x.shape
    k = min(m - 1, p + 12)
    _, j = cKDTree(x).query(x, k=k + 1)
    j = j[:, 1:]
    a = np.concatenate([np.ones((m, k, 1)), x[j] - x[:, None, :]], axis=2)
    ata = np.einsum("mki,mkj->mij", a, a)
    ata[:, 1:, 1:] += LOCAL_RIDGE * k * np.eye(p)  # a little ridge: neighbours may lie on a line
    coef = np.linalg.solve(ata, np.einsum("mki,mk->mi", a, y[j])[..., None])[..., 0]
    return np.abs(y - coef[:, 0])


def reward_lag(ctx: Context):
    """Per actor: do its rewards fit its own row (state, action, next state) better than the row before?"""
    if not ctx.has("episode", "done"):
        raise Skip("no episode/done columns: the previous row of an episode is unknown")
    fd = fit_data(ctx)
    s = fd.sample[fd.sample > 0]
    s = s[ctx.layout.pair_ok[s - 1]]

    def feats(rows):
        return np.concatenate([fd.state(rows), fd.next_state(rows), fd.action(rows)], axis=1)

    own_x, prev_x, y_all = feats(s), feats(s - 1), fd.rewards(s)[:, 0]
    ok = finite(own_x) & finite(prev_x) & np.isfinite(y_all)
    s, own_x, prev_x, y_all = s[ok], own_x[ok], prev_x[ok], y_all[ok]
    scale = Scaler(own_x) if s.size else None
    ev = {"threshold_ratio": LAG_RATIO, "threshold_spread": LAG_MIN_SPREAD, "per_actor": {}}
    out = []
    for i, x in enumerate(ctx.names):
        mine = spread(np.flatnonzero(ctx.codes[s] == i), LAG_ROWS)
        rows = s[mine]
        if rows.size < MIN_LAG_ROWS:
            continue
        y = y_all[mine]
        scatter = float(np.std(y))
        if scatter <= 1e-12:
            ev["per_actor"][x] = {"status": "the actor's rewards do not vary"}
            continue
        own = _loo_error(scale(own_x[mine]), y)
        lag = _loo_error(scale(prev_x[mine]), y)
        # medians: a few rows where the reward jumps (a goal, a fall) must not decide
        e_own, e_lag = float(np.median(own)), float(np.median(lag))
        ratio = e_own / max(e_lag, 1e-12 * scatter)
        ev["per_actor"][x] = {"own_row_error": e_own, "previous_row_error": e_lag, "ratio": ratio, "spread": scatter}
        if ratio <= LAG_RATIO or e_own < LAG_MIN_SPREAD * scatter:
            continue
        # where: the segments whose own-row error is also LAG_RATIO above the previous row's
        seg = ctx.seg[rows]
        worse = np.bincount(seg, own > lag, ctx.nseg)  # rows that fit the previous row better, per segment
        cnt = np.bincount(seg, minlength=ctx.nseg)
        flagged = np.flatnonzero((cnt > 0) & (worse > 0.5 * cnt))
        if not flagged.size:
            flagged = np.unique(seg)
        mask = np.zeros(ctx.n, bool)
        mask[1:] = ctx.layout.pair_ok
        w = _where(ctx, ctx.actor_rows(i, flagged[0], flagged[-1], mask))
        out.append(Anomaly(
            "REWARD_LAG", "error",
            f"{x!r}'s rewards fit the previous row of its episode better than their own: median error "
            f"{e_own:.4g} from its own row against {e_lag:.4g} from the previous one (ratio {ratio:.3g}, "
            f"threshold {LAG_RATIO:g}), rows {w['rows']}: rewards stored one step late", actor=x, rows=w["rows"],
            episodes=w["episodes"],
            details=evidence("median own-row over previous-row reward error of local linear fits (more than)", ratio,
                             LAG_RATIO, own_row_error=e_own, previous_row_error=e_lag, segments=flagged.tolist(),
                             segment_rows=ctx.seg_rows, **w)))
    if not ev["per_actor"]:
        raise Skip(f"no actor has {MIN_LAG_ROWS} sampled rows whose previous row is in the same episode "
                   "(interleaved environments store an episode's rows apart)")
    return out, ev

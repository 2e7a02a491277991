"""Per-actor distributions compared between actors and over time: the currency rewards are paid in
(sign and size), the actions an actor takes (histogram, entropy, collapse onto one action) and the
states it sees. Segments of ``Context.seg_rows`` rows localize a change that starts mid-run."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from ._anomalies import Anomaly
from ._context import Context, Skip, evidence, release_pages
from ._stats import num

SCALE_RATIO = 20.0    # typical non-zero |reward| of an actor against its reference
SIGN_SHARE = 0.05     # at most this share of an actor's non-zero rewards on the reference's side
MIN_REWARDS = 10      # non-zero rewards per segment and actor before they are compared
COLLAPSE_SHARE = 0.98  # one action's share of an actor's rows in a segment
OTHERS_SHARE = 0.8     # ... while the same action's share elsewhere stays at most this
MIN_ACTIONS = 30
FROZEN = 1e-6          # spread of a continuous action element that is frozen
MOVING = 1e-3          # ... and one that moves
STATE_STD_RATIO = 10.0
MIN_STATES = 50
MIN_SEGMENT_STATES = 20  # sampled rows of an actor, and of the others, in a segment before it is compared
STATE_ALPHA = 1e-3     # chance that an honest actor's states raise STATE_DISTRIBUTION, at most (Bonferroni)
LOCATING_ELEMENTS = 16  # differing elements from which a finding's segments are those of their median z


MEASURES = {"REWARD_SIGN": "share of positive non-zero rewards (at most, or at least 1 - it)",
            "REWARD_SCALE": "ratio of typical |reward| to the reference (more than)"}


def _groups(ctx: Context, values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Sums of ``values`` per (segment, actor): an array (segments, actors)."""
    known = valid & (ctx.codes < ctx.A)
    g = ctx.seg[known] * ctx.A + ctx.codes[known].astype(np.intp)
    return np.bincount(g, weights=values[known], minlength=ctx.nseg * ctx.A).reshape(ctx.nseg, ctx.A)


def reward_currency(ctx: Context):
    """Each actor's non-zero rewards against a reference: their sign and typical size (geometric mean)."""
    shape, size = (ctx.nseg, ctx.A), ctx.nseg * ctx.A
    cnt, slog, pos = np.zeros(size), np.zeros(size), np.zeros(size)
    for lo, hi in ctx.chunks():  # one group index for the three sums, chunk by chunk
        r, c = ctx.cols["reward"][lo:hi], ctx.codes[lo:hi]
        known = np.isfinite(r) & (r != 0) & (c < ctx.A)
        g = ctx.seg[lo:hi][known].astype(np.intp) * ctx.A + c[known]
        r = r[known]
        cnt += np.bincount(g, minlength=size)
        slog += np.bincount(g, weights=np.log(np.abs(r), dtype=np.float64), minlength=size)
        pos += np.bincount(g[r > 0], minlength=size)
    cnt, slog, pos = cnt.reshape(shape), slog.reshape(shape), pos.reshape(shape)
    env = ctx.env
    facts = env is not None and env.reward is not None
    # other actors of the same segment: the reference where no fact says what the environment pays
    tot_c, tot_l, tot_p = cnt.sum(1, keepdims=True), slog.sum(1, keepdims=True), pos.sum(1, keepdims=True)
    ref_cnt = tot_c - cnt
    ref_log = (tot_l - slog) / np.maximum(1, ref_cnt)
    ref_pos = (tot_p - pos) / np.maximum(1, ref_cnt)
    source = {"REWARD_SIGN": "the other actors' rewards in the same segment",
              "REWARD_SCALE": "the other actors' rewards in the same segment"}
    sign_cnt = ref_cnt
    if facts:
        source = dict.fromkeys(source, f"{env.env_id} pays {env.reward:g} per step")
        ref_log = np.full((ctx.nseg, ctx.A), math.log(abs(env.reward)))
        ref_pos = np.full((ctx.nseg, ctx.A), 1.0 if env.reward > 0 else 0.0)
        ref_cnt = sign_cnt = np.full((ctx.nseg, ctx.A), np.inf)
    elif env is not None and env.reward_range is not None and (env.reward_range[0] >= 0 or env.reward_range[1] <= 0):
        lo, hi = env.reward_range
        source["REWARD_SIGN"] = f"the environment's reward range [{lo:g}, {hi:g}] ({env.sources.get('reward_range')})"
        ref_pos = np.full((ctx.nseg, ctx.A), 1.0 if lo >= 0 else 0.0)
        sign_cnt = np.full((ctx.nseg, ctx.A), np.inf)
    my_log = slog / np.maximum(1, cnt)
    my_pos = pos / np.maximum(1, cnt)
    ratio = np.exp(np.abs(my_log - ref_log))
    low, high = SIGN_SHARE, 1 - SIGN_SHARE
    sign_ok = (cnt >= MIN_REWARDS) & (sign_cnt >= MIN_REWARDS)
    ok = (cnt >= MIN_REWARDS) & (ref_cnt >= MIN_REWARDS)
    flip = sign_ok & (((my_pos <= low) & (ref_pos >= high)) | ((my_pos >= high) & (ref_pos <= low)))
    scaled = ok & ~flip & (ratio > SCALE_RATIO)
    total = cnt.sum(0)
    ev = {"reference": source, "threshold_ratio": SCALE_RATIO, "threshold_sign_share": SIGN_SHARE,
          "per_actor": {x: {"nonzero": int(total[i]),
                            "typical_abs": num(math.exp(slog[:, i].sum() / total[i])) if total[i] else None,
                            "positive_share": num(pos[:, i].sum() / total[i]) if total[i] else None}
                        for i, x in enumerate(ctx.names)}}
    out = []
    ambiguous_said = set()
    for code, matrix, stat, moved, vs_others in (
            ("REWARD_SIGN", flip, my_pos, 0.5, not np.isinf(sign_cnt).all()),
            ("REWARD_SCALE", scaled, my_log, math.log(math.sqrt(SCALE_RATIO)), not np.isinf(ref_cnt).all())):
        for i in range(ctx.A):
            segs = np.flatnonzero(matrix[:, i])
            if not segs.size:
                continue
            culprit = _culprit(ctx, i, matrix, stat, cnt, ok, moved, vs_others, code == "REWARD_SIGN")
            if culprit is False or (culprit is None and code in ambiguous_said):
                continue
            if culprit is None:
                ambiguous_said.add(code)
            out.append(_reward_finding(ctx, code, i, segs, culprit, ref_pos, ref_log, ratio, my_pos, my_log,
                                       source[code]))
    return out, ev


def _culprit(ctx, i, matrix, stat, cnt, ok, moved, vs_others, sign):
    """Whether actor ``i``, flagged against the other actors, is the one whose rewards changed: True,
    False (the others changed), or None (two actors differing throughout: no fact says which)."""
    if not vs_others:
        return True  # judged against the environment's own facts
    mask = matrix[:, i]
    rest = ok[:, i] & ~mask
    if rest.any():
        w_in, w_out = cnt[mask, i], cnt[rest, i]
        before = float((stat[rest, i] * w_out).sum() / max(1, w_out.sum()))
        during = float((stat[mask, i] * w_in).sum() / max(1, w_in.sum()))
        return abs(during - before) > moved
    if ctx.A >= 3:
        return True
    env = ctx.env
    if sign and env is not None and env.reward_threshold:
        # two actors paid in opposite signs throughout: the registry's solved return says which sign the
        # environment pays (Acrobot -100, MountainCar -110, CartPole 475); the actor on the other side changed
        share = float((stat[:, i] * cnt[:, i]).sum() / max(1, cnt[:, i].sum()))
        return (share >= 0.5) != (env.reward_threshold > 0)
    return None


def _reward_finding(ctx, code, i, segs, culprit, ref_pos, ref_log, ratio, my_pos, my_log, source):
    x = ctx.names[i]
    what = "the opposite sign of" if code == "REWARD_SIGN" else "another scale than"
    mine = ctx.actor_rows(i, segs[0], segs[-1])
    r = ctx.cols["reward"][mine]
    nz = np.isfinite(r) & (r != 0)
    mine, r = mine[nz], r[nz]
    if code == "REWARD_SIGN":
        off = mine[(r > 0) != (ref_pos[ctx.seg[mine], i] >= 0.5)]
    else:
        logabs = np.log(np.abs(r), dtype=np.float64)
        off = mine[np.abs(logabs - ref_log[ctx.seg[mine], i]) > math.log(math.sqrt(SCALE_RATIO))]
    rows = off if off.size else mine
    w = ctx.where(rows)
    k = int(segs[0])
    value = float(ratio[k, i]) if code == "REWARD_SCALE" else float(my_pos[k, i])
    who = repr(x) if culprit else f"{list(ctx.names)} (one against the other"
    tail = "" if culprit else ("; they differ in every segment and no fact says which is right: declare the "
                               "environment's reward_range (metadata env block or --env-facts) to name the actor)")
    return Anomaly(
        code, "error",
        f"rewards of {who} are paid in {what} the reference ({source}) in {segs.size} of {ctx.nseg} "
        f"segments, rows {w['rows']}: typical |reward| {math.exp(my_log[k, i]):.4g} against "
        f"{math.exp(ref_log[k, i]):.4g}, positive share {my_pos[k, i]:.2f} against {ref_pos[k, i]:.2f}{tail}",
        actor=x if culprit else None, rows=w["rows"], episodes=w["episodes"],
        details=evidence(MEASURES[code], value, SCALE_RATIO if code == "REWARD_SCALE" else SIGN_SHARE,
                         segments=segs.tolist(), segment_rows=ctx.seg_rows, **w))


def _entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in nats over the last axis (0 log 0 = 0)."""
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(-1)


def action_collapse(ctx: Context):
    """Per-actor histograms of the discrete action per segment; a collapse onto one action that the
    other actors (same segment) or the same actor (other segments) do not show."""
    act = ctx.cols["discrete_action"]
    if act.size and (act.min() < 0 or act.max() > 1024):
        raise Skip(f"discrete actions outside [0, 1024] (min {act.min()}, max {act.max()}): not a histogram")
    K = int(act.max()) + 1 if act.size else 1
    h = np.zeros(ctx.nseg * ctx.A * K, np.int64)
    for lo, hi in ctx.chunks():  # counts chunk by chunk: the group index is 8 bytes a row
        c = ctx.codes[lo:hi]
        known = c < ctx.A
        g = (ctx.seg[lo:hi][known].astype(np.intp) * ctx.A + c[known]) * K + act[lo:hi][known]
        h += np.bincount(g, minlength=h.size)
    h = h.reshape(ctx.nseg, ctx.A, K).astype(np.float64)
    tot = h.sum(2)
    share = h / np.maximum(1, tot)[..., None]
    top = share.argmax(2)
    collapsed = (tot >= MIN_ACTIONS) & (share.max(2) >= COLLAPSE_SHARE)
    whole = h.sum(0)
    p = whole / np.maximum(1, whole.sum(1, keepdims=True))
    ent, seg_ent = _entropy(p), _entropy(share)
    ev = {"per_actor": {x: {"histogram": whole[i].astype(int).tolist(), "entropy_nats": num(ent[i]),
                            "segment_entropy": [num(v) for v in seg_ent[:, i]]}
                        for i, x in enumerate(ctx.names)},
          "threshold_share": COLLAPSE_SHARE, "others_at_most": OTHERS_SHARE}
    out = []
    for i, x in enumerate(ctx.names):
        flagged = []
        for k in np.flatnonzero(collapsed[:, i]).tolist():
            a = top[k, i]
            others = h[k, :, a].sum() - h[k, i, a], tot[k].sum() - tot[k, i]
            mine = h[~collapsed[:, i], i, a].sum(), tot[~collapsed[:, i], i].sum()
            vs_others = others[1] >= MIN_ACTIONS and others[0] / others[1] <= OTHERS_SHARE
            vs_itself = mine[1] >= MIN_ACTIONS and mine[0] / mine[1] <= OTHERS_SHARE
            if vs_others or vs_itself:
                flagged.append((k, int(a), vs_others, vs_itself))
        if not flagged:
            continue
        rows = ctx.actor_rows(i, flagged[0][0], flagged[-1][0])
        w = ctx.where(rows)
        k, a = flagged[0][0], flagged[0][1]
        out.append(Anomaly(
            "ACTION_COLLAPSE", "error",
            f"{x!r} takes action {a} in {share[k, i, a]:.1%} of its rows (threshold {COLLAPSE_SHARE:.0%}) in "
            f"{len(flagged)} of {ctx.nseg} segments, rows {w['rows']}, while "
            + ("the other actors do not" if flagged[0][2] else "its other segments do not")
            + f" (at most {OTHERS_SHARE:.0%}): its behaviour collapsed", actor=x, rows=w["rows"],
            episodes=w["episodes"],
            details=evidence("share of the actor's rows on one action in a segment (at least)",
                             float(share[k, i, a]), COLLAPSE_SHARE, action=a,
                             segments=[f[0] for f in flagged], segment_rows=ctx.seg_rows, **w)))
    return out + _continuous_collapse(ctx, ev), ev


def _continuous_collapse(ctx: Context, ev: dict) -> list:
    """A continuous action element frozen at one value for an actor in a segment (spread 0) where
    the other actors in that segment, or the same actor elsewhere, vary."""
    if not ctx.has("continuous_action") or not ctx.store.schema["continuous_action"].shape \
            or ctx.store.schema["continuous_action"].shape[0] == 0:
        return []
    k = int(np.prod(ctx.store.schema["continuous_action"].shape))
    size = ctx.nseg * ctx.A
    cnt, s1, s2 = np.zeros(size), np.zeros((k, size)), np.zeros((k, size))
    for lo, hi in ctx.chunks():  # the column chunk by chunk: a float64 copy of it was 8 bytes a row per element
        c = ctx.store.read(["continuous_action"], lo, hi)["continuous_action"].astype(np.float64).reshape(hi - lo, k)
        release_pages(ctx.store)
        codes = ctx.codes[lo:hi]
        known = np.isfinite(c).all(axis=1) & (codes < ctx.A)
        g = ctx.seg[lo:hi][known].astype(np.intp) * ctx.A + codes[known]
        c = c[known]
        cnt += np.bincount(g, minlength=size)
        for j in range(k):
            s1[j] += np.bincount(g, weights=c[:, j], minlength=size)
            s2[j] += np.bincount(g, weights=c[:, j] ** 2, minlength=size)
    cnt = cnt.reshape(ctx.nseg, ctx.A)
    out = []
    spread = np.zeros((ctx.nseg, ctx.A, k))
    for j in range(k):
        m1, m2 = s1[j].reshape(cnt.shape) / np.maximum(1, cnt), s2[j].reshape(cnt.shape) / np.maximum(1, cnt)
        spread[:, :, j] = np.sqrt(np.maximum(0.0, m2 - m1 ** 2))
    ev["continuous_spread"] = {x: [[num(v) for v in spread[k, i]] for k in range(ctx.nseg)]
                               for i, x in enumerate(ctx.names)}
    for i, x in enumerate(ctx.names):
        stuck = (cnt[:, i, None] >= MIN_ACTIONS) & (spread[:, i] <= FROZEN)
        others = (cnt.sum(1) - cnt[:, i])[:, None] >= MIN_ACTIONS
        varies_elsewhere = ((cnt[:, i, None] >= MIN_ACTIONS) & (spread[:, i] > MOVING)).any(axis=0)
        other_spread = np.delete(spread, i, axis=1).max(axis=1) if ctx.A > 1 else np.zeros_like(spread[:, 0])
        flagged = stuck & ((others & (other_spread > MOVING)) | varies_elsewhere[None, :])
        segs = np.flatnonzero(flagged.any(axis=1))
        if not segs.size:
            continue
        j = int(np.flatnonzero(flagged[segs[0]])[0])
        rows = ctx.actor_rows(i, segs[0], segs[-1])
        w = ctx.where(rows)
        held = float(ctx.store.gather(rows[:1], ["continuous_action"])["continuous_action"].reshape(-1)[j])
        out.append(Anomaly(
            "ACTION_COLLAPSE", "error",
            f"{x!r} holds continuous action element {j} at {held:.4g} (spread {spread[segs[0], i, j]:.2g}, "
            f"threshold {FROZEN:g}) in {segs.size} of {ctx.nseg} segments, rows {w['rows']}, where the other "
            f"actors or its other segments vary (spread above {MOVING:g}): its behaviour collapsed", actor=x,
            rows=w["rows"], episodes=w["episodes"],
            details=evidence("spread of a continuous action element in a segment (at most)",
                             float(spread[segs[0], i, j]), FROZEN, element=j, segments=segs.tolist(),
                             segment_rows=ctx.seg_rows, **w)))
    return out


def _differ(s1, s2, c, o1, o2, oc):
    """Per element: the mean and spread of one set of moments (sums, sums of squares, count) and of
    another, the ratio of their spreads and the shift of their means in the larger spread."""
    mean, om = s1 / max(1, c), o1 / max(1, oc)
    std = np.sqrt(np.maximum(0.0, s2 / max(1, c) - mean ** 2))
    ostd = np.sqrt(np.maximum(0.0, o2 / max(1, oc) - om ** 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((std > 0) & (ostd > 0), np.maximum(std / ostd, ostd / std), 1.0)
        shift = np.nan_to_num(np.abs(mean - om) / np.maximum(std, ostd), nan=0.0, posinf=np.inf)
    return mean, std, om, ostd, ratio, shift


def _inside_bounds(ctx: Context, ev: dict) -> np.ndarray:
    """(A, D): the actor's values of the element all lie inside the observation space's bounds. Such an
    element differing between actors is behaviour (an expert holding a pendulum upright sees a narrow
    band of angles), not states stored in another frame, which leave the space."""
    rp, env = ctx.rows, ctx.env
    out = np.zeros((ctx.A, rp.width), bool)
    if env is None or env.obs_low is None or env.obs_low.size != rp.width or rp.amin is None:
        ev["bounds"] = "no observation bounds known: a narrower or wider spread alone is a finding"
        return out
    lo, hi = env.obs_low.reshape(-1), env.obs_high.reshape(-1)
    slack = 1e-6 * np.maximum(1.0, np.where(np.isfinite(hi - lo), np.abs(hi - lo), 1.0))
    out = (rp.amin >= lo - slack) & (rp.amax <= hi + slack)
    ev["bounds"] = f"elements inside the observation space ({env.sources.get('observation')}) are not compared"
    return out


def _null_moments(ctx: Context):
    """Per segment, every actor's sampled rows together: rows and runs (segments,), mean, second
    central moment, and the sums over runs of the squared run totals of ``x - mean`` and of
    ``(x - mean)^2 - m2`` (segments, D)."""
    rp = ctx.rows
    n = rp.seg_count.reshape(ctx.nseg, ctx.A).sum(1).astype(np.float64)
    runs = rp.run_count.reshape(ctx.nseg, ctx.A).sum(1).astype(np.float64)
    t1 = rp.seg_sum.reshape(ctx.nseg, ctx.A, -1).sum(1)
    t2 = rp.seg_sumsq.reshape(ctx.nseg, ctx.A, -1).sum(1)
    q = np.maximum(1.0, n)[:, None]
    mu, e2 = t1 / q, t2 / q
    m2 = np.maximum(0.0, e2 - mu ** 2)
    # rounding leaves a constant element a spread of ~1e-16 of its square: none at all
    m2[m2 <= 1e-12 * (mu ** 2 + 1e-300)] = 0.0
    s11, s22, s12, sm1, sm2 = (rp.run_sums[:, k] for k in range(5))
    mm = rp.run_m2[:, None]
    b = mu ** 2 - m2  # a run's total of (x - mu)^2 - m2 is T2 - 2 mu T1 + m b
    y1 = np.maximum(0.0, s11 - 2 * mu * sm1 + mu ** 2 * mm)
    y2 = np.maximum(0.0, s22 + 4 * mu ** 2 * s11 + b ** 2 * mm - 4 * mu * s12 + 2 * b * sm2 - 4 * mu * b * sm1)
    return n, runs, mu, m2, y1, y2


def _tests(null, c, r, a1, a2):
    """The actor's deviations from each segment's mean, and their variances had its runs been drawn at
    random from the segment's runs (without replacement): for the mean, the sum of ``x - mu`` over
    the actor's rows; for the spread, the sum of ``(x - mu)^2 - m2``. Arrays (segments, D); summed
    over segments they stay centred, so a window of segments is tested by adding them (stratified by
    segment: a drift over the run is no finding). Drawing runs, not rows: an actor that plays whole
    episodes sees states that hang together, and its rows are no sample of independent draws."""
    n, runs, mu, m2, y1, y2 = null
    c = c.astype(np.float64)[:, None]
    R, r = runs[:, None], r.astype(np.float64)[:, None]
    f = np.where(R > 1, r * (R - r) / np.maximum(1.0, R - 1) / np.maximum(1.0, R), 0.0)
    dm = a1 - c * mu
    dv = a2 - 2 * mu * a1 + c * mu ** 2 - c * m2
    return dm, f * y1, dv, f * y2


def _windows(ctx: Context, cnt, ocnt):
    """The windows of consecutive segments compared: ``(first, stop)`` with enough sampled rows of the
    actor and of the others."""
    ca, co = np.concatenate([[0], np.cumsum(cnt)]), np.concatenate([[0], np.cumsum(ocnt)])
    return [(a, b) for a in range(ctx.nseg) for b in range(a + 1, ctx.nseg + 1)
            if ca[b] - ca[a] >= MIN_SEGMENT_STATES and co[b] - co[a] >= MIN_SEGMENT_STATES]


def _z(d, v):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(v > 0, d / np.sqrt(v), 0.0)


def _actor_windows(ctx: Context, i: int, null, skip: np.ndarray):
    """Every window in which actor ``i``'s states differ from the other actors': ``(first, stop,
    elements, z of each, whether the spread (not the mean) differs, effect of each, moments)``; the z
    threshold that held; and the per-segment deviations and variances (``_tests``)."""
    rp = ctx.rows
    sc = rp.seg_count.reshape(ctx.nseg, ctx.A)
    ss1 = rp.seg_sum.reshape(ctx.nseg, ctx.A, -1)
    ss2 = rp.seg_sumsq.reshape(ctx.nseg, ctx.A, -1)
    cnt = sc[:, i]
    ocnt = sc.sum(1) - cnt
    a1, a2 = ss1[:, i], ss2[:, i]
    o1, o2 = ss1.sum(1) - a1, ss2.sum(1) - a2
    wins = _windows(ctx, cnt, ocnt)
    compared = int((~skip).sum())
    if not wins or not compared:
        return [], None, None
    zc = _z_threshold(2 * compared * len(wins))

    def cum(a):
        return np.concatenate([np.zeros((1,) + a.shape[1:]), np.cumsum(a, axis=0)])

    tests = _tests(null, cnt, rp.run_count.reshape(ctx.nseg, ctx.A)[:, i], a1, a2)
    parts = [cum(a) for a in (a1, a2, o1, o2) + tests]
    ca, co = cum(cnt.astype(np.float64)), cum(ocnt.astype(np.float64))
    found = []
    for a, b in wins:
        w1, w2, x1, x2, dm, vm, dv, vv = (p[b] - p[a] for p in parts)
        mean, std, om, ostd, ratio, shift = _differ(w1, w2, ca[b] - ca[a], x1, x2, co[b] - co[a])
        zm, zv = _z(dm, vm), _z(dv, vv)
        spread = (ratio > STATE_STD_RATIO) & (np.abs(zv) > zc)
        hit = spread | ((shift > STATE_STD_RATIO) & (np.abs(zm) > zc))
        hit &= ~skip
        if hit.any():
            j = np.flatnonzero(hit)
            z = np.where(spread[j], zv[j], zm[j])
            found.append((a, b, j, z, spread[j], np.maximum(ratio, shift)[j], (mean[j], std[j], om[j], ostd[j])))
    return found, zc, tests


def _z_threshold(tests: int) -> float:
    """|z| that a standard normal passes with probability STATE_ALPHA / ``tests`` (Bonferroni)."""
    return -NormalDist().inv_cdf(STATE_ALPHA / (2 * tests))


def _segments_of(ctx: Context, i: int, elements: np.ndarray, z: np.ndarray, spread: np.ndarray, tests) -> list:
    """The segments where the finding lies, among those with enough rows of the actor and of the others.
    Of LOCATING_ELEMENTS differing elements or more (``elements``, their z ``z`` in the window where
    most differ, of the spread where ``spread``): those whose median z over them, same sign as the
    window's, is 1 or more (one segment holds a fraction of the window's evidence: a 10x difference
    can hide in a segment's few rows, as it did on flat frames). Of fewer: those where at least half
    of them differ 10x (a single segment's z of one element is no steadier than chance)."""
    rp = ctx.rows
    sc = rp.seg_count.reshape(ctx.nseg, ctx.A)
    ss1 = rp.seg_sum.reshape(ctx.nseg, ctx.A, -1)[:, :, elements]
    ss2 = rp.seg_sumsq.reshape(ctx.nseg, ctx.A, -1)[:, :, elements]
    dm, vm, dv, vv = (t[:, elements] for t in tests)
    out = []
    for k in range(ctx.nseg):
        ock = sc[k].sum() - sc[k, i]
        if sc[k, i] < MIN_SEGMENT_STATES or ock < MIN_SEGMENT_STATES:
            continue
        if elements.size >= LOCATING_ELEMENTS:
            zk = np.where(spread, _z(dv[k], vv[k]), _z(dm[k], vm[k])) * np.sign(z)
            if np.median(zk) >= 1.0:
                out.append(k)
            continue
        *_, ratio, shift = _differ(ss1[k, i], ss2[k, i], sc[k, i], ss1[k].sum(0) - ss1[k, i],
                                   ss2[k].sum(0) - ss2[k, i], ock)
        if 2 * (np.maximum(ratio, shift) > STATE_STD_RATIO).sum() >= elements.size:
            out.append(k)
    return out


def _apart_from_each(ctx: Context, found: list) -> list:
    """Of three actors or more, several are flagged when one's states changed: each is compared with
    the others pooled, the changed one among them. An actor's distance from each other actor, one by
    one, in its finding's window and elements (median over them of the spread ratio or mean shift),
    at its nearest: the changed actor is far from every other, an honest one near another honest one
    -- though not always under 10x, as its elements were chosen where it looked apart. The findings
    kept are those of actors at least half as far as the farthest, when that one is 10x apart;
    otherwise every finding stays."""
    if ctx.A < 3 or len(found) < 2:
        return found
    rp = ctx.rows
    sc = rp.seg_count.reshape(ctx.nseg, ctx.A)
    ss1 = rp.seg_sum.reshape(ctx.nseg, ctx.A, -1)
    ss2 = rp.seg_sumsq.reshape(ctx.nseg, ctx.A, -1)

    def nearest(i, a, b, j):
        c, s1, s2 = sc[a:b].sum(0), ss1[a:b][:, :, j].sum(0), ss2[a:b][:, :, j].sum(0)
        far = [np.median(np.maximum(*_differ(s1[i], s2[i], c[i], s1[k], s2[k], c[k])[-2:]))
               for k in range(ctx.A) if k != i and c[k] >= MIN_SEGMENT_STATES]
        return min(far, default=0.0)

    d = [nearest(*f[:4]) for f in found]
    if max(d) <= STATE_STD_RATIO:
        return found
    return [f for f, x in zip(found, d) if x >= max(d) / 2]


def _own_change(ctx: Context, i: int, segs: list, elements: np.ndarray) -> float | None:
    """How much actor ``i``'s own states in segments ``segs`` differ from its states in the others: the
    median over ``elements`` of the spread ratio or mean shift; None without MIN_STATES rows on both sides."""
    rp = ctx.rows
    cnt = rp.seg_count.reshape(ctx.nseg, ctx.A)[:, i]
    s1 = rp.seg_sum.reshape(ctx.nseg, ctx.A, -1)[:, i][:, elements]
    s2 = rp.seg_sumsq.reshape(ctx.nseg, ctx.A, -1)[:, i][:, elements]
    inn = np.zeros(ctx.nseg, bool)
    inn[segs] = True
    if cnt[inn].sum() < MIN_STATES or cnt[~inn].sum() < MIN_STATES:
        return None
    *_, ratio, shift = _differ(s1[inn].sum(0), s2[inn].sum(0), cnt[inn].sum(), s1[~inn].sum(0), s2[~inn].sum(0),
                               cnt[~inn].sum())
    return float(np.median(np.maximum(ratio, shift)))


def state_statistics(ctx: Context):
    """Per-actor mean and spread of each state element, each actor against the others pooled, in
    every window of consecutive segments (the whole store, each segment, and the runs between:
    a change that starts or ends mid-run is strongest in its own window).

    An element differs in a window when both hold: (1) its spread, or its mean shift in the larger
    spread, differs STATE_STD_RATIO times from the others' -- states in another frame, not
    behaviour; (2) the difference is beyond chance: the actor's deviations from each segment's mean
    (of the mean, and of the squared deviations for the spread), summed over the window, against
    their variance had the actor's runs of rows been drawn at random from the segment's runs
    (``_tests``), pass the |z| that a normal passes with probability STATE_ALPHA over every
    element, window and statistic compared (Bonferroni).

    (1) alone raised false alarms on wide states. On 84x84x4 frames a sprite lights a pixel in a few
    rows of a 150-row segment; an actor holding a quarter of the rows often sees none of them (a
    10x narrower spread by chance), and of 28k pixels some did in every segment. The test's
    variance comes from the run totals themselves: a sparse pixel's are heavy-tailed, and missing
    its few lit rows is a small z. Of 160 honest stores of 16x16 to 84x84 stacks (noisy and flat
    frames, tags per row and per episode) the 10x test alone flagged 70, this one none; it finds
    stacks transposed, stored on the other axis or inverted, from the start or from mid-run
    (tests/analysis/test_audit_images.py). What a 10x test cannot see it does not find either: frames
    at half their values (2x) are not flagged. Drawing runs, not rows, keeps an actor that plays
    whole episodes (rows that hang together) from passing for many independent draws; with few
    episodes per actor (under about 30) nothing is then claimed for a single element. Chosen over
    counting an element only when it differs in most segments: a pixel lit once or twice a segment
    is missed by a quarter of the rows in over half of the segments, consistency or not.

    Per pixel, a sprite that one actor's play keeps out of a region looks like a frame mix-up: on
    noisy frames with enough episodes that is a finding (declaring the observation space's bounds
    leaves in-bounds elements alone, ``_inside_bounds``).

    A finding names the segments where the elements differing in its window (the one where most
    differ) differ too (``_segments_of``), and the actor: of two, the one holding fewer rows unless
    only the other's own states changed there (``_own_change``); of three or more, those apart from
    every other one (``_apart_from_each``)."""
    rp = ctx.rows
    sc = rp.seg_count.reshape(ctx.nseg, ctx.A)
    c = sc.sum(0)
    s1 = rp.seg_sum.reshape(ctx.nseg, ctx.A, -1).sum(0)
    s2 = rp.seg_sumsq.reshape(ctx.nseg, ctx.A, -1).sum(0)
    if ctx.A < 2 or (c >= MIN_STATES).sum() < 2:
        raise Skip(f"fewer than two actors with {MIN_STATES} rows or more: nothing to compare states with")
    # (the evidence's keys are those of recorded golden reports: the z threshold is in each finding's details)
    ev = {"per_actor": {}, "threshold_std_ratio": STATE_STD_RATIO,
          "elements_listed": min(16, rp.width), "sampled_rows": int(c.sum())}
    inside = _inside_bounds(ctx, ev)
    null = _null_moments(ctx)
    out = []
    for i, x in enumerate(ctx.names):
        oc = c.sum() - c[i]
        mean, std, *_ = _differ(s1[i], s2[i], c[i], s1.sum(0) - s1[i], s2.sum(0) - s2[i], oc)
        ev["per_actor"][x] = {"rows": int(c[i]), "mean": [num(v) for v in mean[:16]],
                              "std": [num(v) for v in std[:16]]}
        # with two actors both differ from each other: the one holding fewer rows is compared (and named,
        # unless only the other's own states changed: _own_change)
        if c[i] < MIN_STATES or oc < MIN_STATES or (ctx.A == 2 and c[i] > oc):
            continue
        found, zc, tests = _actor_windows(ctx, i, null, inside[i])
        if not found:
            continue
        elements = np.unique(np.concatenate([f[2] for f in found]))
        # the window holding most differing elements (then the strongest): its element of largest |z|
        a, b, j_in, z, spread, score, moments = max(found, key=lambda f: (f[2].size, np.abs(f[3]).sum()))
        segs = _segments_of(ctx, i, j_in, z, spread, tests) or list(range(a, b))
        z = np.abs(z)
        t = int(np.argmax(z))
        j = int(j_in[t])
        m, s, om, os_ = (v[t] for v in moments)
        named = "fewer rows" if ctx.A == 2 else "against the others"
        mine, theirs = (_own_change(ctx, k, segs, j_in) for k in (i, 1 - i)) if ctx.A == 2 else (None, None)
        if mine is not None and theirs is not None and theirs > 2 * mine:
            # two actors: the one whose own states changed where they differ is the one to name
            i, x, named, (m, s, om, os_) = 1 - i, ctx.names[1 - i], "own change", (om, os_, m, s)
        rows = ctx.actor_rows(i, segs[0], segs[-1])
        w = ctx.where(rows)
        out.append((i, a, b, j_in, Anomaly(
            "STATE_DISTRIBUTION", "error",
            f"states of {x!r} differ from the other actors' in {elements.size} of {rp.width} element(s) and in "
            f"{len(segs)} of {ctx.nseg} segments: element {j} has mean {m:.4g} and std {s:.4g} against "
            f"{om:.4g} and {os_:.4g} in rows {w['rows']} (threshold {STATE_STD_RATIO:g}x, beyond chance at "
            f"|z| {z[t]:.3g} > {zc:.3g}): one actor's states are stored in another frame", actor=x, rows=w["rows"],
            episodes=w["episodes"],
            details=evidence("ratio of spreads, or mean shift in spreads (more than)",
                             float(score[t]), STATE_STD_RATIO, elements=elements[:16].tolist(), segments=segs,
                             segment_rows=ctx.seg_rows, z=float(z[t]), z_threshold=zc, window=[int(a), int(b)],
                             named_by=named, **w))))
    return [f[-1] for f in _apart_from_each(ctx, out)], ev

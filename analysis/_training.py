"""Statistics of the training telemetry: per-actor batch shares, TD errors and Q values over
training steps, and the test of batch composition against the buffer it was drawn from."""

from __future__ import annotations

import numpy as np

from ._stats import code_counts, describe, histograms, num

NO_TELEMETRY = "no telemetry"
TREND_BUCKETS = 20


def _weighted(values: np.ndarray, weights: np.ndarray) -> float | None:
    ok = np.isfinite(values) & (weights > 0)
    w = weights[ok]
    return num((values[ok] * w).sum() / w.sum()) if w.sum() > 0 else None


def steps_section(raw: dict | None, names) -> dict:
    """Summary of ``train_steps``: per-actor batch counts, weighted TD/Q means, and their trend
    over ``TREND_BUCKETS`` equal slices of the training steps."""
    if raw is None or len(raw["step"]) == 0:
        return {"status": NO_TELEMETRY}
    step, counts = raw["step"], raw["batch_count"].astype(np.int64)
    n = len(step)
    total = counts.sum(axis=0)
    per_actor = {
        x: {"batch_count": int(total[i]), "batch_fraction": num(total[i] / max(1, total.sum())),
            "td_abs_mean": _weighted(raw["td_abs_mean"][:, i].astype(np.float64), counts[:, i]),
            "q_mean": _weighted(raw["q_mean"][:, i].astype(np.float64), counts[:, i]),
            "reward_mean": _weighted(raw["reward_mean"][:, i].astype(np.float64), counts[:, i])}
        for i, x in enumerate(names)
    }
    k = min(TREND_BUCKETS, n)
    cuts = np.linspace(0, n, k + 1).astype(int)
    trend = {"step_start": [], "step_stop": [], "loss": [], "batch_fractions": {x: [] for x in names},
             "td_abs_mean": {x: [] for x in names}, "q_mean": {x: [] for x in names}}
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        c = counts[lo:hi]
        tot = c.sum()
        trend["step_start"].append(int(step[lo]))
        trend["step_stop"].append(int(step[hi - 1]) + 1)
        loss = raw["loss"][lo:hi].astype(np.float64)
        trend["loss"].append(num(loss[np.isfinite(loss)].mean()) if np.isfinite(loss).any() else None)
        for i, x in enumerate(names):
            trend["batch_fractions"][x].append(num(c[:, i].sum() / tot) if tot else None)
            trend["td_abs_mean"][x].append(_weighted(raw["td_abs_mean"][lo:hi, i].astype(np.float64), c[:, i]))
            trend["q_mean"][x].append(_weighted(raw["q_mean"][lo:hi, i].astype(np.float64), c[:, i]))
    return {"status": "ok", "steps": {"count": n, "first": int(step[0]), "last": int(step[-1])},
            "loss": describe(raw["loss"]), "per_actor": per_actor, "trend": trend}


def samples_section(raw: dict | None, names, transition_codes: np.ndarray) -> dict:
    """Per-actor TD-error and Q distributions from ``train_samples``, and a cross-check of each
    sample's actor against the actor stored at its row."""
    if raw is None or len(raw["step"]) == 0:
        return {"status": NO_TELEMETRY}
    a = len(names)
    codes, td, q = raw["actor"], raw["td_error"].astype(np.float64), raw["q"].astype(np.float64)
    per_actor = {}
    for i, x in enumerate(names):
        sel = codes == i
        per_actor[x] = {"td_error": describe(td[sel]), "td_abs": describe(np.abs(td[sel])), "q": describe(q[sel])}
    rows = raw["row"]
    inside = (rows >= 0) & (rows < len(transition_codes))
    mism = np.zeros(len(rows), bool)
    mism[inside] = transition_codes[rows[inside]] != codes[inside]
    return {
        "status": "ok", "count": int(len(codes)),
        "steps": {"first": int(raw["step"][0]), "last": int(raw["step"][-1])},
        "counts": {x: int(c) for x, c in zip(names, code_counts(codes, a)[:a])},
        "unknown_codes": int((codes >= a).sum()),
        "per_actor": per_actor,
        "td_abs_histogram": histograms({x: np.abs(td[codes == i]) for i, x in enumerate(names)}, log=True),
        "q_histogram": histograms({x: q[codes == i] for i, x in enumerate(names)}),
        "rows_outside_store": int((~inside).sum()),
        "actor_mismatch": {"count": int(mism.sum()),
                           "first_rows": rows[mism][:10].tolist()},
    }


def batch_vs_buffer(raw: dict | None, names, codes: np.ndarray, times: np.ndarray, window: int,
                    declared: dict | None = None) -> dict:
    """Observed batch counts per actor against what sampling from the buffer would give.

    Expected shares: ``declared`` (e.g. a stratified sampler's ``actor_fractions``) when given;
    otherwise the replay window as it stood at each training step, rebuilt from the rows' append
    times (rows ``[max(0, N_t - window), N_t)`` where ``N_t`` rows were appended by the step's
    time); otherwise, when row times are not ordered, the final replay window. The test is a
    chi-square goodness of fit of the summed counts (scipy.stats.chisquare).
    """
    if raw is None or len(raw["step"]) == 0:
        return {"status": NO_TELEMETRY}
    a = len(names)
    counts = raw["batch_count"].astype(np.int64)
    b = counts.sum(axis=1)
    if declared:
        p = np.array([float(declared.get(x, 0.0)) for x in names])
        exp_frac = np.broadcast_to(p / p.sum(), counts.shape)
        method = "declared actor_fractions"
        used = np.ones(len(b), bool)
    elif len(times) and np.all(times[1:] >= times[:-1]):
        onehot_cum = np.zeros((len(codes) + 1, a), np.int64)
        for i in range(a):
            np.cumsum(codes == i, out=onehot_cum[1:, i])
        n_t = np.searchsorted(times, raw["time"], side="right")
        lo = np.maximum(0, n_t - window)
        size = n_t - lo
        used = size > 0
        exp_frac = (onehot_cum[n_t] - onehot_cum[lo]) / np.maximum(1, size)[:, None]
        method = "replay window at each training step, rebuilt from row append times"
    else:
        lo = max(0, len(codes) - window)
        c = code_counts(codes[lo:], a)[:a]
        exp_frac = np.broadcast_to(c / max(1, c.sum()), counts.shape)
        method = "final replay window (row times are not ordered)"
        used = np.ones(len(b), bool)
    observed = counts[used].sum(axis=0)
    expected = (exp_frac[used] * b[used, None]).sum(axis=0)
    tot = observed.sum()
    obs_f = observed / tot if tot else np.full(a, np.nan)
    exp_f = expected / expected.sum() if expected.sum() else np.full(a, np.nan)
    chi2, p_value = _chisquare(observed, expected)
    return {
        "status": "ok", "method": method, "steps_used": int(used.sum()), "samples": int(tot),
        "observed": {x: int(o) for x, o in zip(names, observed)},
        "expected": {x: num(e) for x, e in zip(names, expected)},
        "observed_fractions": {x: num(f) for x, f in zip(names, obs_f)},
        "expected_fractions": {x: num(f) for x, f in zip(names, exp_f)},
        "max_abs_diff": num(np.nanmax(np.abs(obs_f - exp_f))) if tot else None,
        "test": {"name": "chi-square goodness of fit (scipy.stats.chisquare)", "statistic": num(chi2),
                 "p_value": num(p_value)},
        "trend": _trend(raw["step"], counts, exp_frac, used, names),
    }


def _chisquare(observed: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    keep = (observed > 0) | (expected > 0)
    o, e = observed[keep].astype(np.float64), expected[keep]
    if len(o) < 2:
        return 0.0, 1.0
    if np.any((e <= 0) & (o > 0)):
        return float("inf"), 0.0  # an actor drawn that the buffer did not hold
    e = e * (o.sum() / e.sum())
    from scipy import stats as sps  # imported here: scipy.stats costs ~0.7 s, loaders do not need it

    r = sps.chisquare(o, e)
    return float(r.statistic), float(r.pvalue)


def _trend(step, counts, exp_frac, used, names) -> dict:
    n = len(step)
    k = min(TREND_BUCKETS, n)
    cuts = np.linspace(0, n, k + 1).astype(int)
    out = {"step_start": [], "step_stop": [], "observed": {x: [] for x in names}, "expected": {x: [] for x in names}}
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        u = used[lo:hi]
        c = counts[lo:hi][u]
        tot = c.sum()
        e = (exp_frac[lo:hi][u] * c.sum(axis=1, keepdims=True)).sum(axis=0)
        out["step_start"].append(int(step[lo]))
        out["step_stop"].append(int(step[hi - 1]) + 1)
        for i, x in enumerate(names):
            out["observed"][x].append(num(c[:, i].sum() / tot) if tot else None)
            out["expected"][x].append(num(e[i] / tot) if tot else None)
    return out

"""Statistics over numpy arrays, returned as plain JSON-ready dicts (the report's building blocks).

Conventions: every distribution is computed on its finite values and says how many were not
finite; histograms of several actors share their bin edges so they can be compared bar by bar.
"""

from __future__ import annotations

import math

import numpy as np

CHUNK_ROWS = 1 << 20  # rows per chunk where a full-length temporary is not needed
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
BINS = 30


def num(x) -> float | None:
    """A float for JSON: NaN and infinities become None (JSON has no NaN)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _std(f: np.ndarray, mean) -> float:
    """``f.std()``; past CHUNK_ROWS values, its squared deviations summed chunk by chunk (np.std makes
    a temporary as long as ``f``: 8 bytes a value at the audit's peak). The chunked sum may differ
    from np.std's in the last bits."""
    if f.size <= CHUNK_ROWS:
        return f.std()
    ss = 0.0
    for lo in range(0, f.size, CHUNK_ROWS):
        d = f[lo:lo + CHUNK_ROWS] - mean
        d *= d
        ss += float(d.sum())
    return math.sqrt(ss / f.size)


def describe(values, reorder: bool = False) -> dict:
    """count, nonfinite, mean, std, min, max and quantiles of the finite values. ``reorder``: the
    caller lets ``values`` be reordered in place (no copy for the quantiles)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    fin = np.isfinite(v)
    f = v[fin] if not fin.all() else v
    del fin
    out = {"count": int(v.size), "nonfinite": int(v.size - f.size)}
    if f.size == 0:
        out.update(mean=None, std=None, min=None, max=None, quantiles={str(q): None for q in QUANTILES})
        return out
    mean = f.mean()
    out.update(mean=num(mean), std=num(_std(f, mean)), min=num(f.min()), max=num(f.max()))
    # the moments first: a copy of our own is then partitioned in place (np.quantile copies otherwise)
    own = reorder or not isinstance(values, np.ndarray) or not np.may_share_memory(f, values)
    qs = np.quantile(f, QUANTILES, overwrite_input=own)
    out["quantiles"] = {str(q): num(x) for q, x in zip(QUANTILES, qs)}
    return out


def _finite(v) -> np.ndarray:
    v = np.asarray(v, np.float64)
    fin = np.isfinite(v)
    return v if fin.all() else v[fin]


def histograms(groups: dict, bins: int = BINS, log: bool = False) -> dict:
    """``{"edges": [...], "log": bool, "counts": {group: [...]}}`` with edges shared by every group.

    ``log`` spaces the edges logarithmically over the positive values (for |TD error|, whose
    spread covers decades); values <= 0 are then left out and counted in ``"below"``.
    """
    finite = {k: _finite(v) for k, v in groups.items()}
    # the range from each group's own (no concatenated copy of every value: 8 bytes a row at 10M rows)
    allv = [v for v in finite.values() if v.size]
    below = {}
    if log:
        pos = [p for p in (v[v > 0] for v in allv) if p.size]
        if pos:
            lo, hi = float(min(p.min() for p in pos)), float(max(p.max() for p in pos))
            hi = hi * 1.000001 if hi > lo else lo * 10
            edges = np.geomspace(lo, hi, bins + 1)
        else:
            edges = np.geomspace(1e-6, 1.0, bins + 1)
        below = {k: int((v <= 0).sum()) for k, v in finite.items()}
    else:
        if allv:
            lo, hi = float(min(v.min() for v in allv)), float(max(v.max() for v in allv))
            if hi <= lo:
                lo, hi = lo - 0.5, hi + 0.5
        else:
            lo, hi = 0.0, 1.0
        edges = np.linspace(lo, hi, bins + 1)
    out = {"edges": [float(e) for e in edges], "log": log,
           "counts": {k: np.histogram(v, edges)[0].astype(int).tolist() for k, v in finite.items()}}
    if log:
        out["below"] = below
    return out


def code_counts(codes: np.ndarray, n_actors: int) -> np.ndarray:
    """Counts per actor code, plus one last slot for every code outside the vocabulary."""
    codes = np.asarray(codes)
    out = np.zeros(n_actors + 1, np.int64)
    for lo in range(0, codes.size, CHUNK_ROWS):  # chunk by chunk: bincount's index copy is 8 bytes a row
        out += np.bincount(np.minimum(codes[lo:lo + CHUNK_ROWS], n_actors).astype(np.intp), minlength=n_actors + 1)
    return out


def composition(codes: np.ndarray, names, start: int, stop: int) -> dict:
    """Actor counts and fractions of rows ``[start, stop)``; out-of-vocabulary codes counted apart."""
    counts = code_counts(codes[start:stop], len(names))
    total = int(counts.sum())
    return {
        "rows": [int(start), int(stop)], "total": total,
        "counts": {n: int(c) for n, c in zip(names, counts)},
        "fractions": {n: (c / total if total else None) for n, c in zip(names, counts.tolist())},
        "unknown_codes": int(counts[-1]),
    }


def bucket_size(n_rows: int, target: int = 50) -> int:
    """A round bucket size (1, 2, 5 x 10^k rows) that cuts ``n_rows`` into about ``target`` buckets."""
    if n_rows <= target:
        return 1
    raw = n_rows / target
    k = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * k >= raw:
            return int(m * k)
    return int(10 * k)


def composition_over_time(codes: np.ndarray, names, bucket_rows: int) -> dict:
    """Actor fractions in consecutive fixed buckets of ``bucket_rows`` rows (the last may be short)."""
    n, a = len(codes), len(names)
    if n == 0:
        return {"bucket_rows": int(bucket_rows), "start": [], "stop": [], "fractions": {x: [] for x in names},
                "unknown_codes": []}
    nb = (n - 1) // bucket_rows + 1
    m = np.zeros(nb * (a + 1), np.int64)
    for lo in range(0, n, CHUNK_ROWS):  # chunk by chunk: the bucket index is 8 bytes a row
        hi = min(n, lo + CHUNK_ROWS)
        g = np.arange(lo, hi, dtype=np.intp) // bucket_rows * (a + 1)
        g += np.minimum(codes[lo:hi], a)
        m += np.bincount(g, minlength=m.size)
    m = m.reshape(nb, a + 1)
    tot = m.sum(axis=1)
    starts = np.arange(nb) * bucket_rows
    return {
        "bucket_rows": int(bucket_rows),
        "start": starts.tolist(),
        "stop": np.minimum(starts + bucket_rows, n).tolist(),
        "fractions": {x: (m[:, i] / tot).tolist() for i, x in enumerate(names)},
        "unknown_codes": m[:, a].tolist(),
    }


def episode_table(episode: np.ndarray, codes: np.ndarray, reward: np.ndarray, done: np.ndarray, n_actors: int):
    """Per-episode arrays: ``length``, ``ret`` (sum of rewards), ``ended`` (has a done row),
    ``counts`` (rows per actor code, last column out-of-vocabulary), ``first``/``last`` row."""
    if len(episode) == 0:
        z = np.zeros(0)
        return {"length": z.astype(int), "ret": z, "ended": z.astype(bool),
                "counts": np.zeros((0, n_actors + 1), int), "first": z.astype(int), "last": z.astype(int)}
    # Rows of one episode are usually contiguous; factorizing also handles interleaved episodes.
    change = np.empty(len(episode), bool)
    change[0] = True
    np.not_equal(episode[1:], episode[:-1], out=change[1:])
    if (episode[1:] >= episode[:-1]).all():  # not np.diff: an 8-byte temporary a row
        idx = np.cumsum(change, dtype=np.intp)
        idx -= 1
    else:
        _, idx = np.unique(episode, return_inverse=True)
    ne = int(idx.max()) + 1
    length = np.bincount(idx, minlength=ne)
    ret = np.bincount(idx, weights=reward.astype(np.float64), minlength=ne)
    ended = np.bincount(idx, weights=done.astype(np.float64), minlength=ne) > 0
    counts = np.zeros(ne * (n_actors + 1), np.int64)
    for lo in range(0, len(episode), CHUNK_ROWS):  # chunk by chunk: the group index is 8 bytes a row
        g = idx[lo:lo + CHUNK_ROWS] * (n_actors + 1)
        g += np.minimum(codes[lo:lo + CHUNK_ROWS], n_actors)
        counts += np.bincount(g, minlength=counts.size)
    counts = counts.reshape(ne, n_actors + 1)
    if np.all(idx[1:] >= idx[:-1]):
        first = np.flatnonzero(change)
        last = first + length - 1
    else:
        rows = np.arange(len(episode))
        first, last = np.full(ne, len(episode)), np.zeros(ne, np.intp)
        np.minimum.at(first, idx, rows)
        np.maximum.at(last, idx, rows)
    return {"length": length, "ret": ret, "ended": ended, "counts": counts, "first": first, "last": last}


def episodes_section(table: dict, credit: dict) -> dict:
    """Returns and lengths of the episodes that ended (a done row), and the credit per actor
    (``_credit.credit``): actors alternate inside episodes, so no episode is given to one actor."""
    ended = table["ended"]
    ret, length = table["ret"][ended], table["length"][ended]
    return {
        "attribution": credit["method"],
        "ended": int(ended.sum()), "not_ended": int((~ended).sum()),
        "returns": describe(ret), "lengths": describe(length),
        "return_histogram": histograms({"all episodes": ret}),
        "length_histogram": histograms({"all episodes": length}),
        "credit": credit,
    }

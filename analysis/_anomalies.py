"""Anomaly checks over the computed report sections. Each check returns ``Anomaly`` records with a
code, a severity and the actor and row or step range concerned; none of them raises on bad data
(bad data is what they exist to report)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ._stats import num

SEVERITIES = ("info", "warning", "error")

ANOMALY_CODES = {
    "EMPTY_STORE": "warning: no committed rows yet",
    "NO_TELEMETRY": "info: no training telemetry yet; training checks skipped",
    "UNKNOWN_ACTOR_CODE": "error: rows or training samples carry actor codes outside the vocabulary",
    "SINGLE_ACTOR": "error (warning without a declared second actor): one actor holds every row although the "
                    "vocabulary or the run's metadata says more acted: the incident's signature; an actor the run "
                    "declares absent (expert_ratio 0) does not count",
    "ACTOR_ABSENT": "info: an actor of the vocabulary holds no row while others do",
    "EXPERT_UNKNOWN": "warning: an expert share is declared for an actor that is not in the vocabulary",
    "EXPERT_FRACTION": "error: the realised expert share misses the declared one (metadata expert_ratio or expected)",
    "EXPERT_FRACTION_DRIFT": "warning: the expert share misses the declared one in some segments of the run",
    "ACTOR_FRACTION": "error: an actor's share misses expected['actor_fractions']",
    "EXPECTED_ACTOR_UNKNOWN": "error: expected['actor_fractions'] names an actor outside the vocabulary",
    "NONFINITE_REWARD": "error: NaN or infinite rewards, per actor",
    "NONFINITE_LOSS": "error: NaN or infinite training loss",
    "NONFINITE_TD_ABS_MEAN": "error: NaN or infinite mean |TD| of an actor at steps that sampled it",
    "NONFINITE_Q_MEAN": "error: NaN or infinite mean Q of an actor at steps that sampled it",
    "NONFINITE_TD_ERROR": "error: NaN or infinite per-sample TD errors",
    "NONFINITE_Q": "error: NaN or infinite per-sample Q values",
    "TELEMETRY_SHAPE": "error: train_steps per-actor columns do not match the vocabulary; training checks skipped",
    "SAMPLE_ROW_OUTSIDE": "error: training samples name rows the store does not hold",
    "SAMPLE_ACTOR_MISMATCH": "error: a training sample's actor differs from the actor stored at its row",
    "TD_IMBALANCE": "warning: one actor's mean |TD error| is far above another's",
    "CHAIN_BROKEN": "error (warning under 1%): next_state[t] differs from state[t+1] inside episodes, per actor",
    "NEXT_STATE_RESET": "error (warning without random resets): episode ends store the next episode's first state "
                        "as next_state (the terminal observation was lost to an auto-reset)",
    "NEXT_STATE_COPY": "error: most of an actor's rows store next_state equal to state",
    "DUPLICATE_BLOCK": "error (warning for environments declared without random resets): consecutive rows repeat "
                       "earlier rows exactly, with the same actors and episode bookkeeping: a block appended twice "
                       "(trajectories that repeat inside their own episode are not)",
    "DONE_MISSING": "error: episodes end without done, or run past the environment's time limit",
    "DONE_RATE": "error: most of an actor's rows set done (done set where no episode ended)",
    "DONE_MID_EPISODE": "error: done is set on a row that the same episode continues after",
    "EPISODE_REUSED": "error: an episode id reappears after its episode ended",
    "STEP_SEQUENCE": "error: step does not count 0, 1, 2, ... inside episodes",
    "BOOTSTRAP_FLAGS": "error: truncated without done, truncated at a terminal state, or a time-limit end stored "
                       "as terminal (warning when the store has no truncated column); per actor: episodes of exactly "
                       "the time limit stored as terminal",
    "REWARD_SIGN": "error: an actor's rewards have the opposite sign of the environment's or the other actors'",
    "REWARD_SCALE": "error: an actor's rewards are paid at another scale (20x or more)",
    "ACTION_COLLAPSE": "error: an actor takes one action in 98% of its rows where others (or it, elsewhere) do not",
    "STATE_DISTRIBUTION": "error: an actor's states differ in spread or location 10x from the other actors', "
                          "beyond chance over every element compared",
    "TAG_POLICY": "error: rows tagged with an actor whose policy is known (given to the audit, trusted from the "
                  "metadata, or the agent's CartPole expert) do not take its action (warning: another actor's rows "
                  "all do)",
    "TAG_BEHAVIOUR": "error: rows tagged with an actor declared deterministic act unlike a unanimous neighbourhood "
                     "of its other rows, or another actor's rows act like it where its own do not (swapped tags)",
    "ENV_FACTS_INVALID": "error: the store's metadata 'env' block is malformed; the checks run without its facts",
    "ACTOR_DECLARED_ABSENT": "info: an actor holds no row, as the run declares (e.g. expert_ratio 0, an ablation)",
    "BATCH_COMPOSITION": "error (info under prioritized sampling): batch shares inconsistent with the buffer "
                         "or the declared sampler fractions (chi-square p < 1e-3 and a share off by more "
                         "than the tolerance)",
    "SHARD_COMPOSITION": "error: (run audit) one shard's share of an actor stands 0.10 and 5 standard errors from "
                         "the median shard's: that shard's worker records actors differently",
    "EMPTY_RUN": "warning: (run audit) the run has no shards yet",
}

# Defaults a user overrides through audit(expected=...); see EXPECTED_KEYS.
EXPERT_TOLERANCE = 0.05      # |realised - declared expert fraction|
EXPERT_NOISE_Z = 4.0         # ... or this many binomial standard errors of the declared share, if wider
BATCH_TOLERANCE = 0.03       # max |observed - expected batch fraction| before the test counts
BATCH_P_VALUE = 1e-3
TD_RATIO_MAX = 5.0           # one actor's mean |TD| above another's by this factor
MIN_SAMPLES = 50             # per actor, before its TD errors are compared

EXPECTED_KEYS = {
    "expert_fraction": "(mean, tolerance): the share of rows the expert should hold, e.g. (0.26, 0.02)",
    "expert_actor": "name of the expert actor (default: metadata 'expert_actor', else 'expert')",
    "actor_fractions": "{actor: (mean, tolerance)}: the share of rows each named actor should hold",
    "batch_fractions": "{actor: share}: what the sampler was configured to draw (stratified sampling)",
    "batch_tolerance": f"float: allowed |observed - expected| batch share (default {BATCH_TOLERANCE})",
    "td_ratio_max": f"float: allowed ratio of per-actor mean |TD error| (default {TD_RATIO_MAX})",
}


@dataclass
class Anomaly:
    """One finding. ``rows`` is a half-open transition row range, ``steps`` a training-step range."""

    code: str
    severity: str
    message: str
    actor: str | None = None
    rows: list | None = None
    steps: list | None = None
    episodes: list | None = None  # episode ids concerned (the first few; details say how many)
    details: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"Anomaly severity {self.severity!r}: expected one of {SEVERITIES}")

    def to_dict(self) -> dict:
        return asdict(self)


def run_setting(meta: dict, key: str, default=None):
    """A run setting from the store's metadata: top level first, then the agent's ``config`` dict."""
    if key in meta:
        return meta[key]
    cfg = meta.get("config")
    return cfg.get(key, default) if isinstance(cfg, dict) else default


def check_expected(expected) -> dict:
    """Validate the user's ``expected`` mapping; unknown keys and malformed values raise."""
    if expected is None:
        return {}
    if not isinstance(expected, dict):
        raise TypeError("expected must be a dict such as {'expert_fraction': (0.26, 0.02)}, "
                        f"got {type(expected).__name__}")
    unknown = sorted(set(expected) - set(EXPECTED_KEYS))
    if unknown:
        raise ValueError(f"expected: unknown key(s) {unknown}; known keys: "
                         + "; ".join(f"{k}: {v}" for k, v in EXPECTED_KEYS.items()))
    out = dict(expected)
    if "expert_fraction" in out:
        out["expert_fraction"] = _mean_tol("expected['expert_fraction']", out["expert_fraction"])
    if "actor_fractions" in out:
        af = out["actor_fractions"]
        if not isinstance(af, dict):
            raise TypeError(f"expected['actor_fractions'] must be {{actor: (mean, tolerance)}}, got {af!r}")
        out["actor_fractions"] = {k: _mean_tol(f"expected['actor_fractions'][{k!r}]", v) for k, v in af.items()}
    for k in ("batch_tolerance", "td_ratio_max"):
        if k in out and not (isinstance(out[k], (int, float)) and out[k] > 0):
            raise ValueError(f"expected[{k!r}]={out[k]!r}: expected a positive number")
    return out


def _mean_tol(where: str, v) -> tuple[float, float]:
    try:
        mean, tol = (float(x) for x in v)
    except (TypeError, ValueError):
        raise ValueError(f"{where}={v!r}: expected a pair (mean, tolerance), e.g. (0.26, 0.02)") from None
    if not (0 <= mean <= 1 and tol >= 0):
        raise ValueError(f"{where}={v!r}: expected 0 <= mean <= 1 and tolerance >= 0")
    return mean, tol


def _declared_expert(meta: dict, expected: dict, names) -> tuple[str | None, float | None, float, str]:
    actor = expected.get("expert_actor", run_setting(meta, "expert_actor", "expert"))
    if "expert_fraction" in expected:
        mean, tol = expected["expert_fraction"]
        return actor, mean, tol, "expected['expert_fraction']"
    r = run_setting(meta, "expert_ratio")
    if isinstance(r, (int, float)) and not isinstance(r, bool) and math.isfinite(r):
        return actor, float(r), EXPERT_TOLERANCE, "metadata 'expert_ratio'"
    return actor, None, EXPERT_TOLERANCE, ""


def composition_anomalies(names, meta, expected, codes, whole, episodes) -> list[Anomaly]:
    """``episodes``: the per-episode table of ``_stats.episode_table`` (or None without episodes)."""
    out: list[Anomaly] = []
    n = whole["total"]
    if n == 0:
        return [Anomaly("EMPTY_STORE", "warning", "the store has no committed rows: nothing to audit yet")]
    if whole["unknown_codes"]:
        bad = np.flatnonzero(codes >= len(names))
        vals, cnt = np.unique(codes[bad], return_counts=True)
        out.append(Anomaly(
            "UNKNOWN_ACTOR_CODE", "error",
            f"{len(bad)} row(s) carry actor codes {vals.tolist()} outside the vocabulary "
            f"{dict(enumerate(names))}: the writer stored tags it was never given",
            rows=[int(bad[0]), int(bad[-1]) + 1], details={"codes": {str(v): int(c) for v, c in zip(vals, cnt)}}))
    expert, declared, tol, source = _declared_expert(meta, expected, names)
    present = [x for x in names if whole["counts"][x] > 0]
    single = False
    others_declared = len(present) == 1 and (
        (declared is not None and declared > 0 and expert != present[0])
        or any(m > 0 for a, (m, _) in expected.get("actor_fractions", {}).items() if a != present[0]))
    # Declared intent wins: an actor the run says should hold no row (expert_ratio 0: an ablation,
    # or expected actor_fractions of 0) is not a dropped tag.
    fractions = expected.get("actor_fractions", {})
    said_absent = {x for x in names if (x == expert and declared == 0) or (x in fractions and fractions[x][0] == 0)}
    undeclared = [x for x in names if whole["counts"][x] == 0 and x not in said_absent]
    if len(present) == 1 and (undeclared or others_declared):
        # Also with a one-actor vocabulary: a run that declares an expert share but could only
        # tag 'dqn' lost the expert's tags before they reached the store.
        single = True
        only = present[0]
        why = (f"the run declares {source}={declared} for actor {expert!r}" if declared and expert != only
               else f"the vocabulary lists {list(names)} and the run declares no share for {undeclared}")
        out.append(Anomaly(
            "SINGLE_ACTOR", "error" if others_declared else "warning",
            f"every one of the {n} rows is tagged {only!r}, but {why}: actor tags were probably dropped "
            "on the way to the store", actor=only, rows=[0, n], details={"vocabulary": list(names)}))
    elif len(present) > 1:
        for x in undeclared:
            out.append(Anomaly("ACTOR_ABSENT", "info", f"actor {x!r} is in the vocabulary but holds no row",
                               actor=x, rows=[0, n]))
    for x in names:
        if whole["counts"][x] == 0 and x in said_absent:
            out.append(Anomaly("ACTOR_DECLARED_ABSENT", "info",
                               f"actor {x!r} holds no row, as the run declares ({source or 'expected'} = 0): an "
                               "ablation, not a dropped tag", actor=x, rows=[0, n]))
    if declared is not None:
        if expert not in names:
            out.append(Anomaly("EXPERT_UNKNOWN", "warning",
                               f"{source} declares an expert share for {expert!r}, which is not in the vocabulary "
                               f"{list(names)}; set metadata 'expert_actor' or expected['expert_actor']"))
        else:
            out += _expert_share(expert, names.index(expert), declared, tol, source, whole, codes, episodes, single)
    for a, (m, t) in expected.get("actor_fractions", {}).items():
        if a not in names:
            out.append(Anomaly("EXPECTED_ACTOR_UNKNOWN", "error",
                               f"expected['actor_fractions'] names {a!r}, not in the vocabulary {list(names)}"))
            continue
        got = whole["fractions"][a]
        if abs(got - m) > t:
            out.append(Anomaly("ACTOR_FRACTION", "error",
                               f"actor {a!r} holds {got:.4f} of the rows; expected {m} ± {t}",
                               actor=a, rows=[0, n], details={"realised": got, "expected": m, "tolerance": t}))
    return out


DRIFT_SEGMENTS = 10
DRIFT_Z = 4.0
MIN_UNITS = 5


def _expert_share(expert, code, declared, tol, source, whole, codes, episodes, single) -> list[Anomaly]:
    out = []
    n = whole["total"]
    got = whole["fractions"][expert]
    if source == "metadata 'expert_ratio'":
        # A run that mixes the expert in frame by frame at p realises p +- sqrt(p(1-p)/n): on a short
        # run the default tolerance alone would flag healthy noise. A tolerance the user states is kept.
        tol = max(tol, EXPERT_NOISE_Z * math.sqrt(declared * (1 - declared) / max(1, n)))
    if abs(got - declared) > tol:
        out.append(Anomaly(
            "EXPERT_FRACTION", "error",
            f"the expert {expert!r} holds {got:.4f} of the rows; {source} declares {declared} (tolerance "
            f"{tol:.4g})", actor=expert, rows=[0, n],
            details={"realised": got, "declared": declared, "tolerance": tol, "measure": "realised expert share",
                     "evidence": got, "threshold": tol}))
    if not single:  # with a single actor, the share is 0 everywhere and SINGLE_ACTOR says why
        drift = _drift(expert, code, declared, tol, codes, episodes)
        if drift is not None:
            out.append(drift)
    return out


def _drift(expert, code, declared, tol, codes, episodes) -> Anomaly | None:
    """The expert share of each of ``DRIFT_SEGMENTS`` consecutive segments of rows against the
    declared share. Episodes are the sampling units (an expert often acts a whole episode, so rows
    are not independent): a segment is off when its share misses ``declared`` by more than ``tol``
    and by more than ``DRIFT_Z`` cluster-robust standard errors."""
    n = len(codes)
    if episodes is not None and len(episodes["length"]):
        first, length, x = episodes["first"], episodes["length"], episodes["counts"][:, code]
        unit = "episodes"
    else:
        first, length, x = np.arange(n), np.ones(n, np.int64), (codes == code).astype(np.int64)
        unit = "rows"
    seg_rows = max(1, math.ceil(n / DRIFT_SEGMENTS))
    seg = first // seg_rows
    # Variance per row pooled over the whole store (episode-clustered): a segment that happens to
    # hold none of the rare long expert episodes would otherwise look impossibly precise.
    p_all = x.sum() / max(1, length.sum())
    var_row = float(((x - p_all * length) ** 2).sum()) / max(1, length.sum())
    fracs, zs, off = [], [], []
    for k in range(int(seg.max()) + 1 if len(seg) else 0):
        sel = seg == k
        if sel.sum() < MIN_UNITS:
            fracs.append(None)
            zs.append(None)
            continue
        nn, xx = length[sel].sum(), x[sel].sum()
        f = xx / nn
        se = math.sqrt(var_row / nn)
        z = (f - declared) / se if se > 0 else (math.inf if f != declared else 0.0)
        fracs.append(float(f))
        zs.append(num(z))
        if abs(f - declared) > tol and abs(z) > DRIFT_Z:
            off.append(k)
    if not off:
        return None
    valid = [(k, f) for k, f in enumerate(fracs) if f is not None]
    from scipy import stats as sps  # imported here: scipy.stats costs ~0.7 s, loaders do not need it

    slope = sps.linregress(*zip(*valid)) if len(valid) >= 3 else None
    return Anomaly(
        "EXPERT_FRACTION_DRIFT", "warning",
        f"the expert share misses {declared} ± {tol} in {len(off)} of {len(fracs)} segments of {seg_rows} rows "
        f"(segment shares {[round(f, 3) if f is not None else None for f in fracs]})",
        actor=expert, rows=[int(off[0] * seg_rows), int(min(n, (off[-1] + 1) * seg_rows))],
        details={"segment_rows": seg_rows, "segment_fractions": fracs, "segment_z": zs, "segments_off": off,
                 "units": unit, "slope_per_segment": num(slope.slope) if slope else None,
                 "slope_p_value": num(slope.pvalue) if slope else None})


def reward_anomalies(names, codes, reward) -> list[Anomaly]:
    out = []
    bad = ~np.isfinite(reward)
    if not bad.any():
        return out
    for i, x in [*enumerate(names), (len(names), None)]:
        sel = np.flatnonzero(bad & ((codes == i) if x is not None else (codes >= len(names))))
        if sel.size:
            out.append(Anomaly("NONFINITE_REWARD", "error",
                               f"{sel.size} reward(s) of {x or 'unknown-code'} rows are NaN or infinite",
                               actor=x, rows=[int(sel[0]), int(sel[-1]) + 1], details={"count": int(sel.size)}))
    return out

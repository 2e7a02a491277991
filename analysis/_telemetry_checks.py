"""The audit's checks of training telemetry (train_steps / train_samples tables): non-finite loss,
TD errors and Q values, sampled rows that do not match the store, TD balance between actors, and
batch shares against the buffer or the declared sampler fractions."""

from __future__ import annotations

import numpy as np

from ._anomalies import BATCH_P_VALUE, BATCH_TOLERANCE, MIN_SAMPLES, TD_RATIO_MAX, Anomaly, run_setting


def telemetry_anomalies(names, meta, expected, steps_raw, steps_sec, samples_sec, samples_raw, bvb) -> list[Anomaly]:
    out = []
    if steps_sec.get("status") != "ok" and samples_sec.get("status") != "ok":
        return [Anomaly("NO_TELEMETRY", "info", "the store holds no training telemetry yet; training checks skipped")]
    if steps_sec.get("status") == "ok":
        step = steps_raw["step"]
        bad = ~np.isfinite(steps_raw["loss"])
        if bad.any():
            i = np.flatnonzero(bad)
            out.append(Anomaly("NONFINITE_LOSS", "error", f"the loss is NaN or infinite at {i.size} training step(s)",
                               steps=[int(step[i[0]]), int(step[i[-1]]) + 1], details={"count": int(i.size)}))
        sampled = steps_raw["batch_count"] > 0
        for col in ("td_abs_mean", "q_mean"):
            bad = ~np.isfinite(steps_raw[col]) & sampled   # a mean over zero samples is NaN by contract
            for a, x in enumerate(names):
                i = np.flatnonzero(bad[:, a])
                if i.size:
                    out.append(Anomaly(f"NONFINITE_{col.upper()}", "error",
                                       f"{col} of actor {x!r} is NaN or infinite at {i.size} step(s) that sampled it",
                                       actor=x, steps=[int(step[i[0]]), int(step[i[-1]]) + 1]))
    if samples_sec.get("status") == "ok":
        out += _sample_anomalies(names, samples_sec, samples_raw)
    out += _td_imbalance(names, expected, steps_sec, samples_sec)
    if bvb.get("status") == "ok" and bvb["samples"]:
        tol = float(expected.get("batch_tolerance", BATCH_TOLERANCE))
        p, diff = bvb["test"]["p_value"], bvb["max_abs_diff"]
        if p is not None and p < BATCH_P_VALUE and diff is not None and diff > tol:
            obs, exp = bvb["observed_fractions"], bvb["expected_fractions"]
            worst = max(names, key=lambda x: abs((obs[x] or 0) - (exp[x] or 0)))
            strategy = run_setting(meta, "sampler_strategy", run_setting(meta, "sampler", ""))
            prio = str(strategy).lower() == "prioritized"
            out.append(Anomaly(
                "BATCH_COMPOSITION", "info" if prio else "error",
                f"training batches hold {bvb['observed_fractions'][worst]:.4f} {worst!r} rows where the buffer "
                f"({bvb['method']}) gives {bvb['expected_fractions'][worst]:.4f} (chi-square p={p:.3g})"
                + ("; expected under prioritized sampling" if prio else ""),
                actor=worst, steps=[int(steps_raw["step"][0]), int(steps_raw["step"][-1]) + 1],
                details={"max_abs_diff": diff, "p_value": p, "tolerance": tol}))
    return out


def _sample_anomalies(names, sec, raw) -> list[Anomaly]:
    out = []
    a = len(names)
    if sec["unknown_codes"]:
        bad = np.flatnonzero(raw["actor"] >= a)
        out.append(Anomaly("UNKNOWN_ACTOR_CODE", "error",
                           f"{bad.size} training sample(s) carry actor codes outside the vocabulary",
                           steps=[int(raw["step"][bad[0]]), int(raw["step"][bad[-1]]) + 1]))
    if sec["rows_outside_store"]:
        out.append(Anomaly("SAMPLE_ROW_OUTSIDE", "error",
                           f"{sec['rows_outside_store']} training sample(s) name rows that are not in the store"))
    mm = sec["actor_mismatch"]
    if mm["count"]:
        out.append(Anomaly("SAMPLE_ACTOR_MISMATCH", "error",
                           f"{mm['count']} training sample(s) carry another actor than the row they name "
                           f"(first rows {mm['first_rows']}): tags change between the buffer and the learner",
                           details=mm))
    for col in ("td_error", "q"):
        bad = ~np.isfinite(raw[col])
        for i, x in enumerate(names):
            sel = np.flatnonzero(bad & (raw["actor"] == i))
            if sel.size:
                out.append(Anomaly(f"NONFINITE_{col.upper()}", "error",
                                   f"{sel.size} sampled {col} value(s) of actor {x!r} are NaN or infinite", actor=x,
                                   steps=[int(raw["step"][sel[0]]), int(raw["step"][sel[-1]]) + 1]))
    return out


def _td_imbalance(names, expected, steps_sec, samples_sec) -> list[Anomaly]:
    ratio_max = float(expected.get("td_ratio_max", TD_RATIO_MAX))
    if samples_sec.get("status") == "ok":
        td = {x: v["td_abs"]["mean"] for x, v in samples_sec["per_actor"].items()
              if v["td_abs"]["count"] - v["td_abs"]["nonfinite"] >= MIN_SAMPLES}
        source = "train_samples |td_error|"
    elif steps_sec.get("status") == "ok":
        td = {x: v["td_abs_mean"] for x, v in steps_sec["per_actor"].items() if v["batch_count"] >= MIN_SAMPLES}
        source = "train_steps td_abs_mean"
    else:
        return []
    td = {x: v for x, v in td.items() if v is not None}
    if len(td) < 2:
        return []
    hi, lo = max(td, key=td.get), min(td, key=td.get)
    if td[lo] <= 0:
        return []
    r = td[hi] / td[lo]
    if r <= ratio_max:
        return []
    return [Anomaly("TD_IMBALANCE", "warning",
                    f"mean |TD error| of {hi!r} ({td[hi]:.4g}) is {r:.1f}x that of {lo!r} ({td[lo]:.4g}) "
                    f"(from {source}; threshold {ratio_max}x)", actor=hi,
                    details={"ratio": r, "high": hi, "low": lo, "threshold": ratio_max, "source": source})]

"""Regression comparison of audit reports: a baseline (report or report.json) against a candidate
(report, report.json, or a store to audit now)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ._audit import audit
from ._report import REPORT_FORMAT, REPORT_VERSION, AuditReport, BaselineFormatError, check_report_format

# Fields that change from one audit of the same file to the next (wall clock, paths, durations).
VOLATILE = ("generated",)
DEFAULT_TOLERANCE = {"abs": 1e-9, "rel": 1e-6}
IGNORE = "ignore"  # a tolerance that leaves matching paths out of the comparison

# Tolerances for two runs of one setup (another seed, or the same seed: torch's kernels and
# commit timing make even those differ), used by `replaystore compare` unless --exact.
# Measured 2026-11-30 (benchmarks/compare_noise.py) on CartPole-v1 runs, expert ratio 0.26: four
# runs of 6000 frames (seeds 0, 0, 1, 2) and two of 2000 frames (seeds 0, 1). Largest differences
# between seeds: actor shares 0.016 (whole store, 6000 rows; binomial sd 0.006), batch shares
# 0.019, shares of over-time buckets 0.14 (120-row buckets) and 0.22 (50-row buckets), counts
# that follow the shares rel 0.07, per-actor sample counts rel 0.12; learning outcomes (returns,
# lengths, loss, TD, Q) rel up to 0.63 on means and 0.91 on quantiles, and means near 0 change
# sign; an actor's count of majority episodes went 0 -> 1. So shares and counts get about 1.5-2x
# the measured noise and stay a real check (an expert share of 0 or a single actor fails them);
# learning outcomes only have to keep their order of magnitude (rel 0.9 plus abs 0.5: a 10x
# change fails), and the tails and bins of distributions (min, max, quantiles, histograms),
# which move with every sample, are not compared. Runs much shorter than 2000 frames are noisier
# than this: pass --tolerance, or compare with --exact.
RUN_TO_RUN_TOLERANCES = {
    "store.metadata.seed": IGNORE,
    "store.metadata.config.seed": IGNORE,
    "composition.*.fractions.*": 0.03,
    "composition.over_time.fractions.*": 0.35,
    "composition.*.counts.*": {"rel": 0.1},
    "rewards.*count*": {"rel": 0.1},
    "training.per_actor.*.batch_fraction": 0.03,
    "training.per_actor.*.batch_count": {"rel": 0.1},
    "training.trend.batch_fractions.*": 0.1,
    "batch_vs_buffer.*fractions.*": 0.03,
    "batch_vs_buffer.observed.*": {"rel": 0.1},
    "batch_vs_buffer.expected.*": {"rel": 0.1},
    "batch_vs_buffer.trend.*": 0.1,
    "batch_vs_buffer.max_abs_diff": 0.03,
    "batch_vs_buffer.test.*": IGNORE,  # its verdict is the BATCH_COMPOSITION anomaly, compared as one
    # each check's measurements (per-actor rates, spreads, moments) differ from run to run; its
    # verdict is its anomalies, compared by (code, severity, actor), and whether it ran is compared
    "checks.*.evidence.*": IGNORE,
    # episodes grouped by an actor's share fall into bins of a handful each: a bin empty in one
    # 6000-frame run holds 2-3 episodes in the next seed's (measured). Each actor's return-to-go
    # credit (the other episodes.credit entries) is still compared, at rel 0.9 like all episodes.*
    "episodes.credit.by_share.*": IGNORE,
    "samples.*count*": {"rel": 0.2},
    # learning outcomes: the same order of magnitude
    "episodes.*": {"rel": 0.9},
    "training.loss.*": {"abs": 0.5, "rel": 0.9},
    "training.per_actor.*": {"abs": 0.5, "rel": 0.9},
    "training.trend.loss*": {"abs": 0.5, "rel": 0.9},
    "training.trend.td_abs_mean*": {"abs": 0.5, "rel": 0.9},
    "training.trend.q_mean*": {"abs": 0.5, "rel": 0.9},
    "samples.per_actor.*": {"abs": 0.5, "rel": 0.9},
    "*.min": IGNORE, "*.max": IGNORE, "*.quantiles.*": IGNORE, "*histogram*": IGNORE,
}


@dataclass
class Difference:
    """``kind``: "changed" (beyond tolerance), "missing" (in baseline only), "added" (candidate only),
    "new_anomaly" or "resolved_anomaly"."""

    path: str
    kind: str
    baseline: object = None
    candidate: object = None
    tolerance: dict | None = None


@dataclass
class Comparison:
    """The differences between two audits. ``unmatched``: tolerance patterns that matched no value
    of either report (a typo, or a section this report does not have): their tolerance did nothing."""

    differences: list = field(default_factory=list)
    compared: int = 0
    unmatched: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict:
        return {"ok": self.ok, "compared": self.compared, "metrics": self.by_metric(),
                "unmatched_tolerances": list(self.unmatched), "differences": [asdict(d) for d in self.differences]}

    def by_metric(self) -> list[dict]:
        """The differences grouped per metric (a path with its list indices as ``[*]``): how many
        values differ, the largest absolute change and where, the tolerance used."""
        groups: dict = {}
        for d in self.differences:
            groups.setdefault((metric_of(d.path), d.kind), []).append(d)
        out = []
        for (metric, kind), ds in groups.items():
            g = {"metric": metric, "kind": kind, "count": len(ds)}
            num = [(abs(x.candidate - x.baseline), x) for x in ds if _number(x.baseline) and _number(x.candidate)]
            worst = max(num, key=lambda t: t[0])[1] if num else ds[0]
            g.update({"max_abs_diff": max(t[0] for t in num) if num else None, "at": worst.path,
                      "baseline": worst.baseline, "candidate": worst.candidate, "tolerance": worst.tolerance})
            out.append(g)
        return out

    def summary(self, limit: int = 30, warnings: bool = True) -> str:
        """One line per metric (``limit`` at most); ``warnings``: start with the unmatched patterns."""
        warn = [f"warning: tolerance pattern {p!r} matches no value of the reports (typo?)"
                for p in (self.unmatched if warnings else ())]
        if self.ok:
            return "\n".join(warn + [f"no regression: {self.compared} values match the baseline"])
        groups = self.by_metric()
        lines = warn + [f"{len(self.differences)} difference(s) from the baseline in {len(groups)} metric(s) "
                        f"({self.compared} values compared):"]
        for g in groups[:limit]:
            tol = g["tolerance"]
            tol = f" (tolerance abs {tol['abs']:g}, rel {tol['rel']:g})" if tol and tol != DEFAULT_TOLERANCE else ""
            if g["count"] == 1 or g["max_abs_diff"] is None and g["count"] == 1:
                lines.append(f"  {g['kind']}: {g['at']}: baseline {g['baseline']!r} -> "
                             f"candidate {g['candidate']!r}{tol}")
            else:
                worst = f"max |diff| {g['max_abs_diff']:.4g} " if g["max_abs_diff"] is not None else ""
                lines.append(f"  {g['kind']}: {g['metric']}: {g['count']} values, {worst}at {g['at']}: "
                             f"{g['baseline']!r} -> {g['candidate']!r}{tol}")
        if len(groups) > limit:
            lines.append(f"  ... and {len(groups) - limit} more metric(s) (--json lists every difference)")
        return "\n".join(lines)


_INDEX = re.compile(r"\[\d+\]")


def metric_of(path: str) -> str:
    """``composition.over_time.fractions.dqn[12]`` -> ``composition.over_time.fractions.dqn[*]``."""
    return _INDEX.sub("[*]", path)


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _load_json(path, what: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what}: no file at {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BaselineFormatError(f"{what}: {path} is not a JSON audit report ({e})") from None


def _as_dict(x, what: str, like: dict | None = None) -> dict:
    if isinstance(x, AuditReport):
        d = x.to_dict()
    elif isinstance(x, dict):
        d = x
    elif isinstance(x, (str, os.PathLike)):
        if os.fspath(x).endswith(".json"):
            d = _load_json(x, what)
        else:
            # Audit the store the way the baseline was audited, so their arrays line up.
            exp = (like or {}).get("notes", {}).get("expected") or None
            bucket = (like or {}).get("composition", {}).get("over_time", {}).get("bucket_rows")
            d = audit(x, exp, bucket_rows=bucket).to_dict()
    else:
        raise TypeError(f"{what}: expected an AuditReport, a report dict, a report.json path or a store path, "
                        f"got {type(x).__name__}")
    check_report_format(d, what)
    return d


def _flatten(x, prefix: str, out: dict) -> dict:
    if isinstance(x, dict):
        for k, v in x.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(x, list):
        for i, v in enumerate(x):
            _flatten(v, f"{prefix}[{i}]", out)
    else:
        out[prefix] = x
    return out


def _tolerance_for(path: str, tolerances: dict, default=DEFAULT_TOLERANCE):
    best, tol = -1, default
    for pattern, t in tolerances.items():
        if fnmatch.fnmatchcase(path, pattern) and len(pattern) > best:
            best, tol = len(pattern), t
    return tol


def _check_tolerances(tolerances) -> dict:
    if tolerances is None:
        return {}
    if not isinstance(tolerances, dict):
        raise TypeError("tolerances must be {path pattern: abs, {'abs': x, 'rel': y} or 'ignore'}, "
                        f"got {type(tolerances).__name__}")
    out = {}
    for k, v in tolerances.items():
        if v == IGNORE:
            out[k] = {"ignore": True}
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0:
            out[k] = {"abs": float(v), "rel": 0.0}
        elif isinstance(v, dict) and set(v) <= {"abs", "rel"} and all(
                isinstance(x, (int, float)) and x >= 0 for x in v.values()):
            out[k] = {"abs": float(v.get("abs", 0.0)), "rel": float(v.get("rel", 0.0))}
        else:
            raise ValueError(f"tolerances[{k!r}]={v!r}: expected a number >= 0 (absolute), "
                             "{'abs': x, 'rel': y}, or 'ignore'")
    return out


def _close(a, b, tol: dict) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return a == b
    return abs(a - b) <= tol["abs"] + tol["rel"] * max(abs(a), abs(b))


def compare(baseline: AuditReport | dict[str, Any] | str | os.PathLike[str],
            candidate: AuditReport | dict[str, Any] | str | os.PathLike[str],
            tolerances: Mapping[str, Any] | None = None, *, defaults: Mapping[str, Any] | None = None) -> Comparison:
    """Differences between two audits, ignoring volatile fields (``generated``: path, times).

    ``tolerances`` maps glob patterns over dotted paths (``"composition.whole.fractions.*"``,
    ``"rewards.per_actor.*.mean"``) to an absolute tolerance, ``{"abs": x, "rel": y}``, or
    ``"ignore"`` (e.g. ``{"store.metadata.*": "ignore"}`` between two runs); the longest
    matching pattern wins. ``defaults``: tolerances of the same form consulted for paths that no
    pattern of ``tolerances`` matches (``RUN_TO_RUN_TOLERANCES`` for two runs of one setup, which
    the command line uses; there an "ignore" wins over a longer pattern); other numbers must
    agree to ``abs 1e-9 + rel 1e-6``. Anomalies are
    compared by (code, severity, actor): a new one or a resolved one is a difference. A pattern
    of ``tolerances`` that matches no value is listed in ``Comparison.unmatched``.
    """
    user = _check_tolerances(tolerances)
    fallback = _check_tolerances(defaults)
    base = _as_dict(baseline, "baseline")
    cand = _as_dict(candidate, "candidate", like=base)
    strip = lambda d: {k: v for k, v in d.items() if k not in VOLATILE and k != "anomalies"}  # noqa: E731
    fb, fc = _flatten(strip(base), "", {}), _flatten(strip(cand), "", {})
    paths = fb.keys() | fc.keys()
    unmatched = [p for p in user if not any(fnmatch.fnmatchcase(x, p) for x in paths)]

    def _tolerance_for_path(path):
        tol = _tolerance_for(path, user, None)
        if tol is not None:
            return tol
        # among the defaults, "ignore" wins over any other match: the tails and bins they name
        # (min, max, quantiles, histograms) sit inside sections that have a tolerance
        if any(t.get("ignore") and fnmatch.fnmatchcase(path, p) for p, t in fallback.items()):
            return {"ignore": True}
        return _tolerance_for(path, fallback, DEFAULT_TOLERANCE)

    diffs = []
    ignored = lambda p: _tolerance_for_path(p).get("ignore", False)  # noqa: E731
    for path, b in fb.items():
        tol = _tolerance_for_path(path)
        if tol.get("ignore"):
            continue
        if path not in fc:
            diffs.append(Difference(path, "missing", b, None))
        elif not _close(b, fc[path], tol):
            diffs.append(Difference(path, "changed", b, fc[path], tol))
    diffs += [Difference(p, "added", None, v) for p, v in fc.items() if p not in fb and not ignored(p)]
    key = lambda a: (a["code"], a["severity"], a.get("actor"))  # noqa: E731
    ab, ac = Counter(map(key, base["anomalies"])), Counter(map(key, cand["anomalies"]))
    found = [Difference(f"anomalies[{k[0]}]", "new_anomaly", None, {"severity": k[1], "actor": k[2]})
             for k in sorted((ac - ab).elements(), key=str)]
    found += [Difference(f"anomalies[{k[0]}]", "resolved_anomaly", {"severity": k[1], "actor": k[2]}, None)
              for k in sorted((ab - ac).elements(), key=str)]
    # Anomalies first: they say what went wrong; the numbers after say by how much.
    return Comparison(found + diffs, compared=len(fb) + len(base["anomalies"]), unmatched=unmatched)


def assert_audit_matches(path, baseline, tolerances=None) -> Comparison:
    """For tests: audit ``path`` (a store, report or report.json) and raise AssertionError listing
    the differences when it does not match ``baseline``.

    >>> assert_audit_matches("tests/data/healthy.h5", "tests/data/healthy.report.json").differences
    []
    """
    c = compare(baseline, path, tolerances)
    if not c.ok:
        raise AssertionError(f"audit of {os.fspath(path) if isinstance(path, (str, os.PathLike)) else 'candidate'} "
                             f"does not match the baseline:\n{c.summary()}")
    return c

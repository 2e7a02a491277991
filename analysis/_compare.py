"""Regression comparison of audit reports: a baseline (report or report.json) against a candidate
(report, report.json, or a store to audit now)."""

from __future__ import annotations

import fnmatch
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field

from ._report import REPORT_FORMAT, REPORT_VERSION, AuditReport, audit

# Fields that change from one audit of the same file to the next (wall clock, paths, durations).
VOLATILE = ("generated",)
DEFAULT_TOLERANCE = {"abs": 1e-9, "rel": 1e-6}
IGNORE = "ignore"  # a tolerance that leaves matching paths out of the comparison


class BaselineFormatError(ValueError):
    """A baseline is not an audit report, or one of a report version this analysis does not write."""


def check_report_format(d, what: str) -> None:
    if not isinstance(d, dict) or d.get("format") != REPORT_FORMAT:
        got = d.get("format") if isinstance(d, dict) else type(d).__name__
        raise BaselineFormatError(f"{what} is not a replaystore audit report (format {got!r}, expected "
                                  f"{REPORT_FORMAT!r}); write one with `replaystore audit STORE --out DIR`")
    if d.get("version") != REPORT_VERSION:
        raise BaselineFormatError(
            f"{what} is an audit report of version {d.get('version')!r}, but this analysis reads and writes "
            f"version {REPORT_VERSION}; regenerate the baseline from its store with "
            "`replaystore audit STORE --out DIR` (or scripts/make_test_data.py for tests/data)")


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
    differences: list = field(default_factory=list)
    compared: int = 0

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict:
        return {"ok": self.ok, "compared": self.compared, "differences": [asdict(d) for d in self.differences]}

    def summary(self, limit: int = 20) -> str:
        if self.ok:
            return f"no regression: {self.compared} values match the baseline"
        lines = [f"{len(self.differences)} difference(s) from the baseline ({self.compared} values compared):"]
        for d in self.differences[:limit]:
            tol = f" (tolerance {d.tolerance})" if d.tolerance and d.tolerance != DEFAULT_TOLERANCE else ""
            lines.append(f"  {d.kind}: {d.path}: baseline {d.baseline!r} -> candidate {d.candidate!r}{tol}")
        if len(self.differences) > limit:
            lines.append(f"  ... and {len(self.differences) - limit} more")
        return "\n".join(lines)


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


def _tolerance_for(path: str, tolerances: dict) -> dict:
    best, tol = -1, DEFAULT_TOLERANCE
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


def compare(baseline, candidate, tolerances=None) -> Comparison:
    """Differences between two audits, ignoring volatile fields (``generated``: path, times).

    ``tolerances`` maps glob patterns over dotted paths (``"composition.whole.fractions.*"``,
    ``"rewards.per_actor.*.mean"``) to an absolute tolerance, ``{"abs": x, "rel": y}``, or
    ``"ignore"`` (e.g. ``{"store.metadata.*": "ignore"}`` between two runs); the longest
    matching pattern wins; other numbers must agree to ``abs 1e-9 + rel 1e-6``. Anomalies are
    compared by (code, severity, actor): a new one or a resolved one is a difference.
    """
    tolerances = _check_tolerances(tolerances)
    base = _as_dict(baseline, "baseline")
    cand = _as_dict(candidate, "candidate", like=base)
    strip = lambda d: {k: v for k, v in d.items() if k not in VOLATILE and k != "anomalies"}  # noqa: E731
    fb, fc = _flatten(strip(base), "", {}), _flatten(strip(cand), "", {})
    diffs = []
    ignored = lambda p: _tolerance_for(p, tolerances).get("ignore", False)  # noqa: E731
    for path, b in fb.items():
        tol = _tolerance_for(path, tolerances)
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
    return Comparison(found + diffs, compared=len(fb) + len(base["anomalies"]))


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

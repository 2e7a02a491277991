"""Audits of runs of shards: one store audit per shard, a pooled summary, and findings that name
their shard. An incident confined to one shard (every row tagged with one actor while the other
shards are healthy) barely moves the pooled shares; per shard it is plain.

``audit_runs`` audits many runs in parallel on Dask and lays them side by side in one table.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from replaystore.store import Run

from ._anomalies import Anomaly
from ._checks import CHECKS
from ._report import SEVERITY_RANK, AuditReport, audit_store, jsonable

RUN_REPORT_FORMAT = "replaystore-run-audit"


@dataclass
class RunAuditReport:
    """What a run's audit found: ``shards`` maps each shard to its store ``AuditReport``; every
    entry of ``anomalies`` names its ``shard`` (None for findings about the run as a whole)."""

    run: dict
    pooled: dict
    shards: dict
    anomalies: list
    generated: dict = field(default_factory=dict)
    format: str = RUN_REPORT_FORMAT

    def to_dict(self) -> dict:
        return jsonable({"format": self.format, "run": self.run, "pooled": self.pooled,
                         "anomalies": self.anomalies, "shards": {k: r.to_dict() for k, r in self.shards.items()},
                         "generated": self.generated})

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def anomalies_at_least(self, severity: str) -> list:
        if severity not in SEVERITY_RANK:
            raise ValueError(f"severity {severity!r}: expected one of {list(SEVERITY_RANK)}")
        return [a for a in self.anomalies if SEVERITY_RANK[a["severity"]] >= SEVERITY_RANK[severity]]

    def codes(self) -> list[tuple]:
        """``(shard, code)`` of every finding."""
        return [(a["shard"], a["code"]) for a in self.anomalies]

    def summary(self) -> str:
        r, p = self.run, self.pooled
        lines = [f"run {r['path']}: {len(r['shards'])} shards, {p['rows']} rows, actors {r['actors']}",
                 "pooled actor fractions: " + ", ".join(f"{k} {v:.4f}" for k, v in p["fractions"].items())]
        for name, s in p["per_shard"].items():
            lines.append(f"  shard {name}: {s['rows']} rows, "
                         + ", ".join(f"{k} {v:.4f}" for k, v in s["fractions"].items()))
        counts = {k: sum(1 for a in self.anomalies if a["severity"] == k) for k in ("error", "warning", "info")}
        lines.append("anomalies: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
        for a in sorted(self.anomalies, key=lambda a: -SEVERITY_RANK[a["severity"]]):
            lines.append(f"  [{a['severity']}] shard {a['shard']}: {a['code']}: {a['message']}")
        return "\n".join(lines)

    def to_markdown(self, figures=None) -> str:
        r, p = self.run, self.pooled
        head = ["shard", "rows", *[f"{a} share" for a in r["actors"]], "findings"]
        body = []
        for name, s in p["per_shard"].items():
            found = [a["code"] for a in self.anomalies if a["shard"] == name]
            body.append([name, s["rows"], *[f"{s['fractions'][a]:.4f}" for a in r["actors"]], ", ".join(found) or "-"])
        body.append(["(pooled)", p["rows"], *[f"{p['fractions'][a]:.4f}" for a in r["actors"]],
                     ", ".join(a["code"] for a in self.anomalies if a["shard"] is None) or "-"])
        out = [f"# Audit of run {r['path']}", "", f"{len(r['shards'])} shards, {p['rows']} rows.", "",
               markdown_table(head, body), "", "## Findings", ""]
        out += [f"- **{a['severity']}** shard `{a['shard']}`: {a['code']}: {a['message']}" for a in self.anomalies] or ["none"]
        return "\n".join(out) + "\n"


def audit_run(path, expected=None, *, bucket_rows=None, progress=False, **facts) -> RunAuditReport:
    """Audit every shard of the run at ``path`` with the store audit, then pool and compare them.
    ``facts``: ``env_facts``, ``policies``, ``trust_policies``, as for ``audit``."""
    run = path if isinstance(path, Run) else Run.open(path)
    t0 = time.perf_counter()
    reports: dict[str, AuditReport] = {}
    for name in run.shards():
        with run.open_shard(name) as s:
            reports[name] = audit_store(s, expected, bucket_rows=bucket_rows, progress=progress, **facts)
    names = list(run.actors.names)
    counts = {sh: r.composition["whole"]["counts"] for sh, r in reports.items()}
    total = {a: sum(c[a] for c in counts.values()) for a in names}
    rows = sum(total.values())
    per_shard = {sh: {"rows": int(sum(c.values())), "counts": c,
                      "fractions": {a: (c[a] / sum(c.values()) if sum(c.values()) else 0.0) for a in names}}
                 for sh, c in counts.items()}
    pooled = {"rows": rows, "counts": total, "fractions": {a: (total[a] / rows if rows else 0.0) for a in names},
              "per_shard": per_shard, "rewards": _pooled_rewards(reports, names), "td": _pooled_td(reports, names)}
    anomalies = []
    for sh, r in reports.items():
        for a in r.anomalies:
            d = a.to_dict() if isinstance(a, Anomaly) else dict(a)
            anomalies.append({"shard": sh, **d, "message": f"shard {sh!r}: {d['message']}"})
    for check in CHECKS.values():  # the registered checks across shards (store checks ran per shard)
        if check.scope == "run":
            anomalies += check.fn(per_shard, names)[0]
    if not reports:
        anomalies.append({"shard": None, "code": "EMPTY_RUN", "severity": "warning",
                          "message": f"run {run.path} has no shards yet"})
    training = {"status": "no learner telemetry (run.learner_path) in this run"}
    if os.path.isfile(run.learner_path):  # a distributed learner's train_steps: per-actor batch metrics
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # its batch-vs-buffer check has no rows to see
            training = audit_store(run.learner_path, bucket_rows=bucket_rows).training
    pooled["training"] = training
    info = {"path": os.path.abspath(run.path), "uuid": run.uuid, "actors": names, "window": run.window,
            "metadata": run.metadata, "shards": list(reports)}
    return RunAuditReport(run=info, pooled=jsonable(pooled), shards=reports, anomalies=jsonable(anomalies),
                          generated={"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                     "seconds": round(time.perf_counter() - t0, 4)})


def _pooled_rewards(reports: dict, names: list) -> dict:
    """Per-actor count, mean and std of rewards over all shards (from each shard's summaries)."""
    out = {}
    for a in names:
        parts = [r.rewards["per_actor"][a] for r in reports.values() if r.rewards["per_actor"][a].get("count")]
        out[a] = _pool(parts)
    return out


def _pooled_td(reports: dict, names: list) -> dict:
    out = {}
    for a in names:
        parts = [r.samples["per_actor"][a]["td_error"] for r in reports.values()
                 if r.samples.get("status") == "ok" and a in r.samples.get("per_actor", {})
                 and r.samples["per_actor"][a]["td_error"].get("count")]
        out[a] = _pool(parts)
    return out


def _pool(parts: list) -> dict:
    """Count, mean and std of the union of groups from each group's count, mean and std."""
    parts = [(p["count"] - p.get("nonfinite", 0), p) for p in parts if p.get("mean") is not None]
    n = sum(k for k, _ in parts)  # the means and stds are over finite values
    if not n:
        return {"count": 0, "mean": None, "std": None}
    mean = sum(k * p["mean"] for k, p in parts) / n
    var = sum(k * ((p.get("std") or 0.0) ** 2 + (p["mean"] - mean) ** 2) for k, p in parts) / n
    return {"count": int(n), "mean": float(mean), "std": float(np.sqrt(var))}


def markdown_table(head: list, rows: list) -> str:
    line = lambda cells: "| " + " | ".join(str(c) for c in cells) + " |"  # noqa: E731
    return "\n".join([line(head), line(["---"] * len(head)), *[line(r) for r in rows]])

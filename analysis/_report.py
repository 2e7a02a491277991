"""``AuditReport``, the forensic summary of one store as a JSON-ready dataclass, its format version,
and ``audit_store``, which makes one. ``audit`` (``_audit.py``) sends a run of shards to
``_run_audit`` instead; this module imports neither, so the three import in one direction."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from replaystore.store import TRAIN_SAMPLES, TRAIN_STEPS

from . import _anomalies, _credit, _stats, _training
from ._anomalies import Anomaly
from ._checks import run_checks
from ._context import CHUNK_ROWS, Context, release_pages
from ._envfacts import env_facts as load_env_facts
from ._tags import check_policies
from ._load import StoreSource, open_store

REPORT_FORMAT = "replaystore-audit"
REPORT_VERSION = 2  # 2: the checks section, per-actor credit instead of majority labels, anomalies' episodes
SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2}
STAGES = ("load", "composition", "rewards", "episodes", "training", "anomalies")


def jsonable(x):
    """numpy scalars and arrays to Python, non-finite floats to None, tuples to lists."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


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
class AuditReport:
    """What an audit found. ``generated`` holds the volatile fields (path, wall-clock time,
    durations); every other field depends on the store's contents only."""

    store: dict
    composition: dict
    rewards: dict
    episodes: dict
    training: dict
    samples: dict
    batch_vs_buffer: dict
    anomalies: list
    notes: dict
    checks: dict = field(default_factory=dict)
    generated: dict = field(default_factory=dict)
    format: str = REPORT_FORMAT
    version: int = REPORT_VERSION

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("format", "version", "store", "composition", "rewards", "episodes",
                                           "training", "samples", "batch_vs_buffer", "notes", "checks",
                                           "generated")}
        d["anomalies"] = [a.to_dict() if isinstance(a, Anomaly) else a for a in self.anomalies]
        return jsonable(d)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, d: dict) -> "AuditReport":
        """Rebuild a report from ``to_dict()`` output; a report of another format version is refused."""
        check_report_format(d, "report")
        fields = {k: d[k] for k in ("store", "composition", "rewards", "episodes", "training", "samples",
                                    "batch_vs_buffer", "notes", "checks")}
        anomalies = [Anomaly(**a) for a in d["anomalies"]]
        return cls(**fields, anomalies=anomalies, generated=d.get("generated", {}))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "AuditReport":
        """Read a ``report.json`` written by ``to_json()``."""
        with open(path, encoding="utf-8") as f:
            try:
                d = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} is not a JSON audit report: {e}") from e
        return cls.from_dict(d)

    # ---------------------------------------------------------------- reading the findings
    def anomalies_at_least(self, severity: str) -> list:
        if severity not in SEVERITY_RANK:
            raise ValueError(f"severity {severity!r}: expected one of {list(SEVERITY_RANK)}")
        return [a for a in self.anomalies if SEVERITY_RANK[_sev(a)] >= SEVERITY_RANK[severity]]

    def codes(self) -> list[str]:
        return [a.code if isinstance(a, Anomaly) else a["code"] for a in self.anomalies]

    def to_markdown(self, figures: dict[str, str] | None = None) -> str:
        """A readable report; ``figures`` maps plot names to image files beside it."""
        from ._markdown import to_markdown

        return to_markdown(self, figures)

    def summary(self) -> str:
        """A few lines for a terminal."""
        s, c = self.store, self.composition
        lines = [f"{s['rows']} rows, window {s['window']}, actors {s['actors']}"]
        if s["rows"]:
            w = c["whole"]["fractions"]
            lines.append("actor fractions (whole store): " + ", ".join(f"{k} {v:.4f}" for k, v in w.items()))
            ww = c["window"]["fractions"]
            lines.append("actor fractions (replay window): " + ", ".join(f"{k} {v:.4f}" for k, v in ww.items()))
        lines.append(f"training telemetry: {self.training.get('status')}"
                     + (f", {self.training['steps']['count']} steps" if self.training.get("status") == "ok" else ""))
        counts = {k: sum(1 for a in self.anomalies if _sev(a) == k) for k in ("error", "warning", "info")}
        lines.append("anomalies: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
        for a in sorted(self.anomalies, key=lambda a: -SEVERITY_RANK[_sev(a)]):
            d = a.to_dict() if isinstance(a, Anomaly) else a
            lines.append(f"  [{d['severity']}] {d['code']}: {d['message']}")
            ev = d.get("details") or {}
            if "evidence" in ev:
                where = ", ".join(x for x in (
                    f"actor {d['actor']!r}" if d.get("actor") else "", f"rows {d['rows']}" if d.get("rows") else "",
                    f"episodes {d['episodes'][:5]}" + (f" of {ev.get('episodes_count')}"
                                                       if ev.get("episodes_count", 0) > 5 else "")
                    if d.get("episodes") else "") if x)
                lines.append(f"      evidence: {ev.get('measure', 'value')} {_num(ev['evidence'])}, threshold "
                             f"{_num(ev.get('threshold'))}; {where}")
        ran = [k for k, v in self.checks.items() if v["status"] == "ran"]
        skipped = {k: v["reason"] for k, v in self.checks.items() if v["status"] == "skipped"}
        if self.checks:
            lines.append(f"checks: {len(ran)} ran, {len(skipped)} skipped"
                         + "".join(f"\n  skipped {k}: {r}" for k, r in skipped.items()))
        return "\n".join(lines)


def _num(x) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _sev(a) -> str:
    return a.severity if isinstance(a, Anomaly) else a["severity"]


BIG_STORE = 100_000  # rows from which progress="auto" shows a bar
# Scalar columns read in full; the state columns are read block by block by the checks' row pass.
SCALARS = ("actor", "episode", "step", "reward", "done", "time", "discrete_action", "truncated")


def _read_scalars(s, columns: list) -> dict:
    """The scalar columns whole, read chunk by chunk: the mapped pages each chunk came from are dropped
    from this process after it (the copies are ours), so they never all count in its RSS at once."""
    n = len(s)
    raw = {c: np.empty(n, s.schema[c].dtype) for c in columns}
    for lo in range(0, n, CHUNK_ROWS):
        part = s.read(columns, lo, min(n, lo + CHUNK_ROWS))
        for c in columns:
            raw[c][lo:lo + CHUNK_ROWS] = part[c]
        release_pages(s)
    return raw


def audit_store(path: StoreSource, expected: Mapping[str, Any] | None = None, *, bucket_rows: int | None = None, progress: bool | str = False,
                env_facts=None, policies=None, trust_policies: bool = False) -> AuditReport:
    """Audit the committed rows of the store at ``path`` (or an open ``ReplayStore``); see ``audit``."""
    from replaystore.common.progress import progress as progress_bar

    expected = _anomalies.check_expected(expected)
    policies = check_policies(policies)
    if bucket_rows is not None and int(bucket_rows) < 1:
        raise ValueError(f"bucket_rows={bucket_rows}: expected a positive number of rows")
    t0 = time.perf_counter()
    timings = {}
    with open_store(path) as s:
        show = (len(s) >= BIG_STORE) if progress == "auto" else bool(progress)
        bar = progress_bar(total=len(STAGES), desc="audit", disable=not show, leave=False)

        def tick(name):
            timings[name] = round(time.perf_counter() - t0, 4)
            bar.update(1)
            bar.set_postfix_str(name)

        names = s.actors.names
        # ``time`` (8 bytes a row) is read only for the training log it is compared with
        raw = _read_scalars(s, [c for c in SCALARS if c in s.schema and not s.schema[c].shape
                                and (c != "time" or s.tables.get(TRAIN_STEPS))])
        steps_raw = s.read_table(TRAIN_STEPS) if s.tables.get(TRAIN_STEPS) else None
        samples_raw = s.read_table(TRAIN_SAMPLES) if s.tables.get(TRAIN_SAMPLES) else None
        store = {"rows": len(s), "window": s.window, "window_start": s.window_start(), "actors": list(names),
                 "metadata": dict(s.metadata), "format_version": s.format_version, "tables": dict(s.tables),
                 "checkpoints": len(s.checkpoints), "columns": list(s.schema.names)}
        spath = s.path
        tick("load")
        shape_errors = []
        if steps_raw is not None and steps_raw["batch_count"].shape[1:] != (len(names),):
            shape_errors.append(Anomaly(
                "TELEMETRY_SHAPE", "error",
                f"train_steps holds per-actor columns of {steps_raw['batch_count'].shape[1:]} entries, but the "
                f"vocabulary has {len(names)} actors {list(names)}: the trainer wrote telemetry for another "
                "vocabulary; training checks skipped",
                steps=[int(steps_raw["step"][0]), int(steps_raw["step"][-1]) + 1]))
            steps_raw = None
        n = store["rows"]
        codes = raw["actor"]
        reward = raw.get("reward", np.zeros(n, np.float32))
        bucket = int(bucket_rows) if bucket_rows is not None else _stats.bucket_size(n)
        whole = _stats.composition(codes, names, 0, n)
        composition = {"whole": whole, "window": _stats.composition(codes, names, store["window_start"], n),
                       "over_time": _stats.composition_over_time(codes, names, bucket)}
        tick("composition")
        rewards = {"per_actor": {x: _stats.describe(reward[codes == i]) for i, x in enumerate(names)},
                   "histogram": _stats.histograms({x: reward[codes == i] for i, x in enumerate(names)})}
        tick("rewards")
        if "episode" in raw and "done" in raw:
            table = _stats.episode_table(raw["episode"], codes, reward, raw["done"], len(names))
            episodes = _stats.episodes_section(table, _credit.credit(table, raw["episode"], codes, reward, names))
        else:
            table = None
            episodes = {"status": "the store has no episode/done columns"}
        tick("episodes")
        training = _training.steps_section(steps_raw, names)
        samples = _training.samples_section(samples_raw, names, codes)
        declared = expected.get("batch_fractions")
        if declared is None and _anomalies.run_setting(store["metadata"], "sampler_strategy") == "stratified":
            declared = _anomalies.run_setting(store["metadata"], "actor_fractions")
        bvb = _training.batch_vs_buffer(steps_raw, names, codes, raw.get("time", np.zeros(0)), store["window"],
                                        declared if isinstance(declared, dict) else None)
        tick("training")
        meta = store["metadata"]
        facts, env_problems = load_env_facts(meta, env_facts)
        ctx = Context(s, names, meta, expected, raw, facts)
        ctx.policies, ctx.trust_policies, ctx.env_problems = policies, bool(trust_policies), env_problems
        ctx.sections = {"whole": whole, "table": table, "steps_raw": steps_raw, "training": training,
                        "samples": samples, "samples_raw": samples_raw, "bvb": bvb}
        found, checks, check_seconds = run_checks(ctx)
        anomalies = shape_errors + env_block_anomalies(env_problems, meta) + found
        tick("anomalies")
    bar.close()
    notes = {
        "episodes": episodes.get("attribution", episodes.get("status")),
        "composition": f"'whole' is every committed row, 'window' the last {store['window']} rows (the replay "
                       f"window), 'over_time' consecutive buckets of {bucket} rows",
        "batch_vs_buffer": bvb.get("method", bvb.get("status")),
        "distributions": "statistics of finite values; 'nonfinite' counts the rest; quantiles by linear "
                         "interpolation; histograms of different actors share bin edges",
        "env_facts": facts.describe() if facts is not None else "no facts about the environment: the checks that "
                     "need them are skipped (declare an 'env' block in the metadata or pass --env-facts)",
        "checks": f"each check's evidence and thresholds are under 'checks'; over-time comparisons use "
                  f"{ctx.nseg} segments of {ctx.seg_rows} rows",
        "expected": {k: v for k, v in expected.items()},
    }
    generated = {"path": os.path.abspath(spath), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "seconds": {**timings, "checks": check_seconds}}
    return AuditReport(store=store, composition=composition, rewards=rewards, episodes=episodes,
                       training=training, samples=samples, batch_vs_buffer=bvb,
                       anomalies=anomalies, notes=jsonable(notes), checks=checks, generated=generated)


def env_block_anomalies(problems: list, meta: dict) -> list:
    """A malformed ``env`` block in the store's metadata is a finding, not a crash (a store is data)."""
    return [Anomaly("ENV_FACTS_INVALID", "error", p + ": the checks that need these facts run without them",
                    details={"env": meta.get("env")}) for p in problems if "metadata 'env'" in p]

"""Forensic analysis of replaystore runs: loaders to pandas, the audit report, plots, regression
comparison, and TD recomputation under a saved checkpoint.

The recorded incident buffer (every frame stored as 'dqn' while the run declared an expert):

>>> import replaystore.analysis as analysis
>>> report = analysis.audit("tests/data/incident.h5")
>>> [(a.code, a.severity) for a in report.anomalies]
[('SINGLE_ACTOR', 'error'), ('EXPERT_FRACTION', 'error')]
>>> analysis.load_transitions("tests/data/healthy.h5").actor.value_counts().to_dict()
{'dqn': 2257, 'expert': 815}

The checks the audit runs are registered in ``CHECKS`` (name -> function, the columns it needs,
what it looks for); ``report.checks`` says which ran and which were skipped and why:

>>> report = analysis.audit("tests/data/negated.h5")
>>> [a.code for a in report.anomalies_at_least("error")], report.checks["reward_currency"]["findings"]
(['REWARD_SIGN'], ['REWARD_SIGN'])
>>> report.checks["telemetry"]["reason"]
'no training telemetry (train_steps / train_samples tables) in the store yet'
"""

from ._audit_runs import audit_runs, write_comparison
from ._anomalies import ANOMALY_CODES, EXPECTED_KEYS, SEVERITIES, Anomaly
from ._checks import CHECKS, Check
from ._export import ExportedFile, export_parquet, provenance
from ._compare import BaselineFormatError, Comparison, Difference, assert_audit_matches, compare
from ._load import load_train_samples, load_train_steps, load_transitions
from ._recompute import recompute_td
from ._audit import audit
from ._envfacts import ENV_KEYS, EnvFactsError
from ._report import REPORT_FORMAT, REPORT_VERSION, AuditReport
from ._run_audit import RunAuditReport, audit_run
from ._tags import PolicyError

__all__ = [
    "ANOMALY_CODES", "Anomaly", "ENV_KEYS", "EnvFactsError", "AuditReport", "BaselineFormatError", "CHECKS", "Check", "Comparison", "Difference",
    "EXPECTED_KEYS", "ExportedFile", "PolicyError",
    "REPORT_FORMAT", "REPORT_VERSION", "RunAuditReport", "SEVERITIES", "assert_audit_matches", "audit", "audit_run",
    "audit_runs", "compare", "export_parquet",
    "load_train_samples", "load_train_steps", "load_transitions", "plots", "provenance", "recompute_td",
    "write_comparison",
]


def __getattr__(name):
    # matplotlib is imported on first use of analysis.plots, not by the loaders.
    if name == "plots":
        import importlib

        return importlib.import_module(".plots", __name__)
    raise AttributeError(f"module 'replaystore.analysis' has no attribute {name!r}")

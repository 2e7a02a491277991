"""Audits across shards and runs: findings name their shard; Dask compares runs side by side."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from replaystore.analysis import RunAuditReport, audit, audit_runs
from replaystore.cli import main
from replaystore.store import Run, Schema

ACTORS = ("expert", "dqn")


def block(n: int, expert_share: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    expert = rng.random(n) < expert_share
    states = rng.standard_normal((n + 1, 2), dtype=np.float32)  # each row's next state is the next row's state,
    done = np.arange(n) % 20 == 19
    nxt = np.where(done[:, None], states[1:] + 10, states[1:])  # except at an episode's end (then a reset)
    return {"state": states[:-1], "next_state": nxt,
            "discrete_action": rng.integers(0, 2, n).astype(np.int32),
            "continuous_action": np.zeros((n, 0), np.float32),
            "reward": np.where(expert, 1.0, 0.5).astype(np.float32), "done": np.arange(n) % 20 == 19,
            "actor": np.where(expert, "expert", "dqn").tolist()}


def make_run(path, shares: dict, n: int = 400) -> str:
    """A run whose shard k has expert share shares[k] (metadata declares 0.26)."""
    run = Run.create(path, Schema.transition((2,)), actors=ACTORS, window=10_000, metadata={"expert_ratio": 0.26})
    for k, (name, share) in enumerate(shares.items()):
        with run.create_shard(name) as s:
            s.extend(block(n, share, seed=k))
    return run.path


HEALTHY = {"w0": 0.26, "w1": 0.26, "w2": 0.26}
INCIDENT = {"w0": 0.26, "w1": 0.26, "w2": 0.0, "w3": 0.26}  # w2's worker tags every frame 'dqn'


def test_incident_hidden_in_one_shard_is_named(tmp_path):
    """One all-dqn shard among healthy ones: the pooled share barely moves, the findings name w2."""
    rep = audit(make_run(tmp_path / "run", INCIDENT))
    assert isinstance(rep, RunAuditReport)
    assert rep.run["shards"] == ["w0", "w1", "w2", "w3"]
    assert 0.17 < rep.pooled["fractions"]["expert"] < 0.22
    bad = {a["shard"] for a in rep.anomalies_at_least("error")}
    assert bad == {"w2"}
    codes = {code for shard, code in rep.codes() if shard == "w2"}
    assert {"SINGLE_ACTOR", "SHARD_COMPOSITION"} <= codes
    assert all(a["shard"] in rep.run["shards"] and f"shard {a['shard']!r}" in a["message"] for a in rep.anomalies)
    assert rep.pooled["per_shard"]["w2"]["fractions"] == {"expert": 0.0, "dqn": 1.0}
    assert "shard w2" in rep.summary() and "| w2 | 400 | 0.0000 | 1.0000 |" in rep.to_markdown()


def test_run_checks_are_registered_and_their_codes_listed(tmp_path):
    """The check across shards is in analysis.CHECKS (scope "run"), and every code a run audit raises is
    listed in ANOMALY_CODES with its severity."""
    from replaystore.analysis import ANOMALY_CODES, CHECKS

    assert ["shard_composition"] == [n for n, c in CHECKS.items() if c.scope == "run"]
    assert {"store", "run"} == {c.scope for c in CHECKS.values()}
    reports = [audit(make_run(tmp_path / "incident", INCIDENT)), audit(make_run(tmp_path / "empty", {}))]
    codes = [(a["code"], a["severity"]) for rep in reports for a in rep.anomalies]
    assert {"SHARD_COMPOSITION", "EMPTY_RUN"} <= {c for c, _ in codes}
    for code, severity in codes:
        assert code in ANOMALY_CODES and severity in ANOMALY_CODES[code], code


def test_healthy_run_has_no_errors_and_pooled_rewards(tmp_path):
    """A healthy run has no error, and its pooled per-actor rewards are the rows' own."""
    rep = audit(make_run(tmp_path / "run", HEALTHY))
    assert rep.anomalies_at_least("error") == []
    assert rep.pooled["rewards"]["expert"]["mean"] == pytest.approx(1.0)
    assert rep.pooled["rewards"]["dqn"]["mean"] == pytest.approx(0.5)
    assert rep.pooled["rows"] == 1200 and sum(rep.pooled["counts"].values()) == 1200
    assert rep.pooled["training"]["status"].startswith("no learner telemetry")


def test_dask_compares_runs_side_by_side(tmp_path, dask_scratch):
    """Three runs audited on a Dask LocalCluster give one row each, the incident's with its shard;
    the cluster's scratch space is the test's own."""
    paths = [make_run(tmp_path / "a", HEALTHY), make_run(tmp_path / "b", INCIDENT), make_run(tmp_path / "c", HEALTHY)]
    table = audit_runs(paths, engine="dask", n_workers=2)
    local = audit_runs(paths, engine="local")
    pd.testing.assert_frame_equal(table, local)
    assert table["run"].tolist() == paths
    assert table["errors"].tolist()[0] == 0 and table["errors"].tolist()[1] > 0
    assert "w2:SINGLE_ACTOR" in table["anomalies"][1] and table["anomalies"][0] == "-"
    assert table["shards"].tolist() == [3, 4, 3]
    assert table["reward mean expert"].tolist()[1] == pytest.approx(1.0)
    assert ["dask-scratch-space"] == os.listdir(dask_scratch)


def test_cli_audits_a_run_and_many_runs(tmp_path, capsys, dask_scratch):
    """`replaystore audit RUN` reports per shard; with --engine dask it writes runs.csv and runs.md."""
    a, b = make_run(tmp_path / "a", HEALTHY), make_run(tmp_path / "b", INCIDENT)
    assert main(["audit", b, "--out", str(tmp_path / "one"), "--fail-on", "error"]) == 1
    assert "shard w2: SINGLE_ACTOR" in capsys.readouterr().out
    assert (tmp_path / "one" / "report.json").exists()
    assert main(["audit", a, b, "--engine", "dask", "--workers", "2", "--out", str(tmp_path / "many")]) == 0
    out = capsys.readouterr().out
    assert "# Audit of 2 runs" in out and "w2:SHARD_COMPOSITION" in out
    assert pd.read_csv(tmp_path / "many" / "runs.csv")["shards"].tolist() == [3, 4]

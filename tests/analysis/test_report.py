"""AuditReport: contents, JSON round trip, summary and Markdown."""

from __future__ import annotations

import json

import pytest
from analysis_helpers import recorded, rows_block

from replaystore.analysis import AuditReport, BaselineFormatError, audit
from replaystore.store import ReplayStore, Schema, errors


@pytest.fixture(scope="module")
def healthy():
    return audit(recorded("healthy"))


def test_composition_whole_window_and_over_time(healthy):
    """Whole-store and window fractions match the store's own counts; buckets cover every row."""
    with ReplayStore.open(recorded("healthy")) as s:
        assert s.actor_composition(window=False)["fractions"] == healthy.composition["whole"]["fractions"]
        assert s.actor_composition(window=True)["fractions"] == healthy.composition["window"]["fractions"]
    ot = healthy.composition["over_time"]
    assert (0, 3072) == (ot["start"][0], ot["stop"][-1])
    assert all(abs(e + d - 1) < 1e-12 for e, d in zip(ot["fractions"]["expert"], ot["fractions"]["dqn"]))


def test_per_actor_sections(healthy):
    """Rewards, episodes and TD/Q sections are given per actor."""
    assert {"expert", "dqn"} == set(healthy.rewards["per_actor"]) == set(healthy.samples["per_actor"])
    assert healthy.rewards["per_actor"]["expert"]["mean"] > healthy.rewards["per_actor"]["dqn"]["mean"]
    e = healthy.episodes
    assert e["ended"] == e["returns"]["count"] == sum(e["credit"]["by_share"]["expert"]["episodes"])
    frames = {x: v["frames"] for x, v in e["credit"]["per_actor"].items()}
    assert 0 < frames["expert"] <= healthy.composition["whole"]["counts"]["expert"]
    t = healthy.training
    assert 20 == len(t["trend"]["q_mean"]["dqn"])
    assert t["per_actor"]["dqn"]["td_abs_mean"] > t["per_actor"]["expert"]["td_abs_mean"]


def test_json_round_trip(healthy):
    """to_json is strict JSON (no NaN) and from_dict rebuilds an equal report."""
    text = healthy.to_json()
    d = json.loads(text)
    assert "NaN" not in text
    assert ("replaystore-audit", 2) == (d["format"], d["version"])
    again = AuditReport.from_dict(d)
    assert d == again.to_dict()


def test_load_refuses_other_versions(tmp_path, healthy):
    """A report of another version, or a file that is not a report, is refused clearly."""
    d = healthy.to_dict()
    d["version"] = 99
    p = tmp_path / "r.json"
    p.write_text(json.dumps(d))
    with pytest.raises(BaselineFormatError, match="version 99.*version 2"):
        AuditReport.load(p)
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not a JSON audit report"):
        AuditReport.load(p)


def test_summary_and_severity_filter():
    """The summary names the anomalies; anomalies_at_least filters by severity."""
    r = audit(recorded("corrupt"))
    text = r.summary()
    assert "UNKNOWN_ACTOR_CODE" in text and "3072 rows" in text
    errs = r.anomalies_at_least("error")
    assert errs and all(a.severity == "error" for a in errs)
    assert len(r.anomalies_at_least("warning")) > len(errs)
    with pytest.raises(ValueError, match="severity 'bad'"):
        r.anomalies_at_least("bad")


def test_markdown_has_every_section(healthy):
    """The readable report holds each section, the method notes and the figure links given."""
    md = healthy.to_markdown({"rewards": "rewards.png"})
    for title in ("## Anomalies", "## Actor composition", "## Rewards per actor", "## Episodes",
                  "## Training telemetry", "## Batch composition against the buffer", "## Method notes"):
        assert title in md
    assert "![rewards](rewards.png)" in md
    assert "return-to-go" in md and "## Checks" in md
    assert "tag_policy | skipped | no policy recorded for actor 'expert'" in md


def test_audit_of_a_store_being_written(tmp_path):
    """The audit of a live store covers its committed prefix and does not stop the writer."""
    path = tmp_path / "live.h5"
    w = ReplayStore.create(path, Schema.transition((4,), continuous_dim=1), actors=("expert", "dqn"), window=100,
                           metadata={"expert_ratio": 0.5}, commit_every=10_000, commit_seconds=3600)
    try:
        w.extend(rows_block(30, "expert"))
        w.extend(rows_block(30, "dqn", seed=1))
        w.commit()
        w.extend(rows_block(10, "dqn", seed=2))
        r = audit(str(path))
        assert 60 == r.store["rows"]
        assert {"expert": 0.5, "dqn": 0.5} == r.composition["whole"]["fractions"]
        assert 70 == w.commit()
    finally:
        w.close()


def test_audit_bad_input(tmp_path):
    """A path that is not a store, and a bad bucket size, raise clear errors."""
    p = tmp_path / "x.h5"
    p.write_text("hello")
    with pytest.raises(errors.NotAStoreError, match="not an HDF5 file"):
        audit(p)
    with pytest.raises(ValueError, match="bucket_rows=0"):
        audit(recorded("healthy"), bucket_rows=0)


def test_progress_bar_over_stages(capsys):
    """progress=True draws a tqdm bar over the audit stages on stderr."""
    audit(recorded("healthy"), progress=True)
    err = capsys.readouterr().err
    assert "audit" in err and "6/6" in err


def test_markdown_tables_escape_pipes(healthy):
    """Headers and cells holding '|' (as in '|TD|') are escaped so tables keep their columns."""
    md = healthy.to_markdown()
    line = next(ln for ln in md.splitlines() if ln.startswith("| actor | batch rows"))
    assert "mean \\|TD\\|" in line
    assert 7 == line.replace("\\|", "").count("|")

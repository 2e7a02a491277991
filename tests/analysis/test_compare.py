"""Regression comparison: fresh audits of the recorded buffers against their golden reports."""

from __future__ import annotations

import json

import pytest
from analysis_helpers import RECORDED, golden, recorded

from replaystore.analysis import BaselineFormatError, assert_audit_matches, audit, compare


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_buffer_matches_its_golden(name):
    """A fresh audit of each recorded buffer equals its golden report (volatile fields aside)."""
    c = assert_audit_matches(recorded(name), golden(name))
    assert c.ok and c.compared > 500


def test_golden_of_incident_flags_it():
    """The incident's golden report itself holds the SINGLE_ACTOR error."""
    with open(golden("incident")) as f:
        d = json.load(f)
    assert "SINGLE_ACTOR" in [a["code"] for a in d["anomalies"]]


def test_incident_against_healthy_baseline_is_a_regression():
    """Comparing the incident store with the healthy baseline reports changed values and new anomalies."""
    c = compare(golden("healthy"), recorded("incident"))
    kinds = {d.kind for d in c.differences}
    assert not c.ok
    assert {"changed", "new_anomaly"} <= kinds
    assert any(d.path == "anomalies[SINGLE_ACTOR]" for d in c.differences)
    assert any(d.path == "composition.whole.fractions.expert" for d in c.differences)
    with pytest.raises(AssertionError, match="(?s)does not match the baseline.*SINGLE_ACTOR"):
        assert_audit_matches(recorded("incident"), golden("healthy"))


def test_tolerances_by_pattern():
    """A wide enough tolerance on matching paths hides their changes; the longest pattern wins."""
    base = audit(recorded("healthy")).to_dict()
    cand = json.loads(json.dumps(base))
    cand["composition"]["whole"]["fractions"]["expert"] += 0.01
    assert ["composition.whole.fractions.expert"] == [d.path for d in compare(base, cand).differences]
    assert compare(base, cand, {"composition.*.fractions.*": 0.02}).ok
    c = compare(base, cand, {"composition.*": 0.02, "composition.whole.fractions.*": {"abs": 0.001}})
    assert ["composition.whole.fractions.expert"] == [d.path for d in c.differences]


def test_missing_and_added_paths():
    """A value only in the baseline is 'missing', one only in the candidate 'added'."""
    base = audit(recorded("healthy")).to_dict()
    cand = json.loads(json.dumps(base))
    del cand["store"]["metadata"]["seed"]
    cand["store"]["metadata"]["extra"] = 1
    got = {(d.kind, d.path) for d in compare(base, cand).differences}
    assert {("missing", "store.metadata.seed"), ("added", "store.metadata.extra")} == got


def test_baseline_of_another_version_is_refused(tmp_path):
    """A baseline written by another report version raises, naming both versions."""
    d = json.load(open(golden("healthy")))
    d["version"] = 1
    p = tmp_path / "old.json"
    p.write_text(json.dumps(d))
    with pytest.raises(BaselineFormatError, match="version 1.*reads and writes version 2"):
        compare(p, recorded("healthy"))
    with pytest.raises(BaselineFormatError, match="not a replaystore audit report"):
        compare({"format": "other"}, recorded("healthy"))


def test_bad_tolerances_and_inputs():
    """Malformed tolerances and inputs of the wrong type raise with the accepted forms."""
    with pytest.raises(ValueError, match=r"tolerances\['x'\]=-1"):
        compare(golden("healthy"), golden("healthy"), {"x": -1})
    with pytest.raises(TypeError, match="expected an AuditReport"):
        compare(golden("healthy"), 3)


def test_ignored_paths():
    """'ignore' leaves matching paths out, changed, missing or added."""
    base = audit(recorded("healthy")).to_dict()
    cand = json.loads(json.dumps(base))
    cand["store"]["metadata"]["seed"] = 99
    cand["store"]["metadata"]["git"] = "abc"
    assert not compare(base, cand).ok
    assert compare(base, cand, {"store.metadata.*": "ignore"}).ok

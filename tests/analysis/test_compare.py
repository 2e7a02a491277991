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


def test_differences_are_summarised_per_metric():
    """Element-wise differences of one list collapse into one line per metric with the largest change."""
    base = audit(recorded("healthy")).to_dict()
    cand = json.loads(json.dumps(base))
    over = cand["composition"]["over_time"]["fractions"]["expert"]
    for i in range(len(over)):
        over[i] += 0.001 * (i + 1)
    c = compare(base, cand)
    assert len(over) == len(c.differences)
    groups = c.by_metric()
    assert 1 == len(groups)
    g = groups[0]
    assert ("composition.over_time.fractions.expert[*]", len(over)) == (g["metric"], g["count"])
    assert g["at"] == f"composition.over_time.fractions.expert[{len(over) - 1}]"
    assert abs(g["max_abs_diff"] - 0.001 * len(over)) < 1e-9
    lines = c.summary().splitlines()
    assert 2 == len(lines) and f"{len(over)} values, max |diff| " in lines[1]


def test_a_tolerance_matching_nothing_is_reported():
    """A tolerance pattern that matches no value of either report is listed in unmatched and the summary."""
    c = compare(golden("healthy"), golden("healthy"), {"composition.*.fraction.*": 0.1, "rewards.*": 0.1})
    assert ["composition.*.fraction.*"] == c.unmatched
    assert c.ok and "tolerance pattern 'composition.*.fraction.*' matches no value" in c.summary()
    assert ["composition.*.fraction.*"] == c.to_dict()["unmatched_tolerances"]


def test_run_to_run_defaults_absorb_noise_but_not_an_incident():
    """Noise-sized changes pass under RUN_TO_RUN_TOLERANCES (not exactly); the incident still fails."""
    from replaystore.analysis._compare import RUN_TO_RUN_TOLERANCES

    base = audit(recorded("healthy")).to_dict()
    cand = json.loads(json.dumps(base))
    whole = cand["composition"]["whole"]["fractions"]
    whole["expert"] += 0.015
    whole["dqn"] -= 0.015
    cand["store"]["metadata"]["seed"] = 99
    q = cand["samples"]["per_actor"]["dqn"]["q"]
    q["quantiles"]["0.5"] = (q["quantiles"]["0.5"] or 0) + 3.0
    assert not compare(base, cand).ok
    assert compare(base, cand, defaults=RUN_TO_RUN_TOLERANCES).ok
    c = compare(golden("healthy"), recorded("incident"), defaults=RUN_TO_RUN_TOLERANCES)
    paths = {d.path for d in c.differences}
    assert {"anomalies[SINGLE_ACTOR]", "composition.whole.fractions.expert"} <= paths
    # a user's tolerance takes precedence over the defaults
    assert not compare(base, cand, {"composition.whole.fractions.*": 0.001}, defaults=RUN_TO_RUN_TOLERANCES).ok


def test_run_to_run_defaults_compare_each_checks_verdict_not_its_measurements():
    """A check's evidence numbers may move between runs; a check that stops running is a difference."""
    from replaystore.analysis._compare import RUN_TO_RUN_TOLERANCES

    base = audit(recorded("healthy")).to_dict()
    cand = json.loads(json.dumps(base))
    ev = cand["checks"]["transition_chain"]["evidence"]
    ev["episode_ends"] = (ev.get("episode_ends") or 0) + 7
    assert not compare(base, cand).ok
    assert compare(base, cand, defaults=RUN_TO_RUN_TOLERANCES).ok
    cand["checks"]["transition_chain"]["status"] = "skipped"
    c = compare(base, cand, defaults=RUN_TO_RUN_TOLERANCES)
    assert ["checks.transition_chain.status"] == [d.path for d in c.differences]

"""Each anomaly the audit must raise, on stores built to show it (and not on a healthy one)."""

from __future__ import annotations

import numpy as np
import pytest
from analysis_helpers import recorded, rows_block

from replaystore.analysis import Anomaly, audit
from replaystore.analysis._synthetic import corrupt
from replaystore.store import ReplayStore, Schema


def by_code(report) -> dict:
    return {a.code: a for a in report.anomalies}


def test_healthy_run_has_no_anomaly():
    """The healthy recorded buffer, expert mixed in at the declared 0.26, raises nothing."""
    assert [] == audit(recorded("healthy")).anomalies


def test_incident_is_caught():
    """Every frame stored as 'dqn' while expert_ratio=0.26: SINGLE_ACTOR and EXPERT_FRACTION errors."""
    a = by_code(audit(recorded("incident")))
    assert ("error", "dqn", [0, 3072]) == (a["SINGLE_ACTOR"].severity, a["SINGLE_ACTOR"].actor, a["SINGLE_ACTOR"].rows)
    assert "expert_ratio" in a["SINGLE_ACTOR"].message
    assert ("error", 0.0) == (a["EXPERT_FRACTION"].severity, a["EXPERT_FRACTION"].details["realised"])
    assert "EXPERT_FRACTION_DRIFT" not in a  # SINGLE_ACTOR already explains every segment


def test_single_actor_without_declared_expert_is_a_warning(tmp_path):
    """One actor of two holds every row, with no metadata about the other: a warning, not an error."""
    path = tmp_path / "one.h5"
    with ReplayStore.create(path, Schema.transition((4,), continuous_dim=1), actors=("expert", "dqn"), window=100) as s:
        s.extend(rows_block(40, "dqn"))
    a = by_code(audit(path))
    assert "warning" == a["SINGLE_ACTOR"].severity
    assert "vocabulary" in a["SINGLE_ACTOR"].message


def test_expected_expert_fraction_overrides_metadata():
    """expected={'expert_fraction': (0.5, 0.02)} flags the healthy run, whose share is ~0.26."""
    a = by_code(audit(recorded("healthy"), expected={"expert_fraction": (0.5, 0.02)}))
    assert "expected['expert_fraction']" in a["EXPERT_FRACTION"].message
    assert (0.5, 0.02) == (a["EXPERT_FRACTION"].details["declared"], a["EXPERT_FRACTION"].details["tolerance"])


def test_drift_of_the_expert_share(make_run):
    """The expert share sliding from 0.26 to 0 over a run is flagged with the rows concerned."""
    a = by_code(audit(make_run(rows=20_000, window=4096, drift_to=0.0, telemetry=False)))
    d = a["EXPERT_FRACTION_DRIFT"]
    assert ("warning", "expert") == (d.severity, d.actor)
    assert d.rows[1] == 20_000 and d.rows[0] > 0
    assert d.details["slope_per_segment"] < 0


def test_corrupt_store_raises_each_expected_code():
    """The corrupt recorded buffer shows every damage it was built with."""
    a = by_code(audit(recorded("corrupt")))
    assert {"UNKNOWN_ACTOR_CODE", "NONFINITE_REWARD", "NONFINITE_LOSS", "BATCH_COMPOSITION", "TD_IMBALANCE",
            "SAMPLE_ACTOR_MISMATCH", "EXPERT_FRACTION"} <= set(a)
    assert ([500, 502], {"7": 2}) == (a["UNKNOWN_ACTOR_CODE"].rows, a["UNKNOWN_ACTOR_CODE"].details["codes"])
    assert [900, 901] == a["NONFINITE_REWARD"].rows
    assert [100, 102] == a["NONFINITE_LOSS"].steps
    assert ("dqn", "warning") == (a["TD_IMBALANCE"].actor, a["TD_IMBALANCE"].severity)
    assert a["BATCH_COMPOSITION"].details["p_value"] < 1e-3


def test_batch_composition_consistent_on_healthy_run():
    """Uniform sampling from the buffer passes the chi-square test."""
    b = audit(recorded("healthy")).batch_vs_buffer
    assert b["test"]["p_value"] > 1e-3
    assert b["max_abs_diff"] < 0.03


def test_td_threshold_is_configurable(make_run):
    """td_ratio_max in expected moves the TD-imbalance threshold (2.5x apart: flagged at 2, not at 5)."""
    path = make_run()
    assert "TD_IMBALANCE" not in by_code(audit(path))
    assert "TD_IMBALANCE" in by_code(audit(path, expected={"td_ratio_max": 2.0}))


def test_nonfinite_telemetry_values(tmp_path, make_run):
    """A NaN td_abs_mean for an actor that was sampled is an error; NaN where it was not sampled is not."""
    from replaystore.analysis._synthetic import RunSpec, write_run

    path = tmp_path / "nan.h5"
    write_run(path, RunSpec(rows=1200, window=512, train_steps=80, batch_size=32, samples_every=2))
    import h5py

    with h5py.File(path, "r+") as f:
        td = f["tables/train_steps/td_abs_mean"]
        row = td[5]
        row[0] = np.nan
        td[5] = row
    corrupt(path)
    a = by_code(audit(path))
    assert [5, 6] == a["NONFINITE_TD_ABS_MEAN"].steps
    assert "expert" == a["NONFINITE_TD_ABS_MEAN"].actor


def test_empty_store_and_no_telemetry(empty_store, make_run):
    """An empty store is a warning that says so; a store without telemetry gets an info and 'no telemetry'."""
    r = audit(empty_store)
    assert ["EMPTY_STORE", "NO_TELEMETRY"] == r.codes()
    assert "no telemetry" == r.training["status"] == r.samples["status"] == r.batch_vs_buffer["status"]
    r2 = audit(make_run(telemetry=False))
    assert ["NO_TELEMETRY"] == r2.codes()


def test_expected_is_validated():
    """Unknown keys and malformed values in expected raise and say what is accepted."""
    with pytest.raises(ValueError, match="unknown key.*'expert_frac'.*known keys"):
        audit(recorded("healthy"), expected={"expert_frac": (0.26, 0.02)})
    with pytest.raises(ValueError, match=r"expected a pair \(mean, tolerance\)"):
        audit(recorded("healthy"), expected={"expert_fraction": 0.26})
    with pytest.raises(TypeError, match="expected must be a dict"):
        audit(recorded("healthy"), expected=[("expert_fraction", 0.26)])


def test_actor_fractions_expectation():
    """expected['actor_fractions'] checks each named actor, and names outside the vocabulary are errors."""
    a = by_code(audit(recorded("healthy"), expected={"actor_fractions": {"dqn": (0.5, 0.05), "ghost": (0.1, 0.1)}}))
    assert "dqn" == a["ACTOR_FRACTION"].actor
    assert "ghost" in a["EXPECTED_ACTOR_UNKNOWN"].message


def test_anomaly_severity_is_checked():
    """An Anomaly with an unknown severity is refused."""
    with pytest.raises(ValueError, match="severity 'fatal'"):
        Anomaly("X", "fatal", "m")


def test_agent_config_in_metadata_is_read(tmp_path):
    """expert_actor and expert_ratio nested in the agent's metadata['config'] are honoured."""
    path = tmp_path / "cfg.h5"
    with ReplayStore.create(path, Schema.transition((4,), continuous_dim=1), actors=("demo", "dqn"), window=100,
                            metadata={"config": {"expert_actor": "demo", "expert_ratio": 0.3}}) as s:
        s.extend(rows_block(40, "dqn"))
    a = by_code(audit(path))
    assert "error" == a["SINGLE_ACTOR"].severity
    assert "'demo'" in a["SINGLE_ACTOR"].message and "demo" == a["EXPERT_FRACTION"].actor


def test_stratified_sampler_is_checked_against_its_declared_fractions(make_run):
    """With a stratified sampler declared, batches are compared with its actor_fractions, not the buffer."""
    meta = {"config": {"sampler_strategy": "stratified", "actor_fractions": {"expert": 0.5, "dqn": 0.5}}}
    r = audit(make_run(metadata=meta))
    assert "declared actor_fractions" == r.batch_vs_buffer["method"]
    assert 0.5 == r.batch_vs_buffer["expected_fractions"]["expert"]
    assert "BATCH_COMPOSITION" in by_code(r)


def test_every_raised_code_is_documented():
    """Each anomaly code the recorded buffers raise is listed in ANOMALY_CODES with its severity."""
    from replaystore.analysis import ANOMALY_CODES

    for name in ("incident", "corrupt"):
        for a in audit(recorded(name)).anomalies:
            assert a.code in ANOMALY_CODES
            assert a.severity in ANOMALY_CODES[a.code]


def test_single_actor_vocabulary_with_a_declared_expert(tmp_path):
    """A store that could only tag 'dqn' while the run declares expert_ratio=0.26 is the incident too."""
    path = tmp_path / "dqn_only.h5"
    with ReplayStore.create(path, Schema.transition((4,), continuous_dim=1), actors=("dqn",), window=100,
                            metadata={"expert_ratio": 0.26}) as s:
        s.extend(rows_block(40, "dqn"))
    a = by_code(audit(path))
    assert ("error", "dqn") == (a["SINGLE_ACTOR"].severity, a["SINGLE_ACTOR"].actor)
    assert "warning" == a["EXPERT_UNKNOWN"].severity
    path2 = tmp_path / "dqn_only_no_expert.h5"
    with ReplayStore.create(path2, Schema.transition((4,), continuous_dim=1), actors=("dqn",), window=100) as s:
        s.extend(rows_block(40, "dqn"))
    assert ["NO_TELEMETRY"] == audit(path2).codes()  # one actor declared, one acted: nothing wrong


def test_telemetry_for_another_vocabulary(tmp_path):
    """train_steps written for 3 actors in a 2-actor store is an error, not a crash."""
    from replaystore.store import TRAIN_STEPS, train_steps_schema

    path = tmp_path / "shape.h5"
    with ReplayStore.create(path, Schema.transition((4,), continuous_dim=1), actors=("expert", "dqn"), window=100) as s:
        s.extend(rows_block(40, "dqn"))
        s.create_table(TRAIN_STEPS, train_steps_schema(3))
        f3 = np.zeros((2, 3), "f4")
        s.extend_table(TRAIN_STEPS, {"step": np.arange(2), "time": np.zeros(2), "loss": np.zeros(2, "f4"),
                                     "batch_count": np.ones((2, 3), "i4"), "td_abs_mean": f3, "reward_mean": f3,
                                     "q_mean": f3, "grad_norm": f3})
    a = by_code(audit(path))
    assert "error" == a["TELEMETRY_SHAPE"].severity and [0, 2] == a["TELEMETRY_SHAPE"].steps


def test_declared_ablation_is_not_a_dropped_tag(tmp_path):
    """expert_ratio 0.0 with the vocabulary ['expert', 'dqn'] and only dqn rows: an info, not SINGLE_ACTOR."""
    path = tmp_path / "ablation.h5"
    with ReplayStore.create(path, Schema.transition((4,), continuous_dim=1), actors=("expert", "dqn"), window=100,
                            metadata={"expert_ratio": 0.0}) as s:
        s.extend(rows_block(40, "dqn"))
    a = by_code(audit(path))
    assert "SINGLE_ACTOR" not in a and "EXPERT_FRACTION" not in a
    assert ("info", "expert") == (a["ACTOR_DECLARED_ABSENT"].severity, a["ACTOR_DECLARED_ABSENT"].actor)
    assert "ablation" in a["ACTOR_DECLARED_ABSENT"].message


def test_every_planted_code_is_documented(cartpole_audits):
    """Each code the planted-defect runs raise is listed in ANOMALY_CODES with its severity."""
    from replaystore.analysis import ANOMALY_CODES

    for report, _, _ in cartpole_audits.values():
        for a in report.anomalies:
            assert a.code in ANOMALY_CODES and a.severity in ANOMALY_CODES[a.code], a.code


def test_negated_recorded_buffer_is_caught():
    """negated.h5 (expert rewards negated from row 1200): REWARD_SIGN on 'expert' from its first row there."""
    a = by_code(audit(recorded("negated")))
    assert ("error", "expert") == (a["REWARD_SIGN"].severity, a["REWARD_SIGN"].actor)
    with ReplayStore.open(recorded("negated")) as s:
        cols = s.read(["actor", "reward"])
    flipped = np.flatnonzero((cols["actor"] == 0) & (cols["reward"] < 0))
    assert [int(flipped[0]), int(flipped[-1]) + 1] == a["REWARD_SIGN"].rows
    assert 1200 <= flipped[0] < 1210
    assert ["NO_TELEMETRY", "REWARD_SIGN"] == sorted(a)


def test_expert_fraction_allows_the_noise_of_a_short_run(tmp_path):
    """Declared 0.5 over 600 frame-by-frame rows: 0.44 is noise (4 standard errors are 0.082), 0.40 is not."""
    for k, flagged in ((264, False), (240, True)):
        path = tmp_path / f"short{k}.h5"
        with ReplayStore.create(path, Schema.transition((4,), continuous_dim=1), actors=("expert", "dqn"),
                                window=1000, metadata={"expert_ratio": 0.5}) as s:
            block = rows_block(600, "dqn")
            block["actor"] = np.where(np.arange(600) % (600 / k) < 1, "expert", "dqn")
            assert k == int((block["actor"] == "expert").sum())
            s.extend(block)
        a = by_code(audit(path))
        assert flagged == ("EXPERT_FRACTION" in a), k

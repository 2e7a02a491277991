"""Tags against the expert's policy: agreement on healthy rows, swapped tags, a look-alike learner."""

from __future__ import annotations

import numpy as np

from replaystore.analysis import _tags


def test_a_few_disagreeing_expert_rows_are_tolerated(cartpole):
    """Up to 2% of expert rows per segment off the policy pass (edge states); the evidence counts them."""
    def few(cols):
        rows = np.flatnonzero(cols["actor"] == 0)[::100]
        cols["discrete_action"][rows] = 1 - cols["discrete_action"][rows]

    report, _ = cartpole(few, rows=3000)
    assert [] == [a for a in report.anomalies if a.code == "TAG_POLICY"]
    assert 0.98 < report.checks["tag_policy"]["evidence"]["agreement_with_expert"]["expert"] < 1.0


def test_learner_that_acts_exactly_like_the_expert_is_a_warning(cartpole):
    """dqn rows that all take the expert's action cannot be told apart from it: a warning on 'dqn'."""
    def copy_expert(cols):
        from replaystore.analysis._cartpole import EXPERT_GAINS

        cols["discrete_action"][:] = (cols["state"].astype(np.float64) @ np.array(EXPERT_GAINS) > 0)

    report, _ = cartpole(copy_expert, rows=1000)
    (a,) = [a for a in report.anomalies if a.code == "TAG_POLICY"]
    assert ("warning", "dqn") == (a.severity, a.actor)
    assert a.details["evidence"] >= _tags.LOOKALIKE


def test_tags_swapped_after_a_row_are_localized(cartpole):
    """Tags swapped from row 1200 on: TAG_POLICY on 'expert' from there, not before."""
    def swap(cols):
        cols["actor"][1200:] = 1 - cols["actor"][1200:]

    report, _ = cartpole(swap, rows=2400, expert_ratio=0.5)
    (a,) = [a for a in report.anomalies if a.code == "TAG_POLICY"]
    assert "expert" == a.actor and 1200 <= a.rows[0] < 1200 + a.details["segment_rows"]


# ------------------------------------------------------------------ any policy, any environment
import os  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

from replaystore.analysis import audit  # noqa: E402
from replaystore.analysis import _gymruns as g  # noqa: E402


def tag_policy_findings(report):
    return [(a.severity, a.actor) for a in report.anomalies if a.code == "TAG_POLICY"]


def test_a_vectorized_policy_catches_swapped_tags(gym_runs):
    """Acrobot's expert given as a batch function: the swapped stretch is flagged on 'expert'."""
    report = audit(gym_runs["acrobot_swapped"][0], policies={"expert": g.acrobot_expert})
    (a,) = [a for a in report.anomalies if a.code == "TAG_POLICY"]
    assert ("error", "expert") == (a.severity, a.actor) and 1500 <= a.rows[0] < 1700 and a.rows[1] <= 2100
    ev = report.checks["tag_policy"]["evidence"]
    assert "on batches" in ev["policies"]["expert"] and ["dqn"] == list(ev["agreement"]["expert"]
                                                                          ["segments_acting_like_it"])


def test_a_per_state_policy_is_detected_and_agrees_on_a_clean_run(gym_runs):
    """A policy written for one state (it fails on a batch) is called state by state; clean: no finding."""
    def one_state(s):
        return 2 if s[1] > 0 else 0  # `if` on an array raises: a batch is refused

    report = audit(gym_runs["mountaincar_clean"][0], policies={"expert": one_state})
    assert [] == tag_policy_findings(report)
    ev = report.checks["tag_policy"]["evidence"]
    assert "state by state" in ev["policies"]["expert"] and 1.0 == ev["agreement_with_expert"]["expert"]


def test_a_continuous_policy_agrees_within_its_tolerance(gym_audits, gym_runs):
    """Pendulum's torque policy: the expert's rows agree (clipped to the action space, within tolerance),
    the noisy learner's do not; learner rows tagged 'expert' are caught."""
    clean = audit(gym_runs["pendulum_clean"][0], policies={"expert": g.pendulum_expert})
    agreement = clean.checks["tag_policy"]["evidence"]["agreement_with_expert"]
    assert [] == tag_policy_findings(clean) and agreement["expert"] == 1.0 and agreement["dqn"] < 0.5
    fake = audit(gym_runs["pendulum_fake_expert"][0], policies={"expert": g.pendulum_expert})
    assert ("error", "expert") in tag_policy_findings(fake)


def test_policies_for_unknown_actors_or_not_callable_raise(gym_runs):
    """A policy for an actor outside the vocabulary, or one that is not a function, is refused."""
    from replaystore.analysis._tags import PolicyError

    with pytest.raises(PolicyError, match=r"not in the store's vocabulary \['expert', 'dqn'\]"):
        audit(gym_runs["mountaincar_clean"][0], policies={"expret": g.mountaincar_expert})
    with pytest.raises(TypeError, match="must be callable"):
        audit(gym_runs["mountaincar_clean"][0], policies={"expert": 3})
    with pytest.raises(PolicyError, match="cannot be imported"):
        audit(gym_runs["mountaincar_clean"][0], policies={"expert": "no_such_pkg.mod:act"})


MARKER_MODULE = '''
import os
open(os.environ["REPLAYSTORE_TEST_MARKER"], "w").write("imported")

def act(states):
    import numpy as np
    s = np.asarray(states)
    return np.where(s[..., 1] > 0, 2, 0)
'''


def test_a_policy_named_by_the_store_is_never_imported_unless_trusted(tmp_path, monkeypatch):
    """Metadata naming a module whose import writes a marker file: opening and auditing the store does
    not import it (TAG_POLICY says how to trust it); trust_policies=True imports and uses it."""
    from gym_helpers import make

    (tmp_path / "marker_policy_mod.py").write_text(MARKER_MODULE)
    marker = tmp_path / "imported.txt"
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("REPLAYSTORE_TEST_MARKER", str(marker))
    monkeypatch.delitem(sys.modules, "marker_policy_mod", raising=False)
    path, _ = make(tmp_path, "mountaincar_clean", rows=800, meta={"env": {"actors": {"expert": {
        "deterministic": True, "policy": "marker_policy_mod:act"}}}})
    report = audit(path)
    assert not marker.exists() and "marker_policy_mod" not in sys.modules
    assert "--trust-metadata-policies" in report.checks["tag_policy"]["reason"]
    trusted = audit(path, trust_policies=True)
    assert marker.exists() and "ran" == trusted.checks["tag_policy"]["status"]
    assert "marker_policy_mod.act" in trusted.checks["tag_policy"]["evidence"]["policies"]["expert"]
    os.remove(marker)


def test_a_trusted_policy_that_cannot_be_imported_is_a_reason_not_a_crash(tmp_path):
    """A store naming a module that does not exist, audited with trust: the check says why it could not run."""
    from gym_helpers import make

    path, _ = make(tmp_path, "mountaincar_clean", rows=600, meta={"env": {"actors": {"expert": {
        "policy": "no_such_module_here:act"}}}})
    check = audit(path, trust_policies=True).checks["tag_policy"]
    assert "skipped" == check["status"] and "cannot be imported" in check["reason"]

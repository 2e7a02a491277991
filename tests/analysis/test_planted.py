"""The planted-defect suite: realistic CartPole runs (gymnasium's physics, the agent's expert mixed
in frame by frame), healthy controls of several seeds, lengths and declared ratios, and one run per
replay bug. Each bug is caught with the right code, actor and rows; no control is flagged."""

from __future__ import annotations

import numpy as np
import pytest
from analysis_helpers import CONTROLS, DEFECTS

# defect -> (code, severity, actor or None for any, how many rows the reported range may miss or
# overshoot at each end: 0 for row-exact checks, a segment for checks that compare segments)
EXPECT = {
    "negated_rewards": ("REWARD_SIGN", "error", "expert", 0),
    "scaled_rewards": ("REWARD_SCALE", "error", "dqn", 0),
    "next_state_copy": ("NEXT_STATE_COPY", "error", "expert", 0),
    "broken_chain": ("CHAIN_BROKEN", "error", "dqn", 0),
    "duplicate_block": ("DUPLICATE_BLOCK", "error", None, 0),
    "done_never_set": ("DONE_MISSING", "error", None, 0),
    "done_always": ("DONE_RATE", "error", "expert", "segment"),
    "terminated_dropped": ("DONE_MISSING", "error", "dqn", 0),
    "reset_as_next_state": ("NEXT_STATE_RESET", "error", None, 0),
    "reused_episode_ids": ("EPISODE_REUSED", "error", None, 0),
    "step_stuck": ("STEP_SEQUENCE", "error", None, 1),
    "truncated_at_terminal": ("BOOTSTRAP_FLAGS", "error", None, 0),
    "action_collapse": ("ACTION_COLLAPSE", "error", "dqn", "segment"),
    "swapped_tags": ("TAG_POLICY", "error", "expert", "segment"),
    "shuffled_tags": ("TAG_POLICY", "error", "expert", "segment"),
    "scaled_states": ("STATE_DISTRIBUTION", "error", "expert", 0),
}


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_healthy_control_raises_nothing(cartpole_audits, name):
    """A healthy run of any seed, length or declared ratio has no finding at warning or error."""
    report, _, _ = cartpole_audits[name]
    assert [] == [(a.code, a.message) for a in report.anomalies_at_least("warning")]
    ran = {k for k, v in report.checks.items() if v["status"] == "ran"}
    assert {"transition_chain", "next_state_copy", "duplicate_rows", "episode_bookkeeping", "bootstrap_flags",
            "reward_currency", "action_collapse"} <= ran


def test_controls_cover_truncation_and_the_ablation(cartpole_audits):
    """The controls include time-limit ends (truncated) and a pure-DQN ablation (expert_ratio 0)."""
    assert any(cols["truncated"].any() for _, _, cols in cartpole_audits.values())
    report, _, cols = cartpole_audits["seed3_2500_r0"]
    assert 0 == int((cols["actor"] == 0).sum())
    assert ["ACTOR_DECLARED_ABSENT"] == [a.code for a in report.anomalies if a.code != "NO_TELEMETRY"]
    assert "expert_ratio" in report.checks["tag_policy"]["reason"]


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_planted_defect_is_caught_and_localized(cartpole_audits, name):
    """The defect's code is raised for the right actor, over the rows where it was planted."""
    report, planted, _ = cartpole_audits[name]
    code, severity, actor, slack = EXPECT[name]
    found = [a for a in report.anomalies if a.code == code and a.severity == severity
             and (actor is None or a.actor == actor)]
    assert found, f"{code} not raised: {[(a.code, a.actor, a.rows) for a in report.anomalies]}"
    lo, hi = int(planted.min()), int(planted.max()) + 1

    def localized(a):
        s = a.details["segment_rows"] if slack == "segment" else slack  # segment checks localize to a segment
        return lo - s <= a.rows[0] <= lo + s and hi - s <= a.rows[1] <= hi + s

    here = [a for a in found if localized(a)]
    assert here, ([a.rows for a in found], (lo, hi))
    a = here[0]
    assert a.details["evidence"] is not None and "threshold" in a.details and "measure" in a.details
    assert a.episodes, "the finding names the episodes concerned"


def test_defects_leave_unrelated_actors_alone(cartpole_audits):
    """A defect planted in one actor's rows is not reported against the other actor by the same check."""
    for name, other in (("negated_rewards", "dqn"), ("scaled_rewards", "expert"), ("next_state_copy", "dqn"),
                        ("broken_chain", "expert"), ("action_collapse", "expert")):
        report, _, _ = cartpole_audits[name]
        code = EXPECT[name][0]
        assert [] == [a.rows for a in report.anomalies if a.code == code and a.actor == other], name


def test_duplicate_block_names_its_original(cartpole_audits):
    """The duplicated block points at the rows it repeats, which hold the same content."""
    report, planted, cols = cartpole_audits["duplicate_block"]
    (a,) = [a for a in report.anomalies if a.code == "DUPLICATE_BLOCK"]
    lo, hi = a.details["copy_of"]
    assert hi == a.rows[0] and hi - lo == len(planted)
    np.testing.assert_array_equal(cols["state"][lo:hi], cols["state"][a.rows[0]:a.rows[1]])


def test_tag_policy_evidence(cartpole_audits):
    """Healthy expert rows agree with the expert's policy on every row; shuffled tags do not."""
    healthy = cartpole_audits["seed2_4000_r05"][0].checks["tag_policy"]["evidence"]
    assert 1.0 == healthy["agreement_with_expert"]["expert"]
    assert healthy["agreement_with_expert"]["dqn"] < 0.95
    assert "no policy recorded" in healthy["policies"]["dqn"]
    shuffled = cartpole_audits["shuffled_tags"][0].checks["tag_policy"]["evidence"]
    assert shuffled["agreement_with_expert"]["expert"] < 0.9

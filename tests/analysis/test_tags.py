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

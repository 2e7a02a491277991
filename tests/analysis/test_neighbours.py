"""TAG_BEHAVIOUR: tags against the behaviour of an actor declared deterministic, without its policy,
on real gymnasium runs (Acrobot-v1, MountainCar-v0, Pendulum-v1)."""

from __future__ import annotations

import pytest
from gym_helpers import CLEAN, make

from replaystore.analysis import _neighbours, audit


def found(report, code, actor=None):
    return [a for a in report.anomalies if a.code == code and (actor is None or a.actor == actor)]


@pytest.mark.parametrize("name", CLEAN)
def test_clean_runs_are_quiet(gym_audits, name):
    """A scripted expert and a noisy learner on three environments: nothing at warning or above, and
    the expert agrees with its own neighbourhoods far more often than the learner does."""
    report, _ = gym_audits[name]
    assert [] == [(a.code, a.actor, a.message) for a in report.anomalies_at_least("warning")]
    ev = report.checks["tag_behaviour"]["evidence"]["per_actor"]["expert"]["agreement_with_neighbour"]
    assert ev["expert"] >= _neighbours.AGREEMENT > ev["dqn"]


@pytest.mark.parametrize("name", ["mountaincar_fake_expert", "pendulum_fake_expert"])
def test_learner_rows_tagged_expert_are_caught(gym_audits, name):
    """The declared 30% expert share reached by tagging learner rows 'expert': TAG_BEHAVIOUR on 'expert',
    its rows spanning the planted ones."""
    report, planted = gym_audits[name]
    (a,) = found(report, "TAG_BEHAVIOUR")
    assert ("error", "expert") == (a.severity, a.actor)
    assert a.details["evidence"] < _neighbours.AGREEMENT
    assert a.rows[0] < planted[len(planted) // 4] and a.rows[1] > planted[3 * len(planted) // 4]


def test_tags_swapped_in_a_stretch_name_both_actors_there(gym_audits):
    """Tags swapped in rows [1500, 2100) of a 50/50 Acrobot run: 'expert' rows there act unlike the
    expert, 'dqn' rows there act like it; both findings lie in the swapped stretch."""
    report, planted = gym_audits["acrobot_swapped"]
    by_actor = {a.actor: a for a in found(report, "TAG_BEHAVIOUR")}
    assert {"expert", "dqn"} == set(by_actor)
    for a in by_actor.values():
        assert 1500 - 200 <= a.rows[0] and a.rows[1] <= 2100 + 200, a.rows


def test_without_a_declaration_the_check_says_why(tmp_path):
    """A run that declares no actor deterministic: skipped, naming the metadata key to set."""
    path, _ = make(tmp_path, "mountaincar_clean", rows=600, meta={"env": {}})
    check = audit(path).checks["tag_behaviour"]
    assert "skipped" == check["status"] and "env.actors.<actor>.deterministic" in check["reason"]


def test_an_actor_with_a_policy_is_left_to_tag_policy(gym_runs):
    """With the expert's policy given, TAG_BEHAVIOUR defers to TAG_POLICY for it."""
    from replaystore.analysis._gymruns import mountaincar_expert

    report = audit(gym_runs["mountaincar_clean"][0], policies={"expert": mountaincar_expert})
    assert "TAG_POLICY" in report.checks["tag_behaviour"]["reason"]
    assert "ran" == report.checks["tag_policy"]["status"]


def test_tags_that_carry_no_information_say_so(gym_audits):
    """Tags shuffled over a 50/50 MountainCar run: 'expert' rows act no more like the expert than 'dqn'
    rows do; the finding says the tags carry no information about behaviour."""
    report, _ = gym_audits["mountaincar_shuffled"]
    (a,) = found(report, "TAG_BEHAVIOUR", "expert")
    assert a.details["informative"] is False and "carry no information" in a.message

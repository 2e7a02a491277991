"""Per-actor distributions: reward currency, action collapse and state statistics, with their limits."""

from __future__ import annotations

import numpy as np

from replaystore.analysis import _behaviour


def found(report, code):
    return [a for a in report.anomalies if a.code == code]


def test_reward_scale_under_the_threshold_is_not_flagged(cartpole):
    """A 10x reward scale (under 20x) is not flagged; 30x is, against the environment's 1 per step."""
    def scale(f):
        return lambda cols: cols["reward"].__imul__(np.where(cols["actor"] == 1, f, 1).astype("f4"))

    assert [] == found(cartpole(scale(10.0))[0], "REWARD_SCALE")
    (a,) = found(cartpole(scale(30.0))[0], "REWARD_SCALE")
    assert "dqn" == a.actor and np.isclose(30.0, a.details["evidence"], rtol=1e-4)
    assert "CartPole-v1 pays 1 per step" in a.message


def test_unknown_environment_names_no_actor_it_cannot_tell(cartpole):
    """Two actors paid in opposite signs throughout, and no fact says which sign is right: one
    finding naming no actor (not whichever holds fewer rows), asking for the reward range."""
    def negate_dqn(cols):
        cols["reward"][cols["actor"] == 1] *= -1

    report, _ = cartpole(negate_dqn, meta={"env_id": "Unknown-v0"}, rows=1500)
    (a,) = found(report, "REWARD_SIGN")
    assert a.actor is None and "reward_range" in a.message


def test_declared_reward_range_names_the_changed_actor(cartpole):
    """With the env block's reward_range, the actor whose rewards left it is named, majority or not."""
    def negate_dqn(cols):
        cols["reward"][cols["actor"] == 1] *= -1

    report, _ = cartpole(negate_dqn, meta={"env_id": "Unknown-v0", "env": {"reward_range": [0, 2]}}, rows=1500)
    (a,) = found(report, "REWARD_SIGN")
    assert "dqn" == a.actor and "reward range" in a.message


def test_sign_change_mid_run_names_the_actor_that_changed(cartpole):
    """Without facts, the actor whose own sign changed between segments is named (here the majority)."""
    def negate_dqn_late(cols):
        late = (np.arange(len(cols["reward"])) >= 1000) & (cols["actor"] == 1)
        cols["reward"][late] *= -1

    report, _ = cartpole(negate_dqn_late, meta={"env_id": "Unknown-v0"}, rows=2000)
    (a,) = found(report, "REWARD_SIGN")
    assert "dqn" == a.actor and 1000 <= a.rows[0] < 1100


def test_sparse_rewards_of_equal_currency_pass(cartpole):
    """Rewards mostly 0 with the same non-zero payment for both actors, at different rates, pass."""
    def sparse(cols):
        rng = np.random.default_rng(0)
        cols["reward"][:] = np.where(rng.random(len(cols["reward"])) < np.where(cols["actor"] == 0, 0.3, 0.05),
                                     1.0, 0.0)

    report, _ = cartpole(sparse, meta={"env_id": "Unknown-v0"}, rows=3000)
    assert [] == found(report, "REWARD_SIGN") + found(report, "REWARD_SCALE")


def test_both_actors_deterministic_is_not_a_collapse(cartpole):
    """Every actor on one action everywhere (a one-action environment) leaves nothing to compare with."""
    report, _ = cartpole(lambda cols: cols["discrete_action"].__setitem__(slice(None), 0))
    assert [] == found(report, "ACTION_COLLAPSE")
    ev = report.checks["action_collapse"]["evidence"]["per_actor"]
    assert 0.0 == ev["dqn"]["entropy_nats"] == ev["expert"]["entropy_nats"]


def test_action_entropy_per_actor(cartpole):
    """The evidence holds each actor's action histogram and entropy (ln 2 at most for two actions)."""
    report, cols = cartpole(rows=2000)
    ev = report.checks["action_collapse"]["evidence"]["per_actor"]
    assert np.bincount(cols["discrete_action"][cols["actor"] == 0], minlength=2).tolist() == ev["expert"]["histogram"]
    assert 0.5 < ev["expert"]["entropy_nats"] <= np.log(2) + 1e-12


def test_state_statistics_need_two_actors(cartpole):
    """A single-actor run skips the state comparison and says why."""
    report, _ = cartpole(expert_ratio=0.0)
    assert "fewer than two actors" in report.checks["state_statistics"]["reason"]


def test_state_statistics_evidence(cartpole):
    """Per-actor means of each state element match numpy on the rows of that actor."""
    report, cols = cartpole(rows=1500)
    ev = report.checks["state_statistics"]["evidence"]["per_actor"]
    np.testing.assert_allclose(cols["state"][cols["actor"] == 1].mean(0), ev["dqn"]["mean"], rtol=1e-5, atol=1e-7)
    assert _behaviour.STATE_STD_RATIO == report.checks["state_statistics"]["evidence"]["threshold_std_ratio"]


def test_states_changing_frame_mid_run_are_localized(cartpole):
    """The expert's states scaled 100x from row 1500 on: STATE_DISTRIBUTION on 'expert' from there."""
    def scale_late(cols):
        rows = np.flatnonzero(cols["actor"][1500:] == 0) + 1500
        cols["state"][rows] *= 100
        cols["next_state"][rows] *= 100

    report, cols = cartpole(scale_late, rows=3000)
    (a,) = found(report, "STATE_DISTRIBUTION")
    first = int(np.flatnonzero(cols["actor"][1500:] == 0)[0]) + 1500
    assert "expert" == a.actor and first <= a.rows[0] < first + a.details["segment_rows"]
    assert a.rows[1] == int(np.flatnonzero(cols["actor"] == 0)[-1]) + 1


def _with_continuous(freeze_from=None):
    def change(cols):
        rng = np.random.default_rng(3)
        cols["continuous_action"] = rng.uniform(-1, 1, (len(cols["actor"]), 1)).astype("f4")
        if freeze_from is not None:
            rows = np.flatnonzero(cols["actor"][freeze_from:] == 1) + freeze_from
            cols["continuous_action"][rows] = 0.7
    return change


def test_continuous_actions_that_vary_pass(cartpole):
    """A continuous head whose outputs vary for every actor raises nothing; the spreads are recorded."""
    report, _ = cartpole(_with_continuous(), rows=2000)
    assert [] == found(report, "ACTION_COLLAPSE")
    assert report.checks["action_collapse"]["evidence"]["continuous_spread"]["dqn"][0][0] > 0.3


def test_continuous_action_frozen_mid_run(cartpole):
    """dqn's continuous action stuck at 0.7 from row 1000: ACTION_COLLAPSE on 'dqn' from there."""
    report, cols = cartpole(_with_continuous(freeze_from=1000), rows=2000)
    (a,) = found(report, "ACTION_COLLAPSE")
    first = int(np.flatnonzero(cols["actor"][1000:] == 1)[0]) + 1000
    assert ("dqn", 0) == (a.actor, a.details["element"])
    assert first <= a.rows[0] < first + a.details["segment_rows"] and "0.7" in a.message


def test_registry_sign_names_the_negated_actor_on_acrobot(gym_audits):
    """Acrobot pays -1 or 0 (its registry's solved return is -100): the learner's negated rewards are
    'dqn''s, although 'dqn' holds most rows."""
    report, _ = gym_audits["acrobot_negated"]
    (a,) = [a for a in report.anomalies if a.code == "REWARD_SIGN"]
    assert "dqn" == a.actor



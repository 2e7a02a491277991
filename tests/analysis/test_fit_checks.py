"""The fit checks (actions and rewards against the transitions) on runs beyond CartPole: clean
controls of four environments stay quiet at warning level, and each planted bug is caught with the
right code, actor and rows, with its evidence and threshold."""

from __future__ import annotations

import numpy as np
import pytest
from envsuite_cases import CONTROLS, FIT_DEFECTS, build, localized

from replaystore.analysis import ANOMALY_CODES, audit
from replaystore.analysis import _envsuite as es
from replaystore.analysis._fit import action_facts

FIT_CHECKS = ("action_bounds", "reward_clipped", "reward_lag", "action_fit", "foreign_rows")


@pytest.fixture(scope="module")
def fit_audits(tmp_path_factory):
    """``{name: (report, columns, planted)}`` for every control and fit defect, audited once."""
    root = tmp_path_factory.mktemp("envsuite")
    out = {}
    for name, settings in CONTROLS.items():
        path, cols, _ = build(root, name, settings)
        out[name] = (audit(path), cols, None)
    for name, (settings, plant, kw, _) in FIT_DEFECTS.items():
        path, cols, planted = build(root, name, settings, plant, kw)
        out[name] = (audit(path), cols, planted)
    return out


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_clean_control_is_quiet(fit_audits, name):
    """A clean run of any of the four environments has no finding at warning or error, from any check."""
    report, cols, _ = fit_audits[name]
    assert [] == [(a.code, a.actor, a.rows) for a in report.anomalies_at_least("warning")]
    assert cols["done"].sum() >= 5, "several episodes"


def test_controls_cover_truncation_and_termination(fit_audits):
    """The controls end episodes both ways: at the time limit (truncated) and at a goal (terminated)."""
    cols = [fit_audits[name][1] for name in CONTROLS]
    assert any(c["truncated"].any() for c in cols)
    assert any((c["done"] & ~c["truncated"]).any() for c in cols)


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_fit_checks_run_where_they_can(fit_audits, name):
    """Each fit check runs on the controls, or says why not (a discrete fit on continuous actions)."""
    report, _, _ = fit_audits[name]
    for check in FIT_CHECKS:
        entry = report.checks[check]
        assert entry["status"] in ("ran", "skipped"), check
        if entry["status"] == "skipped":
            assert entry["reason"], check
    continuous = es.ENVS[CONTROLS[name]["env_id"]].n_actions == 0
    assert ("skipped" if continuous else "ran") == report.checks["action_fit"]["status"]
    assert "ran" == report.checks["action_bounds"]["status"]
    assert "ran" == report.checks["foreign_rows"]["status"]


@pytest.mark.parametrize("name", sorted(FIT_DEFECTS))
def test_planted_fit_defect_is_caught_and_localized(fit_audits, name):
    """The planted bug's code is raised as an error naming the planter's actor, over its rows."""
    report, _, (code, actor, rows) = fit_audits[name]
    slack = FIT_DEFECTS[name][3]
    found = [a for a in report.anomalies if a.code == code]
    assert found, f"{code} not raised: {[(a.code, a.actor, a.rows) for a in report.anomalies]}"
    assert [actor] == [a.actor for a in found]
    (a,) = found
    assert "error" == a.severity and "error" in ANOMALY_CODES[code]
    assert localized(a, rows, slack), (a.rows, (int(rows.min()), int(rows.max()) + 1))
    assert a.details["evidence"] is not None and a.details["threshold"] is not None and a.details["measure"]
    assert a.episodes, "the finding names the episodes concerned"


@pytest.mark.parametrize("name", sorted(FIT_DEFECTS))
def test_planted_defect_leaves_the_other_actor_alone(fit_audits, name):
    """No fit check reports the actor whose rows were left clean."""
    report, _, (_, actor, _) = fit_audits[name]
    other = "expert" if actor == "dqn" else "dqn"
    codes = {c for c in ANOMALY_CODES if c in ("ACTION_BOUNDS", "REWARD_CLIPPED", "REWARD_LAG", "ACTION_FIT",
                                                   "FOREIGN_ROWS")}
    assert [] == [(a.code, a.rows) for a in report.anomalies if a.code in codes and a.actor == other]


def test_shifted_actions_evidence(fit_audits):
    """The relabelled actor's actions explain under a third of its rows by the other actor's model, while
    the clean actor's own rows are explained on most; its codes lose the order of their effects."""
    ev = fit_audits["mountaincar_shifted_actions"][0].checks["action_fit"]["evidence"]
    shares = ev["explained_share"]
    assert shares["dqn by expert's model"] < 0.35 <= 0.6 <= shares["expert by expert's model"]
    assert ev["ordinal_loss"]["dqn"] - ev["ordinal_loss"]["expert"] >= 0.3
    clean = fit_audits["mountaincar_s1"][0].checks["action_fit"]["evidence"]["explained_share"]
    assert min(clean.values()) > 0.6


def test_clipped_rewards_pile_at_the_bound(fit_audits):
    """The clipped actor's rewards sit at -1 on at least 5% of its rows; the other actor's pass -1."""
    report, cols, (_, _, rows) = fit_audits["pendulum_clipped_rewards"]
    (a,) = [a for a in report.anomalies if a.code == "REWARD_CLIPPED"]
    assert -1.0 == a.details["bound"] and a.details["evidence"] >= 0.05
    assert a.details["others_beyond"] >= 0.05
    assert np.all(cols["reward"][rows] == -1.0)


def test_preclip_actions_use_the_declared_space(fit_audits):
    """The custom environment's bounds come from its metadata 'env' block; gymnasium's from its registry."""
    report, _, _ = fit_audits["pointmass_preclip_actions"]
    assert "metadata" in report.checks["action_bounds"]["evidence"]["source"]
    report, _, _ = fit_audits["pendulum_preclip_actions"]
    assert "gymnasium" in report.checks["action_bounds"]["evidence"]["source"]
    (a,) = [a for a in report.anomalies if a.code == "ACTION_BOUNDS"]
    assert 0.05 < a.details["evidence"] < 0.3


def test_foreign_block_names_its_tags(fit_audits):
    """The inserted block's rows are reported exactly, with the tags they carry."""
    report, _, (_, _, rows) = fit_audits["acrobot_foreign_block"]
    (a,) = [a for a in report.anomalies if a.code == "FOREIGN_ROWS"]
    assert {"dqn": rows.size} == a.details["tags"]
    assert a.details["evidence"] > a.details["threshold"]


def test_action_facts_sources():
    """Action facts come from the metadata 'env' block first, then gymnasium's registry, else none."""
    declared = action_facts({"env_id": "Pendulum-v1", "env": {"action_low": [-1.0], "action_high": [1.0]}})
    assert [-1.0] == declared.low.tolist() and "metadata" in declared.source
    assert 3 == action_facts({"env_id": "MountainCar-v0"}).n_actions
    box = action_facts({"config": {"env_id": "Pendulum-v1"}})
    assert ([-2.0], [2.0]) == (box.low.tolist(), box.high.tolist())
    assert 0 == action_facts({"env_id": "MountainCar-v0"}).first_action
    assert action_facts({"env_id": "NoSuchGame-v9"}) is None
    assert action_facts({}) is None


def test_action_bounds_skips_without_facts(tmp_path):
    """An environment neither gymnasium nor the metadata knows: the bounds check is skipped, with why."""
    cols = es.simulate(es.Run("PointMass-v0", rows=400, seed=3))
    meta = es.metadata(es.Run("PointMass-v0", rows=400, seed=3))
    del meta["env"]
    es.write(tmp_path / "bare.h5", cols, meta)
    entry = audit(tmp_path / "bare.h5").checks["action_bounds"]
    assert "skipped" == entry["status"] and "no action space known" in entry["reason"]


def test_discrete_action_outside_the_space(tmp_path):
    """A discrete action code past the environment's count is reported for the actor that stored it."""
    run = es.Run("MountainCar-v0", rows=600, seed=4)
    cols = es.simulate(run)
    rows = np.flatnonzero(cols["actor"] == 0)[5:9]
    cols["discrete_action"][rows] = 3
    es.write(tmp_path / "mc.h5", cols, es.metadata(run))
    (a,) = [a for a in audit(tmp_path / "mc.h5").anomalies if a.code == "ACTION_BOUNDS"]
    assert ("expert", [int(rows[0]), int(rows[-1]) + 1]) == (a.actor, a.rows)


def test_a_constant_reward_is_not_a_pile(tmp_path):
    """An actor that only ever earns the environment's constant step reward (MountainCar's -1) is not
    'clipped' although the other actor's rewards differ: a pile above half its rewards is what it is paid."""
    run = es.Run("MountainCar-v0", rows=800, seed=5)
    cols = es.simulate(run)
    cols["reward"][np.flatnonzero(cols["actor"] == 1)[::10]] = -0.5  # another value the learner earns
    es.write(tmp_path / "mc.h5", cols, es.metadata(run))
    report = audit(tmp_path / "mc.h5")
    assert [] == [a.code for a in report.anomalies if a.code == "REWARD_CLIPPED"]
    assert 1.0 == report.checks["reward_clipped"]["evidence"]["per_actor"]["expert"]["high"]["share_at_bound"]


def test_two_action_relabelling_names_no_actor(tmp_path):
    """CartPole's two actions swapped for the learner: each actor's actions explain only its own rows
    and two codes carry no order to tell which actor is right, so the finding names neither actor
    (rather than guessing) and spans both actors' rows."""
    from replaystore.analysis import _cartpole as cp

    run = cp.CartPoleRun(rows=2000, seed=1, expert_ratio=0.3)
    cols = cp.simulate(run)
    learner = cols["actor"] == 1
    cols["discrete_action"][learner] = 1 - cols["discrete_action"][learner]
    cp.write(tmp_path / "cp.h5", cols, cp.metadata(run))
    report = audit(tmp_path / "cp.h5")
    (a,) = [a for a in report.anomalies if a.code == "ACTION_FIT"]
    assert a.actor is None and "one of 'expert' and 'dqn'" in a.message
    assert a.rows[0] <= int(np.flatnonzero(~learner)[0]) and a.rows[1] >= len(learner) - 1
    ev = report.checks["action_fit"]["evidence"]
    assert 0.0 == ev["ordinal_loss"]["expert"] == ev["ordinal_loss"]["dqn"]


def test_three_actors_name_the_relabelled_one(tmp_path):
    """With a third actor the relabelled one is the only actor that no other actor's model explains."""
    run = es.Run("MountainCar-v0", rows=3000, seed=6, expert_ratio=0.3)
    cols = es.simulate(run)
    third = np.flatnonzero(cols["actor"] == 1)[::2]  # half the learner's rows become a second learner
    cols["actor"][third] = 2
    cols["discrete_action"][third] = (cols["discrete_action"][third] + 1) % 3
    schema_actors = ("expert", "dqn", "dqn2")
    from replaystore.store import Column, ReplayStore, Schema

    body = {k: v for k, v in cols.items() if not k.startswith("_")}
    schema = Schema.transition((2,), 0, extra=(Column("truncated", np.dtype("bool")),))
    with ReplayStore.create(tmp_path / "three.h5", schema, actors=schema_actors, window=3000,
                            metadata=es.metadata(run)) as s:
        s.extend({**body, "time": 1.0 + np.arange(len(cols["actor"]), dtype=np.float64)})
    found = [a for a in audit(tmp_path / "three.h5").anomalies if a.code == "ACTION_FIT"]
    assert ["dqn2"] == [a.actor for a in found]


@pytest.mark.parametrize("block, why", [
    ({"n_actions": "three"}, "n_actions 'three'"),
    ({"action_low": ["a"], "action_high": [1.0]}, "action_low"),
    ({"action_low": [1.0, 2.0], "action_high": [1.5]}, "equal lengths"),
    ({"action_low": [1.0], "action_high": [-1.0]}, "low <= high"),
])
def test_malformed_env_block_skips_with_its_reason(tmp_path, block, why):
    """A malformed metadata 'env' block is a store fact to report, not a crash: the bounds check is
    skipped and says what was wrong."""
    run = es.Run("PointMass-v0", rows=300, seed=3)
    meta = {**es.metadata(run), "env": block}
    es.write(tmp_path / "bad.h5", es.simulate(run), meta)
    entry = audit(tmp_path / "bad.h5").checks["action_bounds"]
    assert "skipped" == entry["status"] and "malformed" in entry["reason"] and why in entry["reason"]


def test_a_module_named_by_the_env_id_is_never_imported(tmp_path, monkeypatch):
    """An env_id of gymnasium's 'module:Name' form names code to import: reading action facts from
    the store's metadata never imports it (a store is data)."""
    import sys

    (tmp_path / "fitprobe_evil.py").write_text("import sys\nsys.modules[__name__].RAN = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert action_facts({"env_id": "fitprobe_evil:Evil-v0"}) is None
    assert "fitprobe_evil" not in sys.modules


def test_non_finite_rows_are_left_out(tmp_path):
    """A store that allows non-finite values: NaN states, actions and rewards are left out of the fits
    (no exception, no finding about them from the fit checks), and the checks still run."""
    run = es.Run("Pendulum-v1", rows=1500, seed=7)
    cols = es.simulate(run)
    cols["state"][100:110] = np.nan
    cols["next_state"][300:305, 1] = np.inf
    cols["reward"][500:520] = np.nan
    cols["continuous_action"][700:705] = np.nan
    es.write(tmp_path / "nan.h5", cols, es.metadata(run), allow_nonfinite=True)
    report = audit(tmp_path / "nan.h5")
    for check in FIT_CHECKS:
        assert report.checks[check]["status"] in ("ran", "skipped"), check
    assert "ran" == report.checks["reward_lag"]["status"] == report.checks["foreign_rows"]["status"]
    fit_codes = {"ACTION_BOUNDS", "REWARD_CLIPPED", "REWARD_LAG", "ACTION_FIT", "FOREIGN_ROWS"}
    assert [] == [(a.code, a.rows) for a in report.anomalies if a.code in fit_codes]


@pytest.mark.parametrize("env_id", ["Acrobot-v1", "MountainCar-v0", "Pendulum-v1"])
def test_fit_checks_quiet_when_the_expert_plays_whole_episodes(tmp_path, env_id):
    """Demonstration episodes put the actors in different states; the fit checks, which learn each
    actor's dynamics and rewards from its own rows, stay quiet (other checks are not asserted here:
    the realised share of whole episodes strays from the declared one)."""
    run = es.Run(env_id, rows=3000, seed=1, expert_ratio=0.4, whole_episodes=True)
    cols = es.simulate(run)
    assert 0 < int((cols["actor"] == 0).sum()) < len(cols["actor"])
    es.write(tmp_path / "demo.h5", cols, es.metadata(run))
    report = audit(tmp_path / "demo.h5")
    fit_codes = {"ACTION_BOUNDS", "REWARD_CLIPPED", "REWARD_LAG", "ACTION_FIT", "FOREIGN_ROWS"}
    assert [] == [(a.code, a.actor, a.rows) for a in report.anomalies if a.code in fit_codes]


def test_reward_lag_skips_interleaved_episodes(tmp_path):
    """Two environments stored row by row in turn: no row follows its episode's previous row, so the
    reward-lag check says why it cannot run instead of staying silently empty."""
    from replaystore.store import Column, ReplayStore, Schema

    runs = [es.simulate(es.Run("Pendulum-v1", rows=600, seed=s)) for s in (8, 9)]
    cols = {k: np.stack([runs[0][k], runs[1][k]], axis=1).reshape(1200, *runs[0][k].shape[1:])
            for k in runs[0] if not k.startswith("_")}
    cols["episode"] = np.stack([runs[0]["episode"] * 2, runs[1]["episode"] * 2 + 1], axis=1).reshape(-1)
    schema = Schema.transition((3,), 1, extra=(Column("truncated", np.dtype("bool")),))
    with ReplayStore.create(tmp_path / "vec.h5", schema, actors=es.ACTORS, window=1200,
                            metadata=es.metadata(es.Run("Pendulum-v1"))) as s:
        s.extend({**cols, "time": 1.0 + np.arange(1200.0)})
    entry = audit(tmp_path / "vec.h5").checks["reward_lag"]
    assert "skipped" == entry["status"] and "interleaved" in entry["reason"]


def test_discrete_space_with_a_start(monkeypatch):
    """gymnasium's Discrete(n, start=s) allows codes s .. s + n - 1: the facts carry the start."""
    import gymnasium as gym

    class Shifted(gym.Env):
        action_space = gym.spaces.Discrete(3, start=-1)
        observation_space = gym.spaces.Box(-1.0, 1.0, (1,))

    monkeypatch.setitem(gym.registry, "FitShifted-v0", gym.envs.registration.EnvSpec("FitShifted-v0", Shifted))
    facts = action_facts({"env_id": "FitShifted-v0"})
    assert (3, -1) == (facts.n_actions, facts.first_action)

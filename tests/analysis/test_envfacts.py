"""What the audit knows of an environment from its id: time limits, terminal states, rewards."""

from __future__ import annotations

import numpy as np

from replaystore.analysis._envfacts import SLACK, THETA_LIMIT, X_LIMIT, cartpole_terminal, env_facts


def test_terminal_states_with_a_rounding_margin():
    """Surely past a bound is +1, surely inside -1, within float32 rounding of a bound 0."""
    s = np.zeros((5, 4), np.float32)
    s[0, 2] = THETA_LIMIT * 1.01          # pole fallen
    s[1, 0] = -X_LIMIT * 1.01             # cart out on the left
    s[2, 2] = THETA_LIMIT * (1 - 1e-7)    # at the bound: float32 cannot say
    s[3, 0] = X_LIMIT * (1 - 10 * SLACK)  # inside
    assert [1, 1, 0, -1, -1] == cartpole_terminal(s).tolist()


def test_env_facts_from_metadata():
    """The id comes from the top level or the agent's config; max_episode_steps overrides the limit."""
    assert 500 == env_facts({"env_id": "CartPole-v1"})[0].max_steps
    assert 200 == env_facts({"config": {"env_id": "CartPole-v0"}})[0].max_steps
    assert 100 == env_facts({"env_id": "HybridCartPole-v1", "max_episode_steps": 100})[0].max_steps
    assert (None, []) == env_facts({"env_id": "NoSuchGame-v5"}) and (None, []) == env_facts({})


def test_time_limit_from_metadata_is_enforced(cartpole):
    """A run declaring max_episode_steps=100 whose episodes run longer: DONE_MISSING past the limit."""
    report, cols = cartpole(rows=2000, expert_ratio=0.9, meta={"max_episode_steps": 100})
    (a,) = [a for a in report.anomalies if a.code == "DONE_MISSING"]
    assert 100 == a.details["threshold"] and a.details["evidence"] > 100


# ------------------------------------------------------------------ any environment
import json  # noqa: E402

import pytest  # noqa: E402

from replaystore.analysis import EnvFactsError, audit  # noqa: E402
from replaystore.analysis._envfacts import parse_block  # noqa: E402


def test_registry_gives_limits_and_spaces_without_stepping():
    """A registered id: the spec's time limit and the spaces' bounds; discrete or continuous actions."""
    pend, problems = env_facts({"env_id": "Pendulum-v1"})
    assert [] == problems
    assert (200, (3,), (1,), None) == (pend.max_steps, pend.obs_shape, pend.action_shape, pend.n_actions)
    assert ([-2.0], [2.0]) == (pend.action_low.tolist(), pend.action_high.tolist())
    car, _ = env_facts({"config": {"env_id": "MountainCar-v0"}})
    assert (200, 3, -110.0) == (car.max_steps, car.n_actions, car.reward_threshold)
    assert "gymnasium registry" in car.sources["max_episode_steps"]


def test_a_module_prefixed_id_is_never_looked_up():
    """'module:Env-v0' would make gymnasium import the module: the audit refuses and says why."""
    facts, problems = env_facts({"env_id": "os:Evil-v0"})
    assert facts is None and "names a module" in problems[0]


def test_env_block_declares_a_custom_environment():
    """A custom game declared only by metadata: its limit, bounds, reward range and actors."""
    facts, problems = env_facts({"env_id": "MyGame-v0", "env": {
        "max_episode_steps": 300, "reward_range": [-1, None], "random_reset": True,
        "observation": {"shape": [2], "low": -1, "high": [1, 2]}, "action": {"shape": [1], "low": -2, "high": 2},
        "actors": {"expert": {"deterministic": True, "policy": "mygame.experts:act"}}}})
    assert [] == problems
    assert (300, (-1.0, float("inf")), True) == (facts.max_steps, facts.reward_range, facts.random_reset)
    assert [1.0, 2.0] == facts.obs_high.tolist() and ["expert"] == facts.deterministic_actors()
    assert "metadata 'env' block" == facts.sources["max_episode_steps"]


@pytest.mark.parametrize("block, match", [
    ({"max_steps": 10}, r"unknown key\(s\) \['max_steps'\]"),
    ({"max_episode_steps": 0}, "expected a positive integer or null"),
    ({"reward_range": [1, -1]}, "low 1.0 is above high -1.0"),
    ({"reward_range": 5}, r"expected \[low, high\]"),
    ({"observation": {"shape": [2], "low": [0, 0, 0]}}, "expected 1 or 2"),
    ({"action": {"n": 0}}, "K > 0"),
    ({"action": {"shape": [1]}}, "'low' is required"),
    ({"actors": {"expert": {"deterministic": "yes"}}}, "expected true or false"),
    ({"actors": {"expert": {"policy": "no_colon"}}}, "package.module:function"),
    ([1, 2], "must be a JSON object"),
])
def test_malformed_env_blocks_get_clear_errors(block, match):
    """Each malformed block names the key, the value received and what is expected."""
    with pytest.raises(EnvFactsError, match=match):
        parse_block(block, "test")


def test_a_malformed_block_in_a_store_is_a_finding_not_a_crash(cartpole):
    """A store is data: its bad env block becomes ENV_FACTS_INVALID and the audit runs on."""
    report, _ = cartpole(meta={"env": {"max_episode_steps": -5}})
    (a,) = [a for a in report.anomalies if a.code == "ENV_FACTS_INVALID"]
    assert "error" == a.severity and "max_episode_steps" in a.message
    assert 500 == report.notes["env_facts"]["max_episode_steps"]  # the built-in facts still hold


def test_supplied_facts_override_the_store_and_bad_ones_raise(cartpole, tmp_path):
    """--env-facts FILE (or audit(env_facts=)) wins over the registry; a malformed file raises."""
    from replaystore.analysis._cartpole import CartPoleRun, metadata, simulate, write

    path = tmp_path / "cp.h5"
    write(path, simulate(CartPoleRun(rows=600, seed=1)), metadata(CartPoleRun(rows=600, seed=1)))
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps({"env": {"max_episode_steps": 50}}))
    report = audit(path, env_facts=facts)
    assert (50, f"--env-facts {facts}") == (report.notes["env_facts"]["max_episode_steps"],
                                             report.notes["env_facts"]["sources"]["max_episode_steps"])
    assert "DONE_MISSING" in report.codes()  # episodes run past the supplied limit
    facts.write_text("{not json")
    with pytest.raises(EnvFactsError, match="is not JSON"):
        audit(path, env_facts=facts)
    with pytest.raises(EnvFactsError, match="unknown key"):
        audit(path, env_facts={"limit": 3})


def test_report_lists_the_checks_a_missing_fact_skipped(make_run):
    """An unknown environment without facts: the checks needing them are skipped with the reason."""
    report = audit(make_run(metadata={"env_id": "NoSuchGame-v0"}))
    assert "no policy recorded" in report.checks["tag_policy"]["reason"]
    assert "declared deterministic" in report.checks["tag_behaviour"]["reason"]
    assert "no facts about the environment" in report.notes["env_facts"]


def test_flat_action_shorthand_is_accepted():
    """n_actions, or action_low with action_high, stand for the 'action' object; mixing them is refused."""
    assert {"n_actions": 3} == {k: v for k, v in parse_block({"n_actions": 3}, "t").items()}
    cont = parse_block({"action_low": [-1.0], "action_high": [1.0]}, "t")
    assert ((1,), [-1.0], [1.0]) == (cont["action_shape"], cont["action_low"].tolist(), cont["action_high"].tolist())
    with pytest.raises(EnvFactsError, match="together"):
        parse_block({"action_low": [-1.0]}, "t")
    with pytest.raises(EnvFactsError, match="not both"):
        parse_block({"n_actions": 2, "action": {"n": 2}}, "t")


def test_a_custom_environment_declared_only_by_its_env_block(tmp_path):
    """A game gymnasium does not know (MountainCar's rows under another id): with an env block the time
    limit, the action count and the deterministic expert come from the block; the clean run stays quiet
    and the learner's time-limit ends stored as terminal are named. Without the block those checks skip."""
    from gym_helpers import make

    block = {"env_id": "MyCar-v0", "env": {"max_episode_steps": 200, "action": {"n": 3}, "random_reset": True,
                                           "actors": {"expert": {"deterministic": True}}}}
    path, _ = make(tmp_path, "pendulum_clean", rows=1500, meta={**block, "env": {
        **block["env"], "action": {"shape": [1], "low": -2, "high": 2}}})
    report = audit(path)
    assert [] == [(a.code, a.actor) for a in report.anomalies_at_least("warning")]
    assert "metadata 'env' block" == report.notes["env_facts"]["sources"]["max_episode_steps"]
    assert "ran" == report.checks["tag_behaviour"]["status"]
    bad, planted = make(tmp_path, "pendulum_limit_terminal", rows=1500, meta={**block, "env": {
        **block["env"], "action": {"shape": [1], "low": -2, "high": 2}}})
    (a,) = [a for a in audit(bad).anomalies if a.code == "BOOTSTRAP_FLAGS"]
    assert "dqn" == a.actor and [int(planted[0]), int(planted[-1]) + 1] == a.rows
    (tmp_path / "bare").mkdir()
    bare, _ = make(tmp_path / "bare", "pendulum_clean", rows=600, meta={"env_id": "MyCar-v0", "env": {}})
    skipped = audit(bare)
    assert "no time limit known" in skipped.checks["bootstrap_flags"]["evidence"]["time_limit"]
    assert "skipped" == skipped.checks["tag_behaviour"]["status"]

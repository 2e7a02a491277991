"""AgentConfig: bad values are refused with the field, the value and what is expected."""

from __future__ import annotations

import json

import pytest

from replaystore.agent import AgentConfig
from replaystore.agent.errors import ConfigError


@pytest.mark.parametrize("kw,match", [
    ({"expert_ratio": 1.5}, r"expert_ratio=1.5: expected a number in \[0, 1\]"),
    ({"batch_size": 0}, "batch_size=0: expected a positive int"),
    ({"n_step": 2.0}, "n_step=2.0: expected a positive int"),
    ({"gamma": 0.0}, r"gamma=0.0: expected a discount in \(0, 1\]"),
    ({"lr": -1e-3}, "lr=-0.001: expected a positive number"),
    ({"hidden": ()}, "hidden=\\(\\): expected a non-empty tuple"),
    ({"dqn_actor": "bot"}, "dqn_actor='bot' is not in actors"),
    ({"sampler_strategy": "greedy"}, "sampler_strategy='greedy': expected one of"),
    ({"sampler_strategy": "stratified"}, "needs actor_fractions"),
    ({"actor_loss_weights": {"human": 1.0}}, r"actor_loss_weights names \['human'\]"),
    ({"actor_loss_weights": {"dqn": -1}}, "invalid values"),
])
def test_bad_values(kw, match):
    """Each bad field raises ConfigError (a ValueError) naming it."""
    with pytest.raises(ConfigError, match=match):
        AgentConfig(**kw)


def test_dict_round_trip_is_json():
    """to_dict is JSON-able and from_dict rebuilds an equal config."""
    c = AgentConfig(hidden=(32, 16), actor_loss_weights={"expert": 2})
    d = json.loads(json.dumps(c.to_dict()))
    assert c == AgentConfig.from_dict(d)


def test_unknown_keys_refused():
    """A config dict with a field this version lacks is an error, not ignored."""
    with pytest.raises(ConfigError, match=r"config keys \['learning_rate'\] are not AgentConfig fields"):
        AgentConfig.from_dict({"learning_rate": 1e-3})

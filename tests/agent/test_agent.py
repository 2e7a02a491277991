"""Agent.step: the actor tag is mandatory end to end; train_step returns per-actor metrics."""

from __future__ import annotations

import ast
import inspect
import pathlib

import numpy as np
import pytest

import replaystore.agent as agent_pkg
from replaystore.agent import Agent, errors
from replaystore.store import ReplayStore
from replaystore.store.errors import MissingActorError, UnknownActorError

from agent_helpers import CARTPOLE, HYBRID, fill, make_agent, tiny_config

S = np.zeros(4, "f4")
C0 = np.zeros(0, "f4")


def test_step_without_actor_fails(tmp_path):
    """Leaving out actor is a TypeError naming the missing keyword, and nothing is stored."""
    a = make_agent(tmp_path)
    with pytest.raises(TypeError, match="actor"):
        a.step(S, 0, C0, 1.0, S, False)
    a.store.commit()
    assert 0 == len(a.store)
    a.store.close()


def test_step_actor_is_keyword_only(tmp_path):
    """A seventh positional argument is not taken as the actor."""
    a = make_agent(tmp_path)
    with pytest.raises(TypeError, match="positional"):
        a.step(S, 0, C0, 1.0, S, False, "dqn")
    a.store.close()


def test_step_unknown_actor_fails(tmp_path):
    """An actor outside the vocabulary raises UnknownActorError listing the vocabulary."""
    a = make_agent(tmp_path)
    with pytest.raises(UnknownActorError, match=r"'human' is not in the store's vocabulary \['expert', 'dqn'\]"):
        a.step(S, 0, C0, 1.0, S, False, actor="human")
    with pytest.raises(UnknownActorError, match="actor code 7"):
        a.step(S, 0, C0, 1.0, S, False, actor=7)
    with pytest.raises(MissingActorError, match="actor=None"):
        a.step(S, 0, C0, 1.0, S, False, actor=None)
    a.store.commit()
    assert 0 == len(a.store)
    assert 0 == a.frames
    a.store.close()


def test_step_records_actor_code(tmp_path):
    """Rows carry the code of whoever decided them, names mapped by the store's vocabulary."""
    a = make_agent(tmp_path)
    a.step(S, 1, C0, 1.0, S, False, actor="expert")
    a.step(S, 0, C0, 0.5, S, True, actor="dqn")
    a.store.commit()
    got = a.store.read(["actor", "discrete_action", "reward", "done", "truncated"])
    assert [0, 1] == got["actor"].tolist()
    assert [1, 0] == got["discrete_action"].tolist()
    assert [False, False] == got["truncated"].tolist()
    a.store.close()


def test_step_rejects_bad_discrete_action_and_shape(tmp_path):
    """An out-of-range discrete action or a continuous action of the wrong width fails loudly."""
    a = make_agent(tmp_path, spec=HYBRID)
    with pytest.raises(errors.TransitionError, match=r"discrete_action=2 is outside \[0, 2\)"):
        a.step(S, 2, np.zeros(1, "f4"), 1.0, S, False, actor="dqn")
    with pytest.raises(errors.TransitionError, match=r"discrete_action=1.5 \(float\) is not an integer"):
        a.step(S, 1.5, np.zeros(1, "f4"), 1.0, S, False, actor="dqn")
    with pytest.raises(ValueError, match="continuous_action"):
        a.step(S, 1, np.zeros(2, "f4"), 1.0, S, False, actor="dqn")
    a.store.close()


def test_no_actor_default_anywhere_on_the_path():
    """No function in agent/ or the train command gives a parameter named actor a default."""
    root = pathlib.Path(agent_pkg.__file__).parent
    files = sorted(root.glob("*.py")) + [root.parent / "replaystore" / "_cmd_train.py"]
    offenders = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                args = node.args
                pos = args.posonlyargs + args.args
                with_default = pos[len(pos) - len(args.defaults):] if args.defaults else []
                with_default += [a for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
                offenders += [f"{f.name}:{node.lineno}" for a in with_default if "actor" == a.arg]
    assert [] == offenders
    assert inspect.signature(Agent.step).parameters["actor"].default is inspect.Parameter.empty


def test_config_vocabulary_must_match_store(tmp_path):
    """An agent whose config names other actors than the store's vocabulary is refused."""
    cfg = tiny_config()
    with ReplayStore.create(tmp_path / "x.h5", agent_pkg.store_schema(CARTPOLE), actors=("dqn", "expert")) as s:
        with pytest.raises(errors.ConfigError, match=r"config.actors=\('expert', 'dqn'\) but the store's vocabulary"):
            Agent(cfg, s, CARTPOLE)


def test_train_step_metrics_match_batch(tmp_path):
    """train_step's per-actor counts sum to the batch size and match the sampler's own count."""
    a = make_agent(tmp_path, spec=HYBRID)
    fill(a, 200)
    m = a.train_step()
    assert 16 == m.batch_size
    assert a._sampler.last_actor_counts.tolist() == m.batch_count.tolist()
    assert m.batch_n_dqn + m.batch_n_expert == 16
    assert np.isfinite(m.loss) and m.awr_loss >= 0
    assert 1 == m.step == a.train_steps
    a.close()
    a.store.close()


def test_train_step_before_any_row_fails(tmp_path):
    """Training on an empty store says so instead of sampling nothing."""
    a = make_agent(tmp_path)
    with pytest.raises(errors.ConfigError, match="no rows yet"):
        a.train_step()
    a.store.close()


def test_stratified_and_prioritized_strategies(tmp_path):
    """The stratified sampler fixes the batch composition; the prioritized one takes TD-error priorities."""
    a = make_agent(tmp_path, sampler_strategy="stratified", actor_fractions={"expert": 0.5, "dqn": 0.5})
    fill(a, 100)
    assert [8, 8] == a.train_step().batch_count.tolist()
    a.close()
    a.store.close()
    b = make_agent(tmp_path, name="p.h5", sampler_strategy="prioritized")
    fill(b, 100)
    b.train_step()
    pri = b._sampler.priorities(np.arange(100))
    assert (pri > 0).all() and len(set(np.round(pri, 6).tolist())) > 1
    b.close()
    b.store.close()

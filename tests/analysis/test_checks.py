"""The registry of checks and the report's record of which ran, which were skipped and why."""

from __future__ import annotations

import numpy as np
from analysis_helpers import recorded, rows_block

from replaystore.analysis import _cartpole as cp
from replaystore.analysis import audit
from replaystore.analysis._checks import CHECKS
from replaystore.store import ReplayStore, Schema


def test_every_registered_check_is_reported():
    """Each registered store check appears in the report, ran or skipped, with what it looks for and needs."""
    r = audit(recorded("healthy"))
    assert [n for n, c in CHECKS.items() if c.scope == "store"] == list(r.checks)
    for name, entry in r.checks.items():
        assert entry["status"] in ("ran", "skipped"), name
        assert entry["about"] == CHECKS[name].about and entry["needs"] == list(CHECKS[name].needs)
        assert ("findings" in entry) == (entry["status"] == "ran") == ("reason" not in entry)


def test_skipped_checks_say_why(tmp_path):
    """A store without state columns skips the checks that need them, naming the missing column."""
    path = tmp_path / "scalars.h5"
    schema = Schema.transition((4,), continuous_dim=1)
    from replaystore.store import Column

    schema = Schema(tuple(c for c in schema if c.name not in ("state", "next_state"))
                    + (Column("obs", np.dtype("float32"), (4,)),))
    block = rows_block(50, "dqn")
    block["obs"] = block.pop("state")
    del block["next_state"]
    with ReplayStore.create(path, schema, actors=("expert", "dqn"), window=100) as s:
        s.extend(block)
    checks = audit(path).checks
    assert "skipped" == checks["transition_chain"]["status"]
    assert "no state, next_state column(s) in the store" == checks["transition_chain"]["reason"]
    assert "ran" == checks["episode_bookkeeping"]["status"]


def test_empty_store_skips_the_transition_checks(empty_store):
    """Without rows only the composition and telemetry checks run (to say so)."""
    checks = audit(empty_store).checks
    assert {"composition"} == {k for k, v in checks.items() if v["status"] == "ran"}
    assert "the store has no committed rows" == checks["transition_chain"]["reason"]


def test_tag_policy_skips_without_the_agent(tmp_path, monkeypatch):
    """Without replaystore.agent (torch/gymnasium missing) the policy check is skipped with the reason."""
    import sys

    run = cp.CartPoleRun(rows=400, seed=1)
    path = tmp_path / "cp.h5"
    cp.write(path, cp.simulate(run), cp.metadata(run))
    monkeypatch.setitem(sys.modules, "replaystore.agent", None)  # import raises ImportError
    entry = audit(path).checks["tag_policy"]
    assert "skipped" == entry["status"] and "pip install 'replaystore[agent]'" in entry["reason"]


def test_tag_policy_skips_for_an_environment_without_a_policy():
    """A run on an environment without a scripted policy: 'no policy recorded for actor ...'."""
    reason = audit(recorded("healthy")).checks["tag_policy"]["reason"]
    assert "no policy recorded for actor 'expert'" in reason and "Synthetic-v0" in reason


def test_summary_and_markdown_list_skipped_checks():
    """The Markdown report lists each check with its status and reason."""
    md = audit(recorded("incident")).to_markdown()
    assert "| state_statistics | skipped | fewer than two actors" in md

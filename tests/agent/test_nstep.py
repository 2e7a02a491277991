"""n-step returns from stored rows: episode ends, time limits, the committed edge."""

from __future__ import annotations

import numpy as np
import pytest

from replaystore.agent import nstep_targets
from replaystore.agent._nstep import NStepGatherer

from agent_helpers import make_agent

S = np.zeros(4, "f4")
C0 = np.zeros(0, "f4")


def reference(rewards, dones, truncs, committed, row, n, gamma):
    """Walk forward from ``row`` until n rows, the episode's end or the committed edge."""
    g, k = 0.0, 0
    while True:
        g += gamma ** k * rewards[row + k]
        if dones[row + k]:
            terminal = not truncs[row + k]
            return g, row + k, 0.0 if terminal else gamma ** (k + 1)
        if k + 1 == n or row + k + 1 >= committed:
            return g, row + k, gamma ** (k + 1)
        k += 1


def test_gatherer_matches_reference(tmp_path):
    """Returns, bootstrap rows and discounts equal a step-by-step walk over the stored rows."""
    a = make_agent(tmp_path, n_step=4, gamma=0.9)
    rng = np.random.default_rng(0)
    n_rows = 60
    rewards = rng.normal(size=n_rows).astype("f4")
    dones = rng.random(n_rows) < 0.15
    truncs = dones & (rng.random(n_rows) < 0.5)
    for i in range(n_rows):
        a.step(S + i, 0, C0, rewards[i], S + i + 1, bool(dones[i]), actor="dqn", truncated=bool(truncs[i]))
    a.store.commit()
    g = NStepGatherer(a.store, 4, 0.9)
    rows = np.arange(n_rows, dtype=np.int64)
    G, boot, disc = g(rows)
    for r in rows:
        eg, eb, ed = reference(rewards, dones, truncs, n_rows, int(r), 4, 0.9)
        assert eg == pytest.approx(float(G[r]), rel=1e-5, abs=1e-5)
        assert eb == boot[r]
        assert ed == pytest.approx(float(disc[r]), rel=1e-6)
    assert (g.next_states(boot)[:, 0] == boot + 1).all()
    a.store.close()


def test_window_stops_at_committed_edge(tmp_path):
    """Rows appended but not committed are not read: the return is cut and bootstraps earlier."""
    a = make_agent(tmp_path, n_step=3, gamma=0.5, commit_every=10_000)
    for i in range(5):
        a.step(S, 0, C0, 1.0, S, False, actor="dqn")
    a.store.commit()
    for i in range(5):
        a.step(S, 0, C0, 100.0, S, False, actor="dqn")
    G, boot, disc = NStepGatherer(a.store, 3, 0.5)(np.array([3, 4]))
    assert [1.5, 1.0] == G.tolist()
    assert [4, 4] == boot.tolist()
    assert [0.25, 0.5] == disc.tolist()
    a.store.close()


def test_nstep_targets_one_step():
    """With n=1 the target is the row's reward and gamma, or 0 at a terminal row."""
    G, last, disc = nstep_targets(np.array([[2.0], [3.0]]), np.zeros((2, 1), int), np.array([[False], [True]]),
                                  np.array([[False], [True]]), np.ones((2, 1), bool), 0.9)
    assert [2.0, 3.0] == G.tolist()
    assert [0, 0] == last.tolist()
    assert pytest.approx([0.9, 0.0]) == disc.tolist()


def test_next_episode_rows_are_not_summed(tmp_path):
    """A row after a done row (next episode) never enters the return, even inside the horizon."""
    a = make_agent(tmp_path, n_step=5, gamma=1.0)
    for i, d in enumerate([False, True, False, False, False, False]):
        a.step(S, 0, C0, float(10 ** i), S, d, actor="expert")
    a.store.commit()
    G, boot, disc = NStepGatherer(a.store, 5, 1.0)(np.array([0, 2]))
    assert [11.0, 100.0 + 1000 + 10000 + 100000] == G.tolist()
    assert [1, 5] == boot.tolist()
    assert [0.0, 1.0] == disc.tolist()
    a.store.close()

"""Vectorized per-actor metrics against a plain Python reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from replaystore.agent import TrainMetrics, per_actor_stats


def reference(codes, td, reward, q, n_actors):
    """The obvious loop over the batch, one sample at a time."""
    count = [0] * n_actors
    sums = [[0.0, 0.0, 0.0] for _ in range(n_actors)]
    for c, t, r, v in zip(codes, td, reward, q):
        count[c] += 1
        sums[c][0] += abs(t)
        sums[c][1] += r
        sums[c][2] += v
    means = [[s / count[a] if count[a] else math.nan for s in sums[a]] for a in range(n_actors)]
    return count, means


@pytest.mark.parametrize("n_actors,batch,seed", [(2, 256, 0), (3, 37, 1), (5, 8, 2), (2, 1, 3)])
def test_per_actor_stats_match_loop(n_actors, batch, seed):
    """Counts and means per actor equal the loop's, and an absent actor's means are NaN."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, n_actors - 1 if n_actors > 2 else n_actors, batch)  # last actor absent when A > 2
    td, reward, q = (rng.normal(size=batch).astype("f4") for _ in range(3))
    count, td_m, r_m, q_m = per_actor_stats(torch.from_numpy(codes.astype("u1")), torch.from_numpy(td),
                                            torch.from_numpy(reward), torch.from_numpy(q), n_actors)
    ref_count, ref_means = reference(codes.tolist(), td.tolist(), reward.tolist(), q.tolist(), n_actors)
    assert ref_count == count.tolist()
    for a in range(n_actors):
        expected = ref_means[a]
        got = [td_m[a], r_m[a], q_m[a]]
        for e, g in zip(expected, got):
            if math.isnan(e):
                assert math.isnan(g)
            else:
                assert e == pytest.approx(float(g), rel=1e-5, abs=1e-6)


def _metrics(counts):
    n = len(counts)
    return TrainMetrics(7, 1.0, 0.5, 0.5, ("expert", "dqn", "other")[:n], np.array(counts, np.int32),
                        np.arange(n, dtype="f4") + 1, np.arange(n, dtype="f4") + 10, np.arange(n, dtype="f4") + 100)


def test_named_properties_read_the_right_actor():
    """batch_frac_dqn, td_err_mean_expert, ... pick the actor by name, not by position."""
    m = _metrics([25, 75])
    assert (0.75, 75, 25) == (m.batch_frac_dqn, m.batch_n_dqn, m.batch_n_expert)
    assert (2.0, 1.0) == (m.td_err_mean_dqn, m.td_err_mean_expert)
    assert (11.0, 10.0) == (m.reward_mean_dqn, m.reward_mean_expert)
    assert (101.0, 100.0) == (m.q_mean_dqn, m.q_mean_expert)
    assert {"batch_n": 75, "batch_frac": 0.75, "td_err_mean": 2.0, "reward_mean": 11.0, "q_mean": 101.0} \
        == {k: v for k, v in m.per_actor()["dqn"].items() if k != "grad_norm"}
    assert math.isnan(m.per_actor()["dqn"]["grad_norm"])


def test_named_property_of_absent_actor_fails():
    """A vocabulary without 'dqn' makes batch_n_dqn raise, pointing at per_actor()."""
    m = TrainMetrics(1, 0.0, 0.0, 0.0, ("human", "bot"), np.array([1, 1], np.int32), *(np.zeros(2, "f4"),) * 3)
    with pytest.raises(KeyError, match=r"'dqn' is not in this run's vocabulary \['human', 'bot'\]"):
        m.batch_n_dqn

"""Statistics building blocks: distributions, histograms, composition, episodes."""

from __future__ import annotations

import numpy as np

from replaystore.analysis import _stats


def test_describe_counts_nonfinite_and_uses_finite_values():
    """NaN and inf are counted apart; the moments come from the finite values only."""
    d = _stats.describe([1.0, 2.0, 3.0, np.nan, np.inf])
    assert (5, 2) == (d["count"], d["nonfinite"])
    assert (2.0, 1.0, 3.0) == (d["mean"], d["min"], d["max"])
    assert 2.0 == d["quantiles"]["0.5"]


def test_describe_of_nothing_is_none_not_zero():
    """No finite value: every statistic is None (JSON null), never a made-up 0."""
    d = _stats.describe([])
    assert (0, None, None) == (d["count"], d["mean"], d["quantiles"]["0.5"])


def test_histograms_share_edges_and_log_bins():
    """Groups share edges; log bins are geometric and count values <= 0 apart."""
    h = _stats.histograms({"a": [0.0, 1.0, 2.0], "b": [4.0]}, bins=4)
    assert [0.0, 1.0, 2.0, 3.0, 4.0] == h["edges"]
    assert ([1, 1, 1, 0], [0, 0, 0, 1]) == (h["counts"]["a"], h["counts"]["b"])
    lg = _stats.histograms({"a": [0.01, 0.1, 1.0, 0.0, -1.0]}, bins=2, log=True)
    e = np.array(lg["edges"])
    assert np.isclose(e[1] / e[0], e[2] / e[1])
    assert (2, 3) == (lg["below"]["a"], sum(lg["counts"]["a"]))


def test_composition_and_over_time_count_unknown_codes_apart():
    """Unknown codes are neither actor; buckets are fixed-size with a short last one."""
    codes = np.array([0, 0, 1, 1, 1, 9, 0], np.uint8)
    c = _stats.composition(codes, ("expert", "dqn"), 0, 7)
    assert ({"expert": 3, "dqn": 3}, 1, 7) == (c["counts"], c["unknown_codes"], c["total"])
    ot = _stats.composition_over_time(codes, ("expert", "dqn"), 3)
    assert ([0, 3, 6], [3, 6, 7]) == (ot["start"], ot["stop"])
    assert [2 / 3, 0.0, 1.0] == ot["fractions"]["expert"]
    assert [0, 1, 0] == ot["unknown_codes"]


def test_bucket_size_is_round():
    """About 50 buckets, in 1/2/5 x 10^k rows."""
    assert (1, 20, 20_000, 50) == (_stats.bucket_size(40), _stats.bucket_size(1000), _stats.bucket_size(1_000_000),
                                   _stats.bucket_size(2100))


def test_episode_table_contiguous_and_interleaved():
    """Lengths, returns and per-actor counts, whether episodes are contiguous or interleaved."""
    ep = np.array([0, 0, 0, 1, 1])
    codes = np.array([0, 1, 1, 1, 1], np.uint8)
    rew = np.array([1, 2, 3, 4, 5], np.float32)
    done = np.array([0, 0, 1, 0, 0], bool)
    t = _stats.episode_table(ep, codes, rew, done, 2)
    assert ([3, 2], [6.0, 9.0], [True, False]) == (t["length"].tolist(), t["ret"].tolist(), t["ended"].tolist())
    assert [[1, 2, 0], [0, 2, 0]] == t["counts"].tolist()
    assert ([0, 3], [2, 4]) == (t["first"].tolist(), t["last"].tolist())
    t2 = _stats.episode_table(np.array([5, 7, 5, 7]), np.array([0, 1, 0, 1], np.uint8),
                              np.ones(4, np.float32), np.array([0, 0, 1, 1], bool), 2)
    assert ([2, 2], [0, 1], [2, 3]) == (t2["length"].tolist(), t2["first"].tolist(), t2["last"].tolist())

"""Credit per actor: return-to-go of the frames each actor decided, episodes grouped by actor share."""

from __future__ import annotations

import numpy as np

from replaystore.analysis import _credit, _stats

NAMES = ("expert", "dqn")


def _credit_of(ep, codes, rew, done):
    ep, codes = np.array(ep), np.array(codes, np.uint8)
    rew, done = np.array(rew, np.float32), np.array(done, bool)
    return _credit.credit(_stats.episode_table(ep, codes, rew, done, 2), ep, codes, rew, NAMES)


def test_return_to_go_per_actor_by_hand():
    """Return-to-go sums each frame's rewards to its episode's end; unended episodes are left out."""
    c = _credit_of([0, 0, 0, 1, 1, 2, 2, 3], [0, 0, 1, 1, 1, 0, 1, 0], [1, 2, 3, 4, 5, 6, 7, 8],
                   [0, 0, 1, 0, 1, 0, 1, 0])
    # ep0 rewards 1,2,3 -> 6,5,3; ep1 4,5 -> 9,5; ep2 6,7 -> 13,7; ep3 not ended
    assert (3, 4) == (c["per_actor"]["expert"]["frames"], c["per_actor"]["dqn"]["frames"])
    assert np.isclose((6 + 5 + 13) / 3, c["per_actor"]["expert"]["return_to_go"]["mean"])
    assert np.isclose((3 + 9 + 5 + 7) / 4, c["per_actor"]["dqn"]["return_to_go"]["mean"])


def test_episodes_grouped_by_actor_share():
    """Each ended episode falls in the bin of each actor's share of its frames (1.0 in the last bin)."""
    c = _credit_of([0, 0, 0, 1, 1, 2, 2, 3], [0, 0, 1, 1, 1, 0, 1, 0], [1, 2, 3, 4, 5, 6, 7, 8],
                   [0, 0, 1, 0, 1, 0, 1, 0])
    e, d = c["by_share"]["expert"], c["by_share"]["dqn"]
    # expert shares: 2/3, 0, 1/2 -> bins [0.5, 0.75), [0, 0.1), [0.5, 0.75)
    assert [1, 0, 0, 2, 0, 0] == e["episodes"]
    assert (9.0, 9.5) == (e["mean_return"][0], e["mean_return"][3])
    # dqn shares: 1/3, 1, 1/2
    assert [0, 0, 1, 1, 0, 1] == d["episodes"]
    assert (6.0, 9.0) == (d["mean_return"][2], d["mean_return"][5])


def test_interleaved_episode_ids():
    """Rows of two episodes that alternate still get each episode's own return-to-go."""
    c = _credit_of([5, 7, 5, 7], [0, 1, 0, 1], [1, 2, 3, 4], [0, 0, 1, 1])
    assert np.isclose((4 + 3) / 2, c["per_actor"]["expert"]["return_to_go"]["mean"])
    assert np.isclose((6 + 4) / 2, c["per_actor"]["dqn"]["return_to_go"]["mean"])

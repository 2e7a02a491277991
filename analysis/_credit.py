"""Returns per actor that mean something when actors alternate inside an episode (the agent mixes
the expert in frame by frame, so a majority label gives the expert no episode at all):

- return-to-go of the frames each actor decided: the sum of the rewards from that frame to the
  end of its episode;
- episodes grouped by each actor's share of their frames, with their mean return and length.

Only episodes that ended (a done row) count."""

from __future__ import annotations

import numpy as np

from ._stats import CHUNK_ROWS, describe, histograms, num

SHARE_EDGES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def _chunks(n: int):
    for lo in range(0, n, CHUNK_ROWS):
        yield lo, min(n, lo + CHUNK_ROWS)


def _rewards(reward: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Rewards of rows ``[lo, hi)`` as float64, non-finite ones as 0 (they carry no return)."""
    return np.nan_to_num(reward[lo:hi].astype(np.float64), copy=False, nan=0.0, posinf=0.0, neginf=0.0)


def _running_sums(reward: np.ndarray, n: int):
    """``(lo, hi, cumsum of the rewards up to each row of [lo, hi))``, chunk by chunk: np.cumsum adds in
    order, so seeded with the sum so far it gives the whole column's sums exactly."""
    before = None
    for lo, hi in _chunks(n):
        r = _rewards(reward, lo, hi)
        cum = np.cumsum(r) if before is None else np.cumsum(np.r_[before, r])[1:]
        yield lo, hi, cum
        before = cum[-1]


def credit(table: dict, episode: np.ndarray, codes: np.ndarray, reward: np.ndarray, names) -> dict:
    """``table``: ``_stats.episode_table`` of the same rows."""
    a = len(names)
    ended = table["ended"]
    # row -> episode index in the table (rows of one id need not be contiguous)
    n = len(episode)
    if n and (episode[1:] >= episode[:-1]).all():  # not np.diff: an 8-byte temporary a row
        idx = np.empty(n, np.intp)
        idx[0] = 0
        np.not_equal(episode[1:], episode[:-1], out=idx[1:])  # episode changes, summed in place
        np.cumsum(idx, out=idx)
    else:
        _, idx = np.unique(episode, return_inverse=True)
    if np.all(idx[1:] >= idx[:-1]):
        # episodes contiguous (one environment writing): no reordering, and the return-to-go is built in
        # place, chunk by chunk (each full-size temporary here was 8 bytes a row of the audit's peak memory):
        # rtg = cum[last row of the episode] - cum + r, with cum the running sum of the rewards
        last = np.searchsorted(idx, np.arange(len(ended))) + table["length"] - 1
        # two passes over the running sum, never held whole: the first keeps its value at each episode's
        # last row, the second makes it again (the same additions in the same order) beside the rtg
        at_last = np.empty(len(ended))
        for lo, hi, cum in _running_sums(reward, n):
            mine = (last >= lo) & (last < hi)
            at_last[mine] = cum[last[mine] - lo]
        rtg = np.empty(n)
        for lo, hi, cum in _running_sums(reward, n):
            t = rtg[lo:hi]
            np.take(at_last, idx[lo:hi], out=t)
            t -= cum
            t += _rewards(reward, lo, hi)
    else:
        r = _rewards(reward, 0, n)
        order = np.argsort(idx, kind="stable")
        rs = r[order]
        cum = np.cumsum(rs)
        ep_of = idx[order]
        first = np.searchsorted(ep_of, np.arange(len(ended)))
        last = first + table["length"] - 1
        rtg_sorted = cum[last[ep_of]] - cum + rs
        rtg = np.empty_like(rtg_sorted)
        rtg[order] = rtg_sorted
        del r
    in_ended = ended[idx]
    del idx
    per_actor = {}
    groups = {}
    for i, x in enumerate(names):
        groups[x] = rtg[in_ended & (codes == i)]
    del rtg, in_ended
    for x, g in groups.items():  # the histograms below count values: their order does not matter
        per_actor[x] = {"frames": int(g.size), "return_to_go": describe(g, reorder=True)}
    counts = table["counts"][ended][:, :a]
    total = np.maximum(1, table["counts"][ended].sum(axis=1))
    ret, length = table["ret"][ended], table["length"][ended]
    edges = np.asarray(SHARE_EDGES)
    by_share = {}
    for i, x in enumerate(names):
        share = counts[:, i] / total
        b = np.clip(np.searchsorted(edges, share, side="right") - 1, 0, len(edges) - 2)
        b[share >= 1.0] = len(edges) - 2
        by_share[x] = {
            "episodes": np.bincount(b, minlength=len(edges) - 1).tolist(),
            "mean_return": [num(ret[b == k].mean()) if (b == k).any() else None for k in range(len(edges) - 1)],
            "mean_length": [num(length[b == k].mean()) if (b == k).any() else None for k in range(len(edges) - 1)],
            "mean_share": num(share.mean()) if share.size else None,
        }
    return {
        "method": "return-to-go: rewards from a frame to the end of its episode, over the frames each actor "
                  "decided; by_share: ended episodes grouped by the share of their frames each actor decided "
                  f"(bins {list(SHARE_EDGES)}, the last bin closed)",
        "per_actor": per_actor, "share_edges": list(SHARE_EDGES), "by_share": by_share,
        "return_to_go_histogram": histograms(groups),
    }

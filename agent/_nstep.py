"""n-step returns computed at sample time from the stored one-step rows.

Why here and not in the writer: the store is the record of what happened, frame by frame and
actor by actor; folding n rewards into one row would hide who earned them and fix ``n`` at
collection time. The sampler returns row ids; rows ``r .. r+n-1`` are gathered from the mapped
file (``ColumnMap.gather``, no HDF5 call), and the return stops at the end of the episode (the
``episode`` column changes after a ``done`` row) or at the last committed row. A cut return
bootstraps from the ``next_state`` of the last row it used, with ``gamma ** k`` for ``k`` rows,
so a shorter return is still an unbiased target of its own horizon.

The ``done`` column marks the end of an episode (the store numbers episodes from it); a time
limit is not a terminal state, so the agent also stores ``truncated`` and bootstraps through it.
"""

from __future__ import annotations

import numpy as np

TRUNCATED = "truncated"


def nstep_targets(reward: np.ndarray, episode: np.ndarray, done: np.ndarray, terminal: np.ndarray,
                  valid: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From ``[B, n]`` windows (column k = row r+k) return ``(G, last, discount)``.

    ``G``: discounted reward sum over the rows used; ``last``: offset of the last row used (0..n-1);
    ``discount``: ``gamma ** (last + 1)``, or 0 where that row ended in a terminal state.
    Column 0 must be valid (the sampled row itself).
    """
    B, n = reward.shape
    same = (episode == episode[:, :1]) & valid
    # a row after a done row belongs to the next episode even if a caller reused an episode number
    not_after_done = np.ones_like(same)
    if n > 1:
        not_after_done[:, 1:] = np.cumprod(~done[:, :-1], axis=1).astype(bool)
    used = np.cumprod(same & not_after_done, axis=1).astype(bool)
    powers = gamma ** np.arange(n, dtype=np.float64)
    G = (reward.astype(np.float64) * powers * used).sum(1)
    last = used.sum(1) - 1
    term = terminal[np.arange(B), last]
    discount = np.where(term, 0.0, gamma ** (last + 1.0))
    return G.astype(np.float32), last.astype(np.int64), discount.astype(np.float32)


class NStepGatherer:
    """Gathers the ``[B, n]`` windows of a batch's rows from a store's mapped columns."""

    def __init__(self, store, n: int, gamma: float):
        self.store = store
        self.n = int(n)
        self.gamma = float(gamma)
        self.has_truncated = TRUNCATED in store.schema
        self._offsets = np.arange(self.n, dtype=np.int64)
        self._columns = ["reward", "episode", "done"] + ([TRUNCATED] if self.has_truncated else [])

    def __call__(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(G, boot_rows, discount)``: bootstrap from ``next_state[boot_rows]`` times ``discount``."""
        rows = np.asarray(rows, np.int64)
        committed = len(self.store)
        win = rows[:, None] + self._offsets
        valid = win < committed
        flat = np.minimum(win, committed - 1).reshape(-1)
        shape = win.shape
        cols = self.store.gather(flat, self._columns)
        reward = cols["reward"].reshape(shape)
        episode = cols["episode"].reshape(shape)
        done = cols["done"].reshape(shape).astype(bool)
        if self.has_truncated:
            terminal = done & ~cols[TRUNCATED].reshape(shape).astype(bool)
        else:
            terminal = done
        G, last, discount = nstep_targets(reward, episode, done, terminal, valid, self.gamma)
        return G, rows + last, discount

    def next_states(self, boot_rows: np.ndarray) -> np.ndarray:
        return self.store.gather(boot_rows, "next_state")["next_state"]

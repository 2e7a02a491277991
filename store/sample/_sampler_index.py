"""Index pieces for the sampler: per-actor row lists and largest-remainder batch counts."""

from __future__ import annotations

import numpy as np

# A list drops the rows that left the window once they are this many and at least half of it.
_COMPACT_MIN = 4096
# Up to this many actors in a block, rows are split by one pass per actor, else by one sort.
_SCAN_ACTORS = 8


class ActorRows:
    """Per actor code, the ascending ids of its rows in the replay window.

    Built once from the mapped actor column, then extended with each commit's new rows; rows
    that leave the window are skipped by a start pointer and dropped in bulk, so memory follows
    the window, not the store.
    """

    def __init__(self, n_actors: int):
        self._rows = [np.empty(1024, np.int64) for _ in range(n_actors)]
        self._len = [0] * n_actors
        self._start = [0] * n_actors

    def extend(self, codes: np.ndarray, first_row: int) -> None:
        """Add rows ``first_row + i`` whose actor codes are ``codes[i]``."""
        if len(codes) == 0:
            return
        n_actors = len(self._rows)
        counts = np.bincount(codes, minlength=n_actors)
        if len(counts) > n_actors:
            raise ValueError(f"actor code {len(counts) - 1} outside the vocabulary of {n_actors} actors")
        present = np.flatnonzero(counts).tolist()
        if len(present) <= _SCAN_ACTORS:  # one comparison pass per actor beats a sort
            for a in present:
                self._append(a, np.flatnonzero(codes == a) + first_row)
            return
        order = np.argsort(codes, kind="stable")  # rows of one actor stay ascending
        order += first_row
        at = 0
        for a in present:
            k = int(counts[a])
            self._append(a, order[at:at + k])
            at += k

    def _append(self, a: int, rows: np.ndarray) -> None:
        buf, n = self._rows[a], self._len[a]
        if n + len(rows) > len(buf):
            s = self._start[a]
            live = n - s
            new = np.empty(max(2 * (live + len(rows)), 1024), np.int64)
            new[:live] = buf[s:n]
            self._rows[a], self._start[a], n = new, 0, live
            buf = new
        buf[n:n + len(rows)] = rows
        self._len[a] = n + len(rows)

    def trim(self, lo: int) -> None:
        """Forget rows below ``lo`` (the window's first row)."""
        for a, buf in enumerate(self._rows):
            s, n = self._start[a], self._len[a]
            s += int(np.searchsorted(buf[s:n], lo))
            if s >= _COMPACT_MIN and 2 * s >= n:
                buf[:n - s] = buf[s:n]
                n, s = n - s, 0
                self._len[a] = n
            self._start[a] = s

    def rows(self, a: int) -> np.ndarray:
        """A view of actor ``a``'s rows in the window (valid until the next extend or trim)."""
        return self._rows[a][self._start[a]:self._len[a]]

    def counts(self) -> np.ndarray:
        return np.array([n - s for n, s in zip(self._len, self._start)], np.int64)

    def capacity(self) -> int:
        """Row slots held across actors (to check that memory follows the window)."""
        return sum(len(b) for b in self._rows)


def largest_remainder(fractions: np.ndarray, total: int) -> np.ndarray:
    """Integer counts proportional to ``fractions`` that sum to ``total``.

    Each count is the floor of its quota; the rows left over go one each to the largest
    remainders, ties to the lower actor code, so the result is the same on every run. An actor
    whose fraction is zero never gets one.

    >>> largest_remainder(np.array([0.25, 0.75]), 10).tolist()
    [3, 7]
    """
    quota = fractions * total
    counts = np.floor(quota).astype(np.int64)
    left = int(total - counts.sum())
    if left > 0:
        order = np.lexsort((np.arange(len(quota)), -(quota - counts), fractions <= 0))
        counts[order[:left]] += 1
    return counts

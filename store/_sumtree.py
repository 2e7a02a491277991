"""A sum tree over non-negative leaf values, vectorized with numpy (for prioritized replay).

The tree is one flat float64 array: node ``i`` has children ``2i`` and ``2i + 1``, the root is
node 1 and leaf ``k`` is node ``capacity + k``. Every internal node is recomputed from its two
children (never updated by adding a difference), so rounding errors do not accumulate.
"""

from __future__ import annotations

import numpy as np

# A prefix search starts from the cumulative sum of one tree level of at most this many nodes
# (searchsorted) and walks down the rest: it replaces the top levels' gathers with one cumsum.
_TOP_NODES_LOG2 = 14


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())


class SumTree:
    """Leaf values and their sums; ``find`` maps prefix sums to leaves.

    >>> t = SumTree(4)
    >>> t.set(np.array([0, 2]), np.array([1.0, 3.0]))
    >>> float(t.total), t.find(np.array([0.5, 1.5, 3.9])).tolist()
    (4.0, [0, 2, 2])
    """

    def __init__(self, capacity: int):
        self.capacity = _pow2_at_least(max(1, int(capacity)))
        self.depth = self.capacity.bit_length() - 1
        self.tree = np.zeros(2 * self.capacity, np.float64)

    @property
    def total(self) -> float:
        return float(self.tree[1])

    @property
    def leaves(self) -> np.ndarray:
        """A read-only view of the leaf values."""
        v = self.tree[self.capacity:]
        v.flags.writeable = False
        return v

    def grow(self, capacity: int) -> None:
        """Make room for at least ``capacity`` leaves, keeping the values of the current ones."""
        if capacity <= self.capacity:
            return
        old = self.tree[self.capacity:]
        self.__init__(capacity)
        self.tree[self.capacity:self.capacity + len(old)] = old
        self._rebuild(0, len(old))

    def set(self, leaves: np.ndarray, values: np.ndarray) -> None:
        """Set leaves (any order, repeats allowed: the last value wins) and update their ancestors."""
        if len(leaves) == 0:
            return
        t = self.tree
        idx = np.asarray(leaves, np.int64) + self.capacity
        t[idx] = values
        idx = np.sort(idx) >> 1
        while True:
            keep = np.empty(len(idx), bool)
            keep[0] = True
            np.not_equal(idx[1:], idx[:-1], out=keep[1:])
            idx = idx[keep]
            left = idx << 1
            t[idx] = t[left] + t[left + 1]
            if idx[0] == 1:
                return
            idx >>= 1

    def set_range(self, start: int, values: np.ndarray) -> None:
        """Set the contiguous leaves ``[start, start + len(values))`` and update their ancestors."""
        stop = start + len(values)
        if stop > self.capacity or start < 0:
            raise IndexError(f"leaves [{start}, {stop}) outside the tree's {self.capacity} leaves")
        self.tree[self.capacity + start:self.capacity + stop] = values
        self._rebuild(start, stop)

    def _rebuild(self, start: int, stop: int) -> None:
        if stop <= start:
            return
        t = self.tree
        lo, hi = self.capacity + start, self.capacity + stop - 1  # inclusive node range
        while lo > 1:
            lo, hi = lo >> 1, hi >> 1
            t[lo:hi + 1] = t[2 * lo:2 * hi + 2:2] + t[2 * lo + 1:2 * hi + 2:2]

    def top_cumsum(self) -> np.ndarray:
        """Cumulative sums over the search's starting level; its last entry is the total to draw from.

        Drawing prefixes below this (not below ``total``) keeps every draw inside the tree even
        when the two sums differ in their last bits.
        """
        d0 = min(self.depth, _TOP_NODES_LOG2)
        return np.cumsum(self.tree[1 << d0:2 << d0])

    def find(self, prefix: np.ndarray, cums: np.ndarray | None = None) -> np.ndarray:
        """For each prefix sum in ``[0, total)``, the leaf whose span of the running sum holds it."""
        if cums is None:
            cums = self.top_cumsum()
        d0 = len(cums).bit_length() - 1
        node = np.searchsorted(cums, prefix, side="right")
        np.minimum(node, len(cums) - 1, out=node)
        before = np.where(node > 0, cums[node - 1], 0.0)
        u = prefix - before
        idx = node + (1 << d0)
        t = self.tree
        for _ in range(self.depth - d0):
            left = idx << 1
            lv = t[left]
            right = u >= lv
            u -= lv * right
            idx = left + right
        return idx - self.capacity

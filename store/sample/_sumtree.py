"""A sum tree over non-negative leaf values, vectorized with numpy (for prioritized replay).

The tree is one flat float64 array: node ``i`` has children ``2i`` and ``2i + 1``, the root is
node 1 and leaf ``k`` is node ``capacity + k``. Every internal node is recomputed from its two
children (never updated by adding a difference), so rounding errors do not accumulate.
"""

from __future__ import annotations

import numpy as np

# A prefix search starts from the cumulative sums of one tree level of at most this many nodes
# and walks down the rest. Measured at 2^20 leaves and 8192 draws: 2^12 nodes with
# ``find_slices``' counting beat 2^14 with searchsorted (the old start) by about 1.7x.
_TOP_NODES_LOG2 = 12


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
        # Below, only the parents of changed nodes are recomputed; a parent listed twice gets the
        # same sum twice, so no sort or dedupe is needed. Near the top, where a level has fewer
        # than twice as many nodes as there are changes, recomputing the whole level from
        # strided slices is cheaper than gathers. (Measured at 8192 changes in 2^20 leaves: about
        # 4x faster than sorting and deduplicating at every level.)
        level = self.depth
        while level > 0 and (1 << (level - 1)) > 2 * len(idx):
            idx >>= 1
            left = idx << 1
            t[idx] = t[left] + t[left + 1]
            level -= 1
        self._rebuild_levels(level)

    def _rebuild_levels(self, level: int) -> None:
        """Recompute every node above ``level`` (root = level 0) from the level below it."""
        t = self.tree
        for lv in range(level - 1, -1, -1):
            lo = 1 << lv
            np.add(t[2 * lo:4 * lo:2], t[2 * lo + 1:4 * lo:2], out=t[lo:2 * lo])

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
        node = np.searchsorted(cums, prefix, side="right")
        return self._descend(node, prefix, cums)

    def find_slices(self, offsets: np.ndarray) -> tuple[np.ndarray, float]:
        """One draw in each of ``b = len(offsets)`` equal slices of the total: the leaves (ascending)
        that hold the prefix sums ``(m + offsets[m]) * total / b``, and that total.

        Same leaves as ``find`` of those prefixes, found faster by counting: because the prefixes
        rise by one slice each, a starting node's cumulative sum ``c`` lies above the first
        ``floor(c / slice) - 1`` of them and below all but the next three, so three comparisons
        per node and a bincount place every prefix, where a binary search per prefix cost about
        3x as much (measured here at 8192 draws).
        """
        cums = self.top_cumsum()
        total = float(cums[-1])
        b = len(offsets)
        if not total > 0:
            return np.zeros(0, np.int64), total
        width = total / b
        prefix = np.empty(b + 3)
        np.add(np.arange(b), offsets, out=prefix[:b])
        prefix[:b] *= width
        prefix[b:] = np.inf  # padding for the comparisons past the last slice
        j = (cums / width).astype(np.int64)
        j -= 1
        np.clip(j, 0, b, out=j)
        below = j + (prefix[j] < cums)
        below += prefix[j + 1] < cums
        below += prefix[j + 2] < cums
        node = np.bincount(below, minlength=b + 1)[:b].cumsum()  # cumulative sums <= each prefix
        return self._descend(node, prefix[:b], cums), total

    def _descend(self, node: np.ndarray, prefix: np.ndarray, cums: np.ndarray) -> np.ndarray:
        d0 = len(cums).bit_length() - 1
        np.minimum(node, len(cums) - 1, out=node)
        before = np.empty(len(cums) + 1)
        before[0] = 0.0
        before[1:] = cums
        u = prefix - before[node]
        idx = node
        idx += 1 << d0
        t = self.tree
        for _ in range(self.depth - d0):  # in-place ops: about 10% faster a level than fresh arrays
            idx <<= 1
            lv = t[idx]
            right = u >= lv
            u -= lv * right
            idx += right
        idx -= self.capacity
        return idx

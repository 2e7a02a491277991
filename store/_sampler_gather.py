"""The sampler's gather: row ids to fresh arrays, read from the mapped chunks with numpy.

Same layout rule as ``ColumnMap`` (row ``r`` at element ``chunk_elem[r // rpc] + (r % rpc) * width``)
rewritten for a batch of many columns: ``r // rpc`` is computed once per distinct ``rpc`` (a shift
when it is a power of two, as the store's chunks are), and each column then needs one small
table lookup and one add, ``r * width + shift_w[r // rpc]`` with
``shift_w[q] = chunk_elem[q] - q * rpc * width``. This keeps the index work per batch well under
the cost of the gather itself.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ._mapped import ColumnMap, MappedFile


class GatherPlan:
    """Built at each commit the sampler sees (chunk tables change); ``gather`` runs per batch."""

    def __init__(self, mf: MappedFile, maps: dict[str, ColumnMap], columns):
        self._groups: dict[int, int | None] = {}  # rpc -> shift (None when not a power of two)
        self._cols = []
        for name, col in columns:
            m = maps.get(name)
            if m is None:  # width-0 column: nothing stored
                self._cols.append((name, None, None, None, col))
                continue
            rpc = m.rpc
            self._groups[rpc] = rpc.bit_length() - 1 if rpc & (rpc - 1) == 0 else None
            q = np.arange(len(m.chunk_elem), dtype=np.int64)
            shift_w = m.chunk_elem - q * rpc * m.width
            base = mf.elements(col.dtype)
            if m.width == 1 and not m.row_shape:
                view = base
            else:
                view = as_strided(base, shape=(base.shape[0] - m.width + 1, m.width),
                                  strides=(base.strides[0], base.strides[0]), writeable=False)
            self._cols.append((name, rpc, shift_w, view, col))

    def gather(self, rows: np.ndarray, skip: str | None = None) -> dict[str, np.ndarray]:
        """Every planned column (except ``skip``) at ``rows`` (int64, committed), as new arrays."""
        n = len(rows)
        chunk = {rpc: (rows >> s) if s is not None else rows // rpc for rpc, s in self._groups.items()}
        out = {}
        for name, rpc, shift_w, view, col in self._cols:
            if name == skip:
                continue
            if view is None:
                out[name] = np.empty((n, *col.shape), col.dtype)
                continue
            width = view.shape[1] if view.ndim == 2 else 1
            idx = shift_w[chunk[rpc]]
            idx += rows * width if width != 1 else rows
            got = view[idx]
            out[name] = got.reshape(n, *col.shape) if view.ndim == 2 else got
        return out

"""The sampler's gather: row ids to fresh arrays, through the store's one random-access read
(``ReplayStore.gather``, which reads the mapped segments with numpy, never HDF5)."""

from __future__ import annotations

import numpy as np


class GatherPlan:
    """Built at each commit the sampler sees; ``gather`` runs per batch."""

    def __init__(self, store, columns):
        self._store = store
        self._names = [name for name, _ in columns]

    def gather(self, rows: np.ndarray, skip: str | None = None) -> dict[str, np.ndarray]:
        """Every planned column (except ``skip``) at ``rows`` (int64, committed), as new arrays."""
        return self._store.gather(rows, [n for n in self._names if n != skip])

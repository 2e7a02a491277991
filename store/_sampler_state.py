"""Prioritized-replay priorities that outlive a run: saved in the store at each of its commits.

A prioritized ``Sampler`` on a writable store adds a ``PriorityState`` to the store's commit
hooks. At the start of every commit the store calls it and hands what it returns to ``save``,
which writes ``/sampler/<name>`` (a chunked, uncompressed dataset laid out like the columns)
and puts its chunk offsets in the commit record's ``extra``. ``load`` reads it back through the
mapping, so a reader (which must not open HDF5 while a writer lives) needs no HDF5 call either.

BEWARE: a reader that maps the priorities while the writer rewrites them at a commit may see
some values from the older commit and some from the newer one (each value is whole).
"""

from __future__ import annotations

import numpy as np

from ._format import create_column_dataset, rows_per_chunk
from ._mapped import ColumnMap
from ._schema import Column

EXTRA_KEY = "sampler_priority"
GROUP = "sampler"
PRIORITY = "priority"


class PriorityState:
    """Raw priorities indexed by leaf (``row % window``), as the store saves them.

    ``rows``: priorities are known for rows ``[max(0, rows - window), rows)``; later rows have
    ``max_priority``. ``attached`` is False once the sampler closed: the state is saved at the
    next commit (if it changed), then drops out of the store's hooks.
    """

    def __init__(self, window: int, hooks: list | None):
        self.window = int(window)
        self.raw = np.zeros(0, np.float64)
        self.max_priority = 1.0
        self.rows = 0
        self.dirty = False
        self.attached = True
        self._hooks = hooks
        if hooks is not None:
            hooks.append(self)

    def detach(self) -> None:
        self.attached = False
        if not self.dirty:
            self._unhook()

    def _unhook(self) -> None:
        if self._hooks is not None and self in self._hooks:
            self._hooks.remove(self)

    def __call__(self):
        """The store's commit hook: ``(arrays, meta)`` to save, or None when nothing changed."""
        if not self.attached:
            self._unhook()
        if not self.dirty:
            return None
        self.dirty = False
        n = min(self.window, self.rows)
        return {PRIORITY: self.raw[:n]}, self.meta()

    def meta(self) -> dict:
        return {"rows": int(self.rows), "window": self.window, "max_priority": float(self.max_priority)}


def attached_state(hooks: list) -> PriorityState | None:
    for h in hooks:
        if isinstance(h, PriorityState):
            return h
    return None


def save(f, got, extra: dict) -> None:
    """Write what a commit hook returned into ``f`` and locate it in ``extra`` (called by the store)."""
    if got is None:
        return
    arrays, meta = got
    g = f.require_group(GROUP)
    chunk_bytes = int(f.attrs["chunk_bytes"])
    located = {}
    for name, arr in arrays.items():
        col = Column(name, arr.dtype)
        d = g[name] if name in g else create_column_dataset(g, col, chunk_bytes)
        n = len(arr)
        d.resize(n, axis=0)
        d[:n] = arr
        rpc = rows_per_chunk(col, chunk_bytes)
        offsets = [int(d.id.get_chunk_info_by_coord((k * rpc,)).byte_offset) for k in range(-(-n // rpc))]
        located[name] = {"n": n, "dtype": arr.dtype.str, "rows_per_chunk": rpc, "offsets": offsets}
    extra[EXTRA_KEY] = {"meta": meta, "arrays": located}


def load(store) -> tuple[np.ndarray, dict] | None:
    """The saved raw priorities (by leaf) and their meta, read through the mapping; None if none."""
    info = store.get_extra(EXTRA_KEY)
    if not info:
        return None
    loc = info["arrays"][PRIORITY]
    col = Column(PRIORITY, np.dtype(loc["dtype"]))
    n, rpc = int(loc["n"]), int(loc["rows_per_chunk"])
    offsets = np.asarray(loc["offsets"], np.int64)
    m = ColumnMap(col, rpc, offsets)
    mf = store.mapped_file
    if n:
        mf.ensure(int(offsets[-1]) + ((n - 1) % rpc + 1) * col.dtype.itemsize)
    return m.read(mf, 0, n).astype(np.float64, copy=False), dict(info["meta"])

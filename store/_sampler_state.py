"""Prioritized-replay priorities that outlive a run: saved in the store at each of its commits.

A prioritized ``Sampler`` on a writable store adds a ``PriorityState`` to the store's commit
hooks. At the start of every commit the store calls it and hands what it returns to ``save``,
which writes it with ``store.save_arrays`` (a state file per commit that changed it) and names
the file in the commit record's ``extra``. ``load`` reads it back with ``store.load_array``.

"""

from __future__ import annotations

import numpy as np


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


def save(store, got, extra: dict) -> None:
    """Write what a commit hook returned with the store's next commit and locate it in ``extra``
    (called by the store: the arrays go to state files beside the segments)."""
    if got is None:
        return
    arrays, meta = got
    extra[EXTRA_KEY] = {"meta": meta, "files": store.save_arrays(EXTRA_KEY, arrays)}


def load(store) -> tuple[np.ndarray, dict] | None:
    """The saved raw priorities (by leaf) and their meta; None if none."""
    info = store.get_extra(EXTRA_KEY)
    if not info:
        return None
    return store.load_array(info["files"][PRIORITY]).astype(np.float64, copy=False), dict(info["meta"])

"""Copy a store into a new format-2 store: every committed row, table, checkpoint and extra."""

from __future__ import annotations

from ..read._frames import EXTRA_KEY, FrameStack
from ..read._store import ReplayStore

_BLOCK = 65536


def convert(old, new, *, retain: int | None = None) -> int:
    """Write the committed rows of the store at ``old`` (format 1 or 2) to a new store at ``new``;
    returns the transition rows copied. Row ids, actor codes and values are kept bit for bit, damaged
    ones included (the copy is evidence: its counts report codes outside the vocabulary)."""
    with ReplayStore.open(old, "r") as src:
        if src.first_row:
            raise ValueError(f"convert: {old} kept only rows from {src.first_row} on (retention); a copy would "
                             "renumber them")
        framed = src.get_extra(EXTRA_KEY)  # a frames-once store copies as one: frames and ids as stored
        with ReplayStore.create(new, src.schema, src.actors, window=src.window, metadata=src.metadata,
                                commit_every=1 << 30, commit_seconds=1e9, retain=retain,
                                chunk_bytes=src.chunk_bytes or None,
                                frames=None if framed is None else FrameStack.from_dict(framed)) as dst:
            return dst.copy_from(src, _BLOCK)

"""Copy a store into a new format-2 store: every committed row, table, checkpoint and extra."""

from __future__ import annotations

from ..format._format import TRANSITIONS
from ..read._store import ReplayStore

_BLOCK = 65536


def convert(old, new, *, retain: int | None = None) -> int:
    """Write the committed rows of the store at ``old`` (format 1 or 2) to a new store at ``new``;
    returns the transition rows copied. Row ids, actor codes and values are kept bit for bit, damaged
    ones included (the copy is evidence: its counts report codes outside the vocabulary)."""
    with ReplayStore.open(old, "r") as src:
        first = src._views[TRANSITIONS].first_row
        if first:
            raise ValueError(f"convert: {old} kept only rows from {first} on (retention); a copy would renumber them")
        dst = ReplayStore.create(new, src.schema, src.actors, window=src.window, metadata=src.metadata,
                                 commit_every=1 << 30, commit_seconds=1e9, retain=retain,
                                 chunk_bytes=src.chunk_bytes or None)
        with dst:
            for name, rows in src.tables.items():
                if name != TRANSITIONS:
                    dst.create_table(name, src.table_schema(name))
                for lo in range(0, rows, _BLOCK):
                    hi = min(rows, lo + _BLOCK)
                    # raw, not through extend(): a forensic copy keeps even values extend() would refuse
                    # (actor codes outside the vocabulary, NaN where a writer bug put it)
                    dst._tables[name].add_block(src.read_table(name, None, lo, hi), hi - lo)
                dst.commit()
            for key, value in src._extra.items():
                dst.set_extra(key, value)
            dst._new_checkpoints.extend(src.checkpoints)
            dst.commit()
        return len(src)

"""The writing half of frames once (``read/_frames.py``): ``FramesStager``, which a frames-once
writer hands its ``extend`` and ``append`` to.

The stager takes whole stacks (the schema the user declared, ``store.schema``), stages the
frames not seen yet in the ``frames`` table, then hands the block, with frame ids in place of the
stacks, to the writer's ``RowStager`` (the transitions table as stored). A frame is always staged
before the row that names it, and one commit record publishes both, so a committed row's frames
are committed too. ``StoreWriter`` holds the lock around every call and owns the commit policy.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from ..format._schema import ACTOR, Schema
from ..read._frames import FRAME, FrameEncoder, FrameStack, ids_name, physical_schemas
from ._stager import _MISSING, RowStager, block_column, block_length, check_names
from ._tablewriter import TableWriter
from ..errors import SchemaError


def framed_schemas(schema: Schema, frames: FrameStack, retain) -> tuple[Schema, Schema]:
    """What ``ReplayStore.create(..., frames=...)`` builds: the transitions table as stored and the
    frames table's schema; refuses what frames once cannot keep."""
    if not isinstance(frames, FrameStack):
        raise TypeError(f"frames must be a FrameStack (e.g. FrameStack(depth=4)), got {type(frames).__name__}")
    if not isinstance(schema, Schema):
        raise TypeError(f"schema must be a store.Schema (e.g. Schema.transition((84, 84, 4), state_dtype='uint8')), "
                        f"got {type(schema).__name__}")
    if retain is not None:
        raise SchemaError("retain=... with frames=FrameStack(...): retention deletes whole segments of transitions, "
                          "and their frames live in another table; keep every row (retain=None) for a frames-once store")
    return physical_schemas(schema, frames)


class FramesStager:
    """Stacks in, frame ids out: stages new frames in ``frames`` and the rows in ``rows``.

    ``schema``: the transitions as declared (whole stacks). ``rows``: the writer's ``RowStager``
    of the table as stored. ``frames``: the frames table's writer.
    """

    def __init__(self, spec: FrameStack, schema: Schema, rows: RowStager, frames: TableWriter):
        self.spec = spec
        self.schema = schema
        self.rows = rows
        self.frames = frames
        self.frame_col = frames.schema[FRAME]
        # ids follow the frames table's rows (staged included): the next new frame's id
        self.encoder = FrameEncoder(spec, schema, frames.rows)

    def add_block(self, columns: Mapping) -> int:
        """Stage a block of rows whose stacked columns hold whole stacks; returns its row count."""
        spec = self.spec
        n = block_length("extend", columns)
        check_names("extend", self.schema, columns, self.rows.auto, ACTOR in columns, self.rows.actors.names)
        ids = self._stage_frames("extend", {c: block_column("extend", self.schema[c], columns[c], n)
                                            for c in spec.columns}, n)
        stored = {k: v for k, v in columns.items() if k not in spec.columns}
        stored.update({ids_name(c): ids[c] for c in spec.columns})
        return self.rows.add_block(stored)

    def _stage_frames(self, where: str, stacks: dict, n: int) -> dict:
        """The frame ids of ``n`` rows of checked ``stacks``, their new frames staged in the frames
        table; the encoder is put back as it was if the frames are not kept."""
        enc = self.encoder
        enc.next_id = self.frames.rows
        saved = (enc._last, OrderedDict(enc._recent))
        try:
            ids, new = enc.encode(stacks, n)
            if len(new):
                self.frames.add_block({FRAME: block_column(where, self.frame_col, new, len(new))}, len(new))
        except BaseException:
            enc._last, enc._recent = saved
            raise
        return ids

    def add_row(self, actor, columns: dict) -> bool:
        """One row (``append``'s keywords, a dict this call may change); returns whether a commit is due.

        The stacks are checked and encoded as a one-row block, their new frames staged, and the row,
        frame ids in place of stacks, goes through the stager's one-row path (the block path cost
        ~0.45 ms a row: an agent appends a step at a time). As in ``add_block``, a row refused after
        its frames were staged leaves those frames unnamed; no row reads them."""
        spec = self.spec
        check_names("append", self.schema, columns, self.rows.auto, actor is not _MISSING, self.rows.actors.names)
        ids = self._stage_frames("append", {c: block_column("append", self.schema[c], np.asarray(columns.pop(c))[None], 1)
                                            for c in spec.columns}, 1)
        for c in spec.columns:
            columns[ids_name(c)] = ids[c][0]
        return self.rows.add_row(actor, columns)

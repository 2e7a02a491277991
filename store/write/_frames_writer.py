"""The writing half of frames once (``_frames.py``): creating such a store, and its append/extend.

The writer's own ``extend`` stores the transitions table as it is on disk (frame ids). A
frames-once writer gets, on the instance, an ``extend`` and an ``append`` that take whole stacks
(the schema the user declared, ``store.schema``), store the frames not seen yet in the ``frames``
table, then hand the ids to the writer's ``extend``: a frame is always staged before the row that
names it, and one commit record publishes both, so a committed row's frames are committed too.
"""

from __future__ import annotations

import types
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from ..read._frames import EXTRA_KEY, FRAME, FRAMES_TABLE, FrameEncoder, FrameStack, ids_name, physical_schemas
from ..format._schema import ACTOR, Schema
from ._validate import block_column, block_length, check_names
from ..errors import SchemaError

_MISSING = object()


def create_framed(path, schema: Schema, actors, frames: FrameStack, **kw):
    """``ReplayStore.create(..., frames=FrameStack(...))``: the store, its frames table, and the spec."""
    from ._writer import StoreWriter

    if not isinstance(frames, FrameStack):
        raise TypeError(f"frames must be a FrameStack (e.g. FrameStack(depth=4)), got {type(frames).__name__}")
    if not isinstance(schema, Schema):
        raise TypeError(f"schema must be a store.Schema (e.g. Schema.transition((84, 84, 4), state_dtype='uint8')), "
                        f"got {type(schema).__name__}")
    if kw.get("retain") is not None:
        raise SchemaError("retain=... with frames=FrameStack(...): retention deletes whole segments of transitions, "
                          "and their frames live in another table; keep every row (retain=None) for a frames-once store")
    stored, frame_schema = physical_schemas(schema, frames)
    seg_rows = kw.pop("segment_rows", None)  # given: both tables' segments hold this many rows (tests roll over)
    w = StoreWriter._create(path, stored, actors, kw.pop("window", 1_000_000), kw.pop("metadata", None),
                            kw.pop("commit_every", 4096), kw.pop("commit_seconds", 1.0), kw.pop("fsync", False),
                            kw.pop("retain", None), kw.pop("chunk_bytes", None), seg_rows)
    try:
        w.create_table(FRAMES_TABLE, frame_schema, seg_rows=None if seg_rows is None else int(seg_rows))
        w.set_extra(EXTRA_KEY, {**frames.to_dict(), "schema": schema.to_json()})
        w.commit()  # the reading hook (_frames.use_frames) installs the stacked append and extend
    except BaseException:
        w.close()
        raise
    return w


def install(w, spec: FrameStack, schema: Schema) -> None:
    """Give writer ``w`` the stacked ``extend`` and ``append`` (its record names a frames table)."""
    # made at the first extend: when opening, the record is read before the table writers exist
    w._frame_encoder = None
    w._frame_spec = spec
    w.extend = types.MethodType(_extend, w)
    w.append = types.MethodType(_append, w)


def _extend(self, columns: Mapping) -> int:
    """Append a block of rows, stacked columns as whole stacks (see ``StoreWriter.extend``)."""
    # the writer's lock for the whole call: the frame ids, the frames table and the swapped schema
    # below must not interleave with another thread's rows (the lock is re-entrant)
    with self._wlock:
        return _extend_locked(self, columns)


def _extend_locked(self, columns: Mapping) -> int:
    from ._writer import StoreWriter

    self._check_writable("extend")
    spec, enc = self._frame_spec, self._frame_encoder
    n = block_length("extend", columns)
    logical = self.schema
    if enc is None:
        enc = self._frame_encoder = FrameEncoder(spec, logical, self._tables[FRAMES_TABLE].rows)
    check_names("extend", logical, columns, self._auto, ACTOR in columns, self.actors.names)
    stacks = {c: block_column("extend", logical[c], columns[c], n) for c in spec.columns}
    # ids follow the frames table's staged rows; the cache is put back if the frames are not kept
    enc.next_id = self._tables[FRAMES_TABLE].rows
    saved = (enc._last, OrderedDict(enc._recent))
    try:
        ids, frames = enc.encode(stacks, n)
        self.extend_table(FRAMES_TABLE, {FRAME: frames})
    except BaseException:
        enc._last, enc._recent = saved
        raise
    stored = {k: v for k, v in columns.items() if k not in spec.columns}
    stored.update({ids_name(c): ids[c] for c in spec.columns})
    # the writer's extend checks against the schema as stored; readers only ever see the declared one
    self.schema = self._tw.schema
    try:
        return StoreWriter.extend(self, stored)
    finally:
        self.schema = logical


def _append(self, *, actor=_MISSING, **columns) -> None:
    """Append one row (see ``StoreWriter.append``); stacked columns are whole stacks."""
    row = {k: np.asarray(v)[None] for k, v in columns.items()}
    if actor is not _MISSING:
        row[ACTOR] = [actor]
    _extend(self, row)


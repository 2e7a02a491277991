"""File-format constants (format version 1) and the HDF5 open/layout helpers.

Layout of one run file::

    /                      attrs: format, format_version, uuid, schema, actors, window,
                           created, metadata, chunk_bytes, committed, actor_counts, ...
    /transitions/<column>  one chunked, resizable, uncompressed dataset per column
    /tables/<name>/<col>   other append-only tables (training telemetry), same layout
    /index/actor_prefix/counts   actor counts of rows [0, k * PREFIX_EVERY), one row per k

Beside it, ``<file>.commit`` is the commit record (see ``_commit.py``): what readers trust.
"""

from __future__ import annotations

import h5py
import numpy as np

from ._schema import Column

FORMAT_NAME = "replaystore"
FORMAT_VERSION = 1

TRANSITIONS = "transitions"
ACTOR_PREFIX = "actor_prefix"
PREFIX_EVERY = 4096  # granularity of the actor prefix-count index, in transition rows
PREFIX_COLUMN = "counts"

MIN_CHUNK_BYTES = 4096
MAX_CHUNK_BYTES = 2 * 1024 * 1024  # 2 MiB chunks on 2 MiB boundaries gather fastest (DESIGN.md)


def prefix_schema(n_actors: int):
    """The actor prefix-count index: row k holds the per-actor counts of rows [0, k * PREFIX_EVERY)."""
    from ._schema import Schema

    return Schema((Column(PREFIX_COLUMN, np.dtype("int64"), (n_actors,)),))


def group_path(table: str) -> str:
    if table == TRANSITIONS:
        return "/transitions"
    if table == ACTOR_PREFIX:
        return "/index/actor_prefix"
    return f"/tables/{table}"


def choose_chunk_bytes(columns: list[Column], window: int) -> int:
    """A power of two: big enough for one row of the widest column and for the window's rows,
    capped at 2 MiB so small stores stay small."""
    widest = max((c.row_bytes for c in columns), default=1)
    want = max(MIN_CHUNK_BYTES, min(MAX_CHUNK_BYTES, widest * max(1, int(window))))
    want = max(want, widest)
    return 1 << int(np.ceil(np.log2(want)))


def rows_per_chunk(column: Column, chunk_bytes: int) -> int:
    return max(1, chunk_bytes // max(1, column.row_bytes))


def open_h5(path, mode: str, chunk_bytes: int) -> h5py.File:
    """Open with the alignment that puts every chunk on a ``chunk_bytes`` boundary.

    Alignment is an access property, not stored in the file: every writer must pass it again.
    ``rdcc_nbytes=0`` sends chunk writes straight to the file (no chunk cache to rewrite on flush).
    """
    return h5py.File(
        path,
        mode,
        # every chunk holds at least chunk_bytes / 2 (rows_per_chunk * row_bytes > chunk_bytes - row_bytes):
        # a threshold above that let 4 KiB stores' 4080-byte chunks land off even their dtype's itemsize
        alignment_threshold=chunk_bytes // 2,
        alignment_interval=chunk_bytes,
        rdcc_nbytes=0,
    )


def create_column_dataset(group: h5py.Group, column: Column, chunk_bytes: int):
    """Chunked, resizable, uncompressed: a chunk's bytes are the raw rows, so they can be mapped."""
    if column.row_bytes == 0:
        return None  # width-0 columns (e.g. no continuous action) live only in the schema
    rpc = rows_per_chunk(column, chunk_bytes)
    return group.create_dataset(
        column.name,
        shape=(0, *column.shape),
        maxshape=(None, *column.shape),
        chunks=(rpc, *column.shape),
        dtype=column.dtype,
        # rows past the committed count are never read, so HDF5 need not pre-fill new chunks
        fill_time="never",
    )

"""File-format constants and sizing rules (format version 2; version 1 is read-only).

A format-2 store at ``PATH`` is three things side by side::

    PATH            the manifest: an HDF5 file written whole and renamed into place, never modified
                    in place. Root attributes: format, format_version, uuid, schema, actors,
                    window, retain, created, metadata, chunk_bytes, tables, session, closed_record.
                    /transitions/<col> and /tables/<name>/<col> are virtual datasets over the
                    segments, so stock h5py reads (and edits) every row through this one file.
    PATH.d/         the segments: <table>-<index>.h5, each an HDF5 file whose datasets have a fixed
                    row count and contiguous space allocated at creation; rows are written into
                    that space with pwrite at known offsets, so no append or commit touches HDF5
                    metadata. <table>-<index>.sums beside a full segment: its checksums.
    PATH.commit     the commit record (``_record.py``): JSON in two checksummed slots, each commit
                    writing the one not in force; the only state that changes. Readers trust it;
                    a stale one is caught by its seq against the manifest's last clean close.
"""

from __future__ import annotations

import os

import numpy as np

from ._schema import Column, Schema

FORMAT_NAME = "replaystore"
FORMAT_VERSION = 2
READ_ONLY_VERSIONS = (1,)  # opened for reading; `replaystore convert` writes them as version 2

TRANSITIONS = "transitions"
ACTOR_PREFIX = "actor_prefix"  # format 1's actor prefix-count index
PREFIX_EVERY = 4096

SEGMENT_SUFFIX = ".d"
SEGMENT_FORMAT = "replaystore-segment"
# 256 MiB segments: creating one (an HDF5 file) costs a few ms, a few per GB written, and a 1M-row
# window of 1 KB rows spans 4 to 5 of them, so a batch gather groups its rows into few segments;
# retention drops whole segments, so they are also capped at a quarter of the window (segment_rows).
SEGMENT_BYTES = 256 * 1024 * 1024
MIN_SEGMENT_ROWS = 1024
# A segment's checksum state and its file are sized at creation: 2**40 rows asked for tens of TiB
# and a list of 2**31 checksums, and died in h5py. 16 GiB is 64 default segments.
MAX_SEGMENT_BYTES = 64 * SEGMENT_BYTES
MIN_CHUNK_BYTES = 4096
MAX_CHUNK_BYTES = 2 * 1024 * 1024  # 2 MiB: large columns are aligned to 2 MiB for gather speed (DESIGN.md)
N_CODES = 256  # actor counts are kept for every uint8 code, so damaged codes are counted, not lost


def segment_dir(path) -> str:
    return os.fspath(path) + SEGMENT_SUFFIX


def store_files(path) -> list[str]:
    """Every path that makes up the store at ``path``: the HDF5 file, its commit record, its
    segment folder and a prioritized sampler's priority file (whether or not each exists yet).
    To move, copy or remove a store, handle all of them together."""
    p = os.fspath(path)
    return [p, p + ".commit", segment_dir(p), p + ".priorities"]


def segment_name(table: str, index: int) -> str:
    return f"{table}-{index:06d}.h5"


def compact_name(table: str, index: int) -> str:
    return f"{table}-{index:06d}.z.h5"


def sums_name(table: str, index: int) -> str:
    return f"{table}-{index:06d}.sums"


def group_path(table: str) -> str:
    if table == TRANSITIONS:
        return "/transitions"
    if table == ACTOR_PREFIX:
        return "/index/actor_prefix"
    return f"/tables/{table}"


def _pow2_floor(n: int) -> int:
    return 1 << (max(1, int(n)).bit_length() - 1)


def segment_rows(schema: Schema, window: int | None) -> int:
    """Rows per segment: a power of two (row -> segment is a shift), at most SEGMENT_BYTES, at most a
    quarter of the window (so ``retain=window`` keeps at most 1.25 windows), at least 1024."""
    row = max(1, sum(c.row_bytes for c in schema))
    rows = _pow2_floor(SEGMENT_BYTES // row)
    if window is not None:
        rows = min(rows, _pow2_floor(max(1, window // 4)))
    return max(MIN_SEGMENT_ROWS, rows)


def choose_chunk_bytes(columns: list[Column], window: int) -> int:
    """The checksum block (and, in format 1, the HDF5 chunk) size: a power of two, big enough for
    one row of the widest column, capped at 2 MiB."""
    widest = max((c.row_bytes for c in columns), default=1)
    want = max(MIN_CHUNK_BYTES, min(MAX_CHUNK_BYTES, widest * max(1, int(window))))
    want = max(want, widest)
    return 1 << int(np.ceil(np.log2(want)))


def check_rows(column: Column, chunk_bytes: int, seg_rows: int) -> int:
    """Rows per checksummed block of ``column`` (about ``chunk_bytes``, within one segment)."""
    return max(1, min(seg_rows, chunk_bytes // max(1, column.row_bytes)))


def rows_per_chunk(column: Column, chunk_bytes: int) -> int:
    return max(1, chunk_bytes // max(1, column.row_bytes))

"""Segments: fixed-size HDF5 files whose rows are written by ``pwrite`` and read by ``mmap``.

A segment is created whole (every dataset contiguous, its space allocated at creation, nothing
pre-filled) under a temporary name and renamed into place, so a kill during creation leaves a
stray ``.tmp``, never a half-made segment. After that its HDF5 metadata is never written again:
rows go to ``offset + row * row_bytes`` of each column's dataset. Stock h5py reads every row.

Each segment also holds 32 identity bytes (the store's uuid, the table and the segment index),
so a reader can tell, from the mapped bytes alone, that a file is the segment it expects.
"""

from __future__ import annotations

import mmap
import os
import struct
import uuid as _uuid
import zlib

import h5py
import numpy as np

from ._format import SEGMENT_FORMAT, FORMAT_VERSION, segment_name
from ..files._fileio import layer, replacing
from ..files._h5image import SparseImage, write_image
from ..files._mapped import release_pages
from ..files._watch import GATE
from ._schema import Schema
from ..errors import DamagedStoreError, TruncatedStoreError

IDENTITY = "identity"
_MAGIC = b"rsSEG002"
BIG_ALIGN = 2 * 1024 * 1024


def identity_bytes(store_uuid: str, table: str, index: int) -> bytes:
    return _MAGIC + _uuid.UUID(store_uuid).bytes + struct.pack("<II", zlib.crc32(table.encode()), index)


def create_segment(folder: str, table: str, index: int, schema: Schema, rows: int, store_uuid: str,
                   fsync: bool) -> dict:
    """Create segment ``index`` of ``table``; returns its layout (column offsets, identity offset, bytes)."""
    final = os.path.join(folder, segment_name(table, index))
    tmp = final + ".tmp"
    image, layout = _image(table, index, schema, rows, store_uuid)
    with replacing(tmp, final, fsync, f"creating segment {final}"):
        write_image(tmp, image)
    return layout


def _build(table: str, index: int, first_row: int, schema: Schema, rows: int, store_uuid: str,
           ident_index: int | None = None) -> tuple:
    """A segment's HDF5 file built in memory by h5py: ``(SparseImage, layout)``."""
    stored = [c for c in schema if c.row_bytes]
    # Columns of 1 MiB or more start on 2 MiB boundaries (huge-page gathers, DESIGN.md); the rest on
    # 4 KiB pages. Alignment holes are sparse: they cost file length, not disk blocks.
    big = any(rows * c.row_bytes >= BIG_ALIGN // 2 for c in stored)
    image = SparseImage()
    with h5py.File(image, "w", alignment_threshold=1, alignment_interval=BIG_ALIGN if big else 4096) as f:
        a = f.attrs
        a["format"] = SEGMENT_FORMAT
        a["format_version"] = FORMAT_VERSION
        a["uuid"] = store_uuid
        a["table"] = table
        a["index"] = index
        a["first_row"] = first_row
        a["rows"] = rows
        a["schema"] = schema.to_json()
        a["note"] = ("rows past the store's committed count (its .commit record) are unwritten space; "
                     "read them through replaystore or only up to that count")
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        offsets = {}
        for c in stored:
            d = f.create_dataset(c.name, shape=(rows, *c.shape), dtype=c.dtype, dcpl=dcpl)
            offsets[c.name] = int(d.id.get_offset())
        ident = f.create_dataset(IDENTITY, data=np.frombuffer(
            identity_bytes(store_uuid, table, index if ident_index is None else ident_index), np.uint8))
        ident_off = int(ident.id.get_offset())
    return image, {"offsets": offsets, "identity": ident_off, "file_bytes": image.size}


# Segments of one table differ only in their index: the ``index`` and ``first_row`` attributes and
# the identity bytes. h5py built each anew in 2-7 ms (a 144 MB segment of 1 KB rows; a roll in a
# burst of four 8192-row extends added a third to it); a template, built once per table from two
# segments and checked to differ in nothing else, is patched in ~0.1 ms.
_TEMPLATES: dict = {}
_PROBES = (0x3A5A7A1A2A4A6A0B, 0x4B6B0C1C3C5C7C2D)  # index values no real segment has, 8 distinct bytes each


def _image(table: str, index: int, schema: Schema, rows: int, store_uuid: str) -> tuple:
    key = (store_uuid, table, rows, schema.to_json())
    t = _TEMPLATES.get(key)
    if t is None:
        if len(_TEMPLATES) > 64:
            _TEMPLATES.clear()
        t = _TEMPLATES[key] = _template(table, schema, rows, store_uuid)
    if t is False:  # the two builds differed elsewhere: build each segment with h5py
        return _build(table, index, index * rows, schema, rows, store_uuid)
    pieces, size, sites, layout = t
    patched = {i: bytearray(pieces[i][1]) for i in {i for i, _, _ in sites}}
    values = {"index": index, "first_row": index * rows}
    for i, at, what in sites:
        patched[i][at:at + 8] = struct.pack("<q", values[what])
    ident = identity_bytes(store_uuid, table, index)
    image = SparseImage()
    image.size = size
    for i, (off, b) in enumerate(pieces):
        b = patched.get(i, b)
        lo, hi = max(off, layout["identity"]), min(off + len(b), layout["identity"] + len(ident))
        if lo < hi:
            b = bytearray(b)
            b[lo - off:hi - off] = ident[lo - layout["identity"]:hi - layout["identity"]]
        image.pieces.append((off, bytes(b)))
    return image, dict(layout, offsets=dict(layout["offsets"]))


def _template(table: str, schema: Schema, rows: int, store_uuid: str):
    """``(pieces, size, sites, layout)`` from two builds with probe indexes, or False when they
    differ anywhere but at the probes' values and the identity bytes."""
    a, la = _build(table, _PROBES[0], _PROBES[0] ^ 1, schema, rows, store_uuid, 1)
    b, lb = _build(table, _PROBES[1], _PROBES[1] ^ 1, schema, rows, store_uuid, 2)
    if la != lb or a.size != b.size or [(o, len(x)) for o, x in a.pieces] != [(o, len(x)) for o, x in b.pieces]:
        return False
    sites, ident = [], (la["identity"], la["identity"] + 32)
    for i, ((off, x), (_, y)) in enumerate(zip(a.pieces, b.pieces)):
        covered = np.zeros(len(x), bool)
        for what, va, vb in (("index", _PROBES[0], _PROBES[1]), ("first_row", _PROBES[0] ^ 1, _PROBES[1] ^ 1)):
            pa, pb = struct.pack("<q", va), struct.pack("<q", vb)
            at = x.find(pa)
            while at >= 0:
                if y[at:at + 8] != pb:
                    return False
                sites.append((i, at, what))
                covered[at:at + 8] = True
                at = x.find(pa, at + 1)
        lo, hi = max(off, ident[0]), min(off + len(x), ident[1])
        if lo < hi:
            covered[lo - off:hi - off] = True
        differ = np.frombuffer(x, np.uint8) != np.frombuffer(y, np.uint8)
        if (differ & ~covered).any():
            return False
    if sorted({w for _, _, w in sites}) != ["first_row", "index"]:
        return False
    return a.pieces, a.size, sites, la


class SegmentMap:
    """A read-only mapping of one segment file, checked before any page of it is touched."""

    # wd: its watch in files/_watch.GATE once sealed (None: none); seen: the gate's stamp taken
    # before its last full check (a check is skipped while the stamp is unchanged)
    __slots__ = ("path", "fd", "mm", "ino", "size", "arrays", "sealed_mtime", "wd", "seen")

    def __init__(self, path: str, expect_identity: bytes, identity_off: int, file_bytes: int,
                 columns: dict[str, tuple[int, object]]):
        self.path = path
        try:  # not through a symlink: a store never reads a file outside it (DESIGN.md contract 9)
            fd = layer().open_read(path)
        except FileNotFoundError:
            raise TruncatedStoreError(f"segment {path} is missing: the store's commit record lists it. Restore "
                                      "the store's .d folder from a backup (all of it)") from None
        except OSError as e:  # ELOOP: a symlink
            raise DamagedStoreError(f"segment {path} is not a regular file ({e.strerror}): a store keeps only "
                                    "regular files in its folder; replace the link by the file") from None
        try:
            st = os.fstat(fd)
            import stat as _stat

            if not _stat.S_ISREG(st.st_mode):
                raise DamagedStoreError(f"segment {path} is not a regular file")
            if st.st_size < file_bytes:
                raise TruncatedStoreError(f"segment {path} is {st.st_size} bytes, shorter than the {file_bytes} it "
                                          "was created with: it was truncated or replaced")
            mm = mmap.mmap(fd, st.st_size, access=mmap.ACCESS_READ)
        except BaseException:
            layer().close(fd)
            raise
        self.fd, self.mm, self.ino, self.size = fd, mm, st.st_ino, st.st_size
        self.sealed_mtime = None
        self.wd = self.seen = None
        got = mm[identity_off:identity_off + len(expect_identity)]
        if got != expect_identity:
            self.close()
            raise DamagedStoreError(f"segment {path} belongs to another store or another place in this one "
                                    "(its identity bytes differ): was a file copied over it?")
        self.arrays = {}
        for name, (offset, (dtype, shape, rows)) in columns.items():
            count = rows * int(np.prod(shape, dtype=np.int64))
            self.arrays[name] = np.frombuffer(mm, dtype=dtype, count=count, offset=offset).reshape(rows, *shape)

    def check(self) -> bool:
        """Refuse a file that shrank under the mapping (touching its pages would be SIGBUS); returns
        False when a segment that should no longer change was modified (the caller re-verifies it)."""
        st = os.fstat(self.fd)
        if st.st_size < self.size:
            raise TruncatedStoreError(f"segment {self.path} shrank from {self.size} to {st.st_size} bytes while "
                                      "mapped: it was truncated or copied over. Reopen the store")
        return self.sealed_mtime is None or st.st_mtime_ns == self.sealed_mtime

    def release_pages(self) -> None:
        """Drop this process's mapped pages of the segment (``files/_mapped.release_pages``)."""
        release_pages(self.mm)

    def seal(self) -> None:
        """From now on a change to the file is suspect: watched (before the fstat, so a change
        after it is an event), its mtime kept."""
        self.wd = GATE.watch(self.fd)
        self.sealed_mtime = os.fstat(self.fd).st_mtime_ns

    def close(self) -> None:
        self.arrays = {}
        self.mm = None  # unmapped by GC once no array refers to it
        GATE.unwatch(self.wd)
        self.wd = self.seen = None
        if self.fd >= 0:
            layer().close(self.fd)
            self.fd = -1


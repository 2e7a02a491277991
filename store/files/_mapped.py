"""Memory-mapped views of a format-1 file's committed chunks: reads and gathers with no HDF5 call.

An uncompressed chunk is the raw bytes of its rows, so row ``r`` of a column lives at
``offset[r // rows_per_chunk] + (r % rows_per_chunk) * row_bytes``. A gather turns row ids
into element offsets and indexes a 2-D strided view of the whole mapping in one numpy call.
"""

from __future__ import annotations

import math
import mmap
import os
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import TruncatedStoreError

if TYPE_CHECKING:  # the format room sits above this one: a name for annotations only
    from ..format._schema import Column


class MappedFile:
    """A read-only mapping of the store file that grows (remaps) when commits need more bytes."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._mm: mmap.mmap | None = None
        self._length = 0
        self._views: dict = {}

    def ensure(self, needed: int) -> None:
        if needed <= self._length:
            return
        size = os.path.getsize(self.path)
        if size < needed:
            raise TruncatedStoreError(
                f"{self.path} is {size} bytes but its commit record places committed rows up to byte "
                f"{needed}: the file was truncated or only partly copied. Copy the whole file again."
            )
        with open(self.path, "rb") as f:
            mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
        # No MADV_RANDOM: it turns read-ahead off, and a sampler touches the whole window anyway
        # (measured: a cold 1M-row store warmed 11x slower with it, and stayed in 4 KiB pages).
        # Old views keep the old mapping alive for as long as a caller holds them.
        self._mm, self._length, self._views = mm, size, {}

    def check(self) -> None:
        """Refuse a file that shrank under the mapping (touching its pages would be SIGBUS)."""
        if self._length and os.path.getsize(self.path) < self._length:
            raise TruncatedStoreError(f"{self.path} shrank while mapped (now {os.path.getsize(self.path)} bytes, "
                                      f"mapped {self._length}): it was truncated or copied over. Reopen the store")

    def elements(self, dtype: np.dtype) -> np.ndarray:
        """The whole mapping as a 1-D array of ``dtype`` (trailing bytes that do not fill one item dropped)."""
        v = self._views.get(dtype)
        if v is None:
            n = self._length // dtype.itemsize
            v = np.frombuffer(self._mm, dtype=dtype, count=n) if n else np.empty(0, dtype)
            self._views[dtype] = v
        return v

    def close(self) -> None:
        self._views = {}
        self._mm = None  # closed by GC once no view refers to it
        self._length = 0


class ColumnMap:
    """Where one column's committed rows lie in the file."""

    __slots__ = ("column", "rpc", "width", "chunk_elem", "row_shape", "_shift")

    def __init__(self, column: Column, rows_per_chunk: int, offsets: np.ndarray):
        self.column = column
        self.rpc = int(rows_per_chunk)
        self.width = int(np.prod(column.shape, dtype=np.int64))
        self.row_shape = column.shape
        isz = column.dtype.itemsize
        if len(offsets) and np.any(offsets % isz):
            raise TruncatedStoreError(f"column {column.name!r}: chunk offsets are not aligned to its dtype")
        self.chunk_elem = (offsets // isz).astype(np.int64)
        # The store's rows per chunk are powers of two: a shift and a mask then take half the
        # time of np.divmod (measured: 15 vs 29 us for 8192 rows, paid once per gathered column).
        self._shift = self.rpc.bit_length() - 1 if self.rpc & (self.rpc - 1) == 0 else None

    def element_index(self, rows: np.ndarray) -> np.ndarray:
        if self._shift is None:
            q, r = np.divmod(rows, self.rpc)
            return self.chunk_elem[q] + r * self.width
        idx = self.chunk_elem[rows >> self._shift]
        idx += (rows & (self.rpc - 1)) * self.width
        return idx

    def gather(self, mf: MappedFile, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (int64, all committed) as a new array of shape ``(len(rows), *row_shape)``.

        No ``out=``: ``np.take`` makes its input contiguous first, and the input here is a view of
        the whole mapping whose rows overlap, so it copied ``width`` times the file (13 GB RSS
        seen). Fancy indexing reads the view in place.
        """
        col = self.column
        n = len(rows)
        if self.width == 0:
            return np.empty((n, *self.row_shape), col.dtype)
        base = mf.elements(col.dtype)
        idx = self.element_index(rows)
        if self.width == 1 and not self.row_shape:
            return np.take(base, idx)  # base is contiguous: take reads it in place, faster than base[idx]
        rows2d = as_strided(base, shape=(base.shape[0] - self.width + 1, self.width),
                            strides=(base.strides[0], base.strides[0]), writeable=False)
        return rows2d[idx].reshape(n, *self.row_shape)

    def read(self, mf: MappedFile, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` copied out chunk by chunk."""
        col = self.column
        out = np.empty((stop - start, *self.row_shape), col.dtype)
        if self.width == 0 or stop <= start:
            return out
        base = mf.elements(col.dtype)
        flat = out.reshape(stop - start, self.width)
        r = start
        while r < stop:
            c, o = divmod(r, self.rpc)
            take = min(stop - r, self.rpc - o)
            e = int(self.chunk_elem[c]) + o * self.width
            flat[r - start:r - start + take] = base[e:e + take * self.width].reshape(take, self.width)
            r += take
        return out


# ---------------------------------------------------------------------------------------------
# One address range per column across segment files

_HUGE = 2 << 20  # a 2 MiB page: a column's range starts at its file offset modulo this
_MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)  # Linux's value; Python < 3.13 lacks the name
_MAP_FIXED = getattr(mmap, "MAP_FIXED", 0x10)
# Address space (not memory: nothing is reserved in RAM or swap) one table's spans may take: 2 MiB
# gaps multiply a wide column's range by up to 16, and slots are made for twice the segments held.
# x86-64 gives a process 128 TiB.
_MAX_RESERVE = 16 << 40
_libc_mmap = None


def _mmap_call():
    """libc's mmap (Python's mmap module cannot place a mapping at an address), or None off Linux."""
    global _libc_mmap
    if _libc_mmap is None:
        import ctypes
        import sys

        if not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_void_p) != 8:
            _libc_mmap = False
        else:
            fn = ctypes.CDLL(None, use_errno=True).mmap
            fn.restype = ctypes.c_void_p
            fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
            _libc_mmap = fn
    return _libc_mmap or None


def release_pages(mm) -> None:
    """Drop this process's pages of the mapping ``mm`` (``MADV_DONTNEED``): clean file pages that
    count in its RSS while mapped; touched again, they come back from the page cache."""
    if mm is not None and hasattr(mmap, "MADV_DONTNEED"):
        try:
            mm.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):  # closed under us
            pass


class SegmentSpans:
    """Each column of a segmented table in one address range, segment ``k``'s rows at row
    ``(k - first) * seg_rows``, so a batch over several segments is one ``take`` per column.

    A 32-row batch of 28 KB image rows over 2 segments made 20 take calls (one per column and
    segment) and ran 146-165 us against 121-135 us in RAM; one address range per column ran
    128-140 us (BENCHMARKS.md, issue 17, branch batch32), and the per-segment calls grow with
    the store (at 100k rows a batch touches ~18 segments).

    The range is reserved once (anonymous, PROT_NONE, no swap reserved) and owned by a Python
    ``mmap`` object, so its lifetime is a mapping's: arrays taken from ``arrays`` keep it mapped,
    and it is unmapped (with every segment placed in it) when the last of them goes. A slot is
    only ever filled, never replaced or emptied, while the object lives: a reader in another
    thread can never lose pages under a copy. A table that must drop a segment makes a new one.
    Needs each column's bytes in a segment file to start on a page and fill whole pages
    (``usable``); Linux only.
    """

    def __init__(self, columns: dict, seg_rows: int, first: int, slots: int, gaps: bool = True):
        """``gaps``: 2 MiB-congruent slots for wide columns (below); without, slots end to end.
        ValueError if the range would exceed ``_MAX_RESERVE`` (make it without gaps, or not at all)."""
        self.first, self.slots, self.seg_rows = int(first), int(slots), int(seg_rows)
        shift = self.seg_rows.bit_length() - 1
        layout, at = {}, 0
        for name, (offset, (dtype, shape, _)) in columns.items():
            dtype = np.dtype(dtype)
            rb = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            nb = self.seg_rows * rb
            stride = self.seg_rows
            if gaps and nb >= _HUGE:
                # Slots a whole number of 2 MiB pages apart, each at its file offset modulo 2 MiB, so
                # the kernel can map the page cache's 2 MiB folios with one entry: with slots packed
                # end to end a first pass over 28 KB rows took 27 page faults a 32-row batch against
                # 5 through each segment's own mapping. The rows per slot then exceed the rows per
                # segment; the gap between is never touched.
                huge_rows = _HUGE // math.gcd(rb, _HUGE)
                if huge_rows * rb <= 16 * nb or huge_rows <= self.seg_rows:
                    stride = max(self.seg_rows, huge_rows)
            at = -(-at // _HUGE) * _HUGE + offset % _HUGE
            layout[name] = (at, nb, stride, offset, dtype, tuple(shape), rb)
            at += (self.slots - 1) * stride * rb + nb
        total = -(-at // _HUGE) * _HUGE + _HUGE  # room to move the base onto a 2 MiB boundary
        if total > _MAX_RESERVE:
            raise ValueError(f"spans of {total} bytes of address space: more than {_MAX_RESERVE}")
        self._mm = mmap.mmap(-1, total, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE, prot=0)
        addr = np.frombuffer(self._mm, np.uint8).ctypes.data
        lift = -addr % _HUGE
        self._where = {}
        self.arrays = {}
        self.stride = {}  # column -> rows from one slot to the next
        for name, (start, nb, stride, offset, dtype, shape, rb) in layout.items():
            start += lift
            rows = (self.slots - 1) * stride + self.seg_rows
            self.arrays[name] = np.frombuffer(self._mm, dtype, count=rows * rb // dtype.itemsize,
                                              offset=start).reshape(rows, *shape)
            self._where[name] = (addr + start, nb, stride * rb, offset)
            self.stride[name] = stride
        self._shift = shift
        self.held: list = [None] * self.slots  # the segment map placed in each slot

    def index(self, rows: np.ndarray, stride: int) -> np.ndarray:
        """Where rows (store row ids, in slots placed) lie in arrays whose slots are ``stride`` rows apart."""
        if stride == self.seg_rows:
            return rows - self.first * stride if self.first else rows
        idx = rows >> self._shift
        idx *= stride - self.seg_rows
        idx += rows
        if self.first:
            idx -= self.first * stride
        return idx

    @staticmethod
    def usable(columns: dict, seg_rows: int) -> bool:
        """Whether every column's bytes in a segment file start on a page and fill whole pages."""
        if _mmap_call() is None:
            return False
        page = mmap.PAGESIZE
        for offset, (dtype, shape, _) in columns.values():
            nb = int(seg_rows) * int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            if offset % page or nb % page:
                return False
        return True

    def holds(self, k: int) -> bool:
        return self.first <= k < self.first + self.slots

    def place(self, k: int, fd: int) -> None:
        """Map segment ``k``'s columns (the open file ``fd``) into their slots; OSError if mmap fails."""
        fn = _mmap_call()
        i = k - self.first
        for addr, nb, step, offset in self._where.values():
            at = addr + i * step
            got = fn(at, nb, mmap.PROT_READ, mmap.MAP_SHARED | _MAP_FIXED, fd, offset)
            if got != at:
                import ctypes

                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))

    def release_pages(self) -> None:
        """Drop this process's mapped pages of every placed segment (``ReplayStore.release_pages``)."""
        release_pages(self._mm)

    def close(self) -> None:
        """Drop this object's hold: the range is unmapped once no array taken from it remains."""
        self.arrays = {}
        self.held = [None] * self.slots
        self._mm = None

"""Memory-mapped views of a format-1 file's committed chunks: reads and gathers with no HDF5 call.

An uncompressed chunk is the raw bytes of its rows, so row ``r`` of a column lives at
``offset[r // rows_per_chunk] + (r % rows_per_chunk) * row_bytes``. A gather turns row ids
into element offsets and indexes a 2-D strided view of the whole mapping in one numpy call.
"""

from __future__ import annotations

import mmap
import os

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..format._schema import Column
from ..errors import TruncatedStoreError


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

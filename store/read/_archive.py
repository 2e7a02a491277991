"""Reading compacted segments: only the chunks a read, gather or batch touches are decompressed.

A ``CompactSegment`` stands where a raw segment's mapping would (``SegmentedTable`` calls the
same ``take``, slicing and ``len`` on its columns). Each column knows where its chunks lie
(``chunk_iter`` once, at open; every chunk checked to lie inside the file) and decompresses a
chunk from the mapped file bytes into a process-wide LRU cache with a bytes budget
(``archive_cache_bytes``), so memory does not grow with the archive and no HDF5 call is made per
batch (contract 5). ``gzip``/``lzf`` segments (older stores) decompress a chunk through HDF5's
filter instead, into the same cache.
"""

from __future__ import annotations

import mmap
import os
import stat
import threading
from collections import OrderedDict

import h5py
import numpy as np

from ..format._codec import BLOSC, BLOSC_FILTER, check_codec, decompress_into
from ..format._segment import IDENTITY
from ..files._untrusted import local_dataset
from ..errors import DamagedStoreError

DEFAULT_CACHE_BYTES = 128 << 20
# How a blosc chunk's bytes are fetched: "mapped" (offsets from chunk_iter, bytes from the mapped
# file), "direct" (h5py read_direct_chunk per chunk) or "h5py" (a chunk-aligned slice through
# hdf5plugin's filter). benchmarks/bench_archive.py measures the three; "mapped" was fastest.
CHUNK_READ = "mapped"


class ChunkCache:
    """Decompressed chunks, least recently used evicted first, at most ``budget`` bytes in all."""

    def __init__(self, budget: int):
        self.budget = budget
        self.used = 0
        self._lru: OrderedDict = OrderedDict()
        self._lock = threading.Lock()  # sampler threads and a reader may share a segment

    def get(self, key):
        # No lock: each OrderedDict call is atomic under the GIL, and a chunk evicted by another
        # thread between the two is a miss (decompressed again), never a wrong chunk. (The lock
        # cost ~1 us a chunk; a 32-row frames-once batch looks up ~110.)
        try:
            self._lru.move_to_end(key)
            return self._lru[key]
        except KeyError:
            return None

    def put(self, key, chunk: np.ndarray) -> None:
        with self._lock:
            if key in self._lru:
                return
            self._lru[key] = chunk
            self.used += chunk.nbytes
            while self.used > self.budget and len(self._lru) > 1:
                self.used -= self._lru.popitem(last=False)[1].nbytes

    def drop(self, owner) -> None:
        with self._lock:
            for key in [k for k in self._lru if k[0] is owner]:
                self.used -= self._lru.pop(key).nbytes


_CACHE = ChunkCache(DEFAULT_CACHE_BYTES)


def archive_cache_bytes(budget: int | None = None) -> int:
    """The bytes of decompressed chunks of compacted segments kept in memory, for all stores of
    this process (default 128 MiB); with ``budget``, set it first (a positive int of bytes)."""
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
            raise ValueError(f"archive_cache_bytes({budget!r}): expected a positive number of bytes, e.g. 256 << 20")
        with _CACHE._lock:
            _CACHE.budget = budget
        _CACHE.put(("resize",), np.empty(0, np.uint8))  # evicts down to the new budget
        with _CACHE._lock:
            _CACHE._lru.pop(("resize",), None)
    return _CACHE.budget


class ArchiveColumn:
    """One column of a compacted segment, read chunk by chunk (``take``, slices, ``len``)."""

    def __init__(self, owner, name: str, dset: h5py.Dataset, rows: int, blosc: bool, mapped, path: str):
        self.owner, self.name, self.path = owner, name, path
        self.shape, self.dtype = dset.shape, dset.dtype
        self.rows = rows
        self.rpc = dset.chunks[0]
        self.n_chunks = -(-rows // self.rpc)
        self._dset, self._blosc, self._map = dset, blosc, mapped
        self._read = CHUNK_READ if blosc else "h5py"  # fixed at open: "mapped" needs its chunk index
        self._where = None
        if self._read == "mapped":
            self._where = self._index(dset, len(mapped) if mapped is not None else 0)
            self._dset = None  # its file is closed once every column is indexed

    def _index(self, dset, size: int) -> list:
        """(offset, length) of each chunk, checked: every chunk present, unfiltered by nothing, inside the file."""
        # (offset, length) per chunk as one int64 array: 16 bytes a chunk, so the index of a large
        # archive stays ~0.1% of its compressed size
        where = np.full((self.n_chunks, 2), -1, np.int64)
        inner = dset.shape[1:]

        def one(info):
            j = info.chunk_offset[0] // self.rpc
            if info.chunk_offset[1:] != (0,) * len(inner) or info.chunk_offset[0] % self.rpc or j >= self.n_chunks \
                    or info.filter_mask != 0 or info.byte_offset + info.size > size:
                raise DamagedStoreError(f"{self.path}: column {self.name!r} has a chunk at {info.chunk_offset} "
                                        f"({info.size} bytes at {info.byte_offset}) that is not one compact wrote: the "
                                        "file is damaged or hostile")
            where[j] = (info.byte_offset, info.size)

        dset.id.chunk_iter(one)
        if (where[:, 0] < 0).any():
            raise DamagedStoreError(f"{self.path}: column {self.name!r} lacks chunk {int(np.argmax(where[:, 0] < 0))}: "
                                    "the file is damaged or was cut short")
        return where

    def __len__(self) -> int:
        return self.rows

    def chunk(self, j: int) -> np.ndarray:
        """Chunk ``j``'s rows, decompressed (from the cache when it holds them)."""
        key = (self.owner, self.name, j)
        got = _CACHE.get(key)
        if got is not None:
            return got
        if not 0 <= j < self.n_chunks:
            raise IndexError(f"{self.path}: chunk {j} of column {self.name!r} is outside its {self.n_chunks} chunks")
        lo = j * self.rpc
        n = min(self.rpc, self.rows - lo)
        out = np.empty((self.rpc, *self.shape[1:]), self.dtype)
        def where():
            return f"{self.path}, column {self.name!r}, chunk {j}"

        if self._read == "h5py":
            self._dset.read_direct(out, np.s_[lo:lo + n], np.s_[:n])
        elif self._read == "mapped":
            off, size = self._where[j].tolist()
            decompress_into(memoryview(self._map)[off:off + size], out, where)
        else:
            mask, raw = self._dset.id.read_direct_chunk((lo,) + (0,) * (len(self.shape) - 1))
            if mask:
                raise DamagedStoreError(f"{where()}: filters were skipped on it (mask {mask}): the file is damaged")
            decompress_into(raw, out, where)
        out = out[:n]
        _CACHE.put(key, out)
        return out

    def take(self, indices, axis=0, out=None, mode="raise"):
        """``np.take`` along rows, decompressing each chunk the rows touch once."""
        if self.n_chunks == 1 and mode == "clip":  # small columns: a segment is one chunk
            return self.chunk(0).take(indices, 0, out, "clip")
        idx = np.asarray(indices, np.int64)
        if out is None:
            out = np.empty((len(idx), *self.shape[1:]), self.dtype)
        # mode="clip" is how SegmentedTable calls it, with rows it checked (a row past the end would
        # still be refused: its chunk does not exist); np.take's default mode checks here
        if mode != "clip" and len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= self.rows):
            raise IndexError(f"{self.path}: rows {int(idx.min())}..{int(idx.max())} of column {self.name!r} lie "
                             f"outside its {self.rows} rows")
        if not len(idx):
            return out
        if self.rpc == 1:  # a row per chunk (wide rows): the chunk is the row
            for i, j in enumerate(idx.tolist()):
                out[i] = self.chunk(j)[0]
            return out
        which = idx // self.rpc
        local = idx - which * self.rpc
        # One take per chunk touched, from the cached chunk straight into the output. (Copying the
        # chunks side by side for one take cost more: a 64 KiB chunk copied for the 1-2 frames a row
        # needs.) The sampler's rows come sorted; frame ids nearly so: sort only when needed.
        order = None if (which[1:] >= which[:-1]).all() else np.argsort(which, kind="stable")
        if order is not None:
            which, local = which[order], local[order]
        bounds = [0, *(np.flatnonzero(which[1:] != which[:-1]) + 1).tolist(), len(idx)]
        dst = out if order is None else np.empty_like(out)
        for a, z in zip(bounds, bounds[1:]):
            self.chunk(int(which[a])).take(local[a:z], 0, dst[a:z], "clip")
        if order is not None:
            out[order] = dst
        return out

    def __getitem__(self, key):
        if not isinstance(key, slice):
            raise TypeError(f"{self.path}: column {self.name!r} of a compacted segment reads slices and take(), "
                            f"not {type(key).__name__}")
        lo, hi, step = key.indices(self.rows)
        if step != 1:
            raise ValueError("compacted columns read contiguous slices only")
        hi = max(lo, hi)
        out = np.empty((hi - lo, *self.shape[1:]), self.dtype)
        r = lo
        while r < hi:
            j = r // self.rpc
            stop = min(hi, (j + 1) * self.rpc)
            out[r - lo:stop - lo] = self.chunk(j)[r - j * self.rpc:stop - j * self.rpc]
            r = stop
        return out

    def __array__(self, dtype=None, copy=None):
        a = self[:]
        return a if dtype is None else a.astype(dtype)


class CompactSegment:
    """A compacted segment's columns, decompressed a chunk at a time as rows are read."""

    def __init__(self, path: str, expect_identity: bytes, schema, rows: int):
        self.path = path
        self.sealed_mtime = None
        self.arrays: dict = {}
        self._file = self._map = None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:
            raise DamagedStoreError(f"compacted segment {path} is missing: restore the store's .d folder") from None
        except OSError as e:  # O_NOFOLLOW on a symlink: ELOOP
            raise DamagedStoreError(f"compacted segment {path} is not a regular file ({e}): a store keeps only regular "
                                    "files there") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):  # a FIFO would hang HDF5
                raise DamagedStoreError(f"compacted segment {path} is not a regular file (mode "
                                        f"{stat.filemode(st.st_mode)}): a store keeps only regular files there")
            self._open(fd, st.st_size, expect_identity, schema, rows)
        except (OSError, KeyError, ValueError) as e:
            self.close()
            if isinstance(e, DamagedStoreError):
                raise
            raise DamagedStoreError(f"compacted segment {path} is unreadable ({e})") from None
        except BaseException:
            self.close()
            raise
        finally:
            os.close(fd)

    def _open(self, fd: int, size: int, expect_identity: bytes, schema, rows: int) -> None:
        path = self.path
        f = self._file = h5py.File(path, "r", locking=False)
        codec = f.attrs.get("codec", f.attrs.get("compression"))
        codec = codec.decode() if isinstance(codec, bytes) else codec
        blosc = codec in BLOSC
        if blosc:
            check_codec(codec, f"reading the compacted segment {path} ({codec})")
        elif codec not in ("gzip", "lzf"):
            raise DamagedStoreError(f"compacted segment {path} names codec {codec!r}, not one compact writes")
        if blosc and size:
            self._map = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        # every dataset is checked (no bytes of another file, no unknown filter, the expected
        # shape) before a byte of it is read: a store is data (_untrusted.py)
        ident = local_dataset(f, IDENTITY, (len(expect_identity),), np.uint8, path)
        if bytes(ident[:]) != expect_identity:
            raise DamagedStoreError(f"compacted segment {path} belongs to another store or place")
        # blosc chunks are each checked to decompress to exactly their size, into a bounded cache;
        # every column passes these checks before any layout is looked at
        cols = [(c, local_dataset(f, c.name, (rows, *c.shape), c.dtype, path, ratio=not blosc))
                for c in schema if c.row_bytes]
        for c, d in cols:
            if d.chunks is None or d.chunks[1:] != tuple(c.shape):
                raise DamagedStoreError(f"{path}: column {c.name!r} is chunked {d.chunks}, not by whole rows")
            plist = d.id.get_create_plist()
            if blosc and BLOSC_FILTER not in {plist.get_filter(i)[0] for i in range(plist.get_nfilters())}:
                raise DamagedStoreError(f"{path}: column {c.name!r} is not blosc-compressed as its file says")
            self.arrays[c.name] = ArchiveColumn(self, c.name, d, rows, blosc, self._map, path)
        if all(a._read == "mapped" for a in self.arrays.values()):
            # every chunk is indexed and read from the mapping: no HDF5 handle stays open per segment
            # (a raw segment holds one descriptor; so does this one, in its mapping)
            self._file.close()
            self._file = None

    def check(self) -> bool:
        return True  # its bytes are checked per chunk as they are decompressed; compaction never rewrites one

    def close(self) -> None:
        self.arrays = {}
        _CACHE.drop(self)
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a memoryview of it is still alive in another thread's decompress
                pass
            self._map = None

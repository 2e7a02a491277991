"""Reading compacted segments: only the chunks a read, gather or batch touches are decompressed.

A ``CompactSegment`` stands where a raw segment's mapping would (``SegmentedTable`` calls the
same ``take``, slicing and ``len`` on its columns). Each column knows where its chunks lie
(``chunk_iter`` once, at open; every chunk checked to lie inside the file) and decompresses a
chunk from the mapped file bytes into a process-wide cache with a bytes budget
(``archive_cache_bytes``), so memory does not grow with the archive and no HDF5 call is made per
batch (contract 5). ``gzip``/``lzf`` segments (older stores) decompress a chunk through HDF5's
filter instead, into the same cache.

The cache keeps chunks in slabs, one per chunk size: slot ``x`` of a slab holds one decompressed
chunk, and each column keeps arrays ``chunk -> slot`` and ``chunk -> (slot - chunk) * rows per
chunk``. A ``take`` is then a few numpy calls whatever the number of chunks it touches (chunk ids,
their slab rows, one ``take`` from the slab); only the chunks missing are a Python loop, each
decompressed straight into its slot by address (c-blosc through ctypes, ``_codec.decompress_mapped``).
(The former cache, an ``OrderedDict`` of one array per chunk, cost 3-4 us of Python per chunk
looked up and 8 us per ``take``: 163 lookups and 66 takes per 32-row frames-once batch.)

A narrow column (``_codec.NARROW_SHARE``: every column of a frames-once store's transitions table)
is one chunk that Blosc stored as it is: its rows are mapped in place (``CompactSegment._in_place``),
a numpy array as a raw segment's column is, outside the cache.
"""

from __future__ import annotations

import mmap
import os
import stat
import threading

import h5py
import numpy as np

from ..format._codec import (BLOSC, BLOSC_FILTER, c_decompress, check_codec, decompress_into, decompress_mapped,
                             stored_rows)
from ..format._segment import IDENTITY
from ..files._untrusted import local_dataset
from ..files._watch import GATE
from ..errors import DamagedStoreError, TruncatedStoreError

DEFAULT_CACHE_BYTES = 128 << 20
# How a blosc chunk's bytes are fetched: "mapped" (offsets from chunk_iter, bytes from the mapped
# file), "direct" (h5py read_direct_chunk per chunk) or "h5py" (a chunk-aligned slice through
# hdf5plugin's filter). benchmarks/bench_archive.py measures the three; "mapped" was fastest.
CHUNK_READ = "mapped"
_FREE = np.iinfo(np.int64).max  # the tick of a slot holding no chunk: never the least recently used
_AWAY = 1 << 62  # the offset of a chunk not held: its rows' slab rows lie past any slab (see ArchiveColumn.take)


class _Slab:
    """Slots of one chunk size in one anonymous mapping of at most the budget's bytes: pages exist
    once a chunk is written into them, and those of a slot evicted for another slab's chunk are
    given back (``madvise``), so the slabs together hold about the chunks the budget counts."""

    def __init__(self, nbytes: int, cap: int):
        self.nbytes, self.cap = nbytes, cap
        # private: MADV_DONTNEED frees a private anonymous page (a shared one stays in shmem)
        self._mem = mmap.mmap(-1, cap * nbytes, flags=mmap.MAP_PRIVATE)
        self.data = np.frombuffer(self._mem, np.uint8).reshape(cap, nbytes)
        self.addr = self.data.ctypes.data  # slot x lies at addr + x * nbytes (what decompress_mapped writes to)
        self.tick = np.full(cap, _FREE, np.int64)  # the clock of each slot's last use
        self.col: list = [None] * cap  # the column whose chunk each slot holds
        self.j = np.zeros(cap, np.int64)  # ... and which of its chunks
        self.free: list[int] = []  # slots below top holding nothing
        self.top = 0  # slots [top, cap) were never written
        self.n = 0  # slots holding a chunk

    def release(self, slots) -> None:
        """Give the whole pages of ``slots`` back to the system (they read as zeros if written again)."""
        page = mmap.PAGESIZE
        for x in slots:
            lo = -(-x * self.nbytes // page) * page
            hi = (x + 1) * self.nbytes // page * page
            if hi > lo:
                self._mem.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


class ChunkCache:
    """Decompressed chunks of every compacted segment of this process, at most ``budget`` bytes,
    the least recently used (of any slab) evicted first. Every read of a slot holds ``_lock``:
    a slot may be given to another chunk as soon as it is released."""

    def __init__(self, budget: int):
        self.budget = budget
        self.used = 0  # bytes of the slots holding a chunk
        self.clock = 1
        self.generation = 0  # changes when the slabs are rebuilt (a new budget): columns rebind
        self.loads = 0  # chunks decompressed into the cache so far (benchmarks/bench_archive.py reads it)
        self._slabs: dict[int, _Slab] = {}
        self._lock = threading.Lock()

    def slab(self, nbytes: int) -> _Slab | None:
        """The slab of chunks of ``nbytes`` (None when the budget is smaller than one)."""
        s = self._slabs.get(nbytes)
        if s is None and self.budget >= nbytes:
            s = self._slabs[nbytes] = _Slab(nbytes, self.budget // nbytes)
        return s

    def alloc(self, slab: _Slab, m: int) -> list[int] | None:
        """``m`` slots of ``slab`` for chunks about to be written, marked used now, evicting the
        least recently used chunks not used at this clock tick; None (nothing taken) when the
        budget cannot hold ``m`` more chunks besides those in use at this tick."""
        got: list[int] = []
        while len(got) < m:
            if slab.free:
                k = min(m - len(got), len(slab.free), (self.budget - self.used) // slab.nbytes)
                if k:
                    got += slab.free[-k:]
                    del slab.free[-k:]
                    self.used += k * slab.nbytes
                    continue
            k = min(m - len(got), slab.cap - slab.top, (self.budget - self.used) // slab.nbytes)
            if k > 0:
                got += range(slab.top, slab.top + k)
                slab.top += k
                self.used += k * slab.nbytes
                continue
            if not self._evict(slab, m - len(got)):
                self.used -= len(got) * slab.nbytes
                slab.free += got
                slab.release(slab.free)  # those evicted here included: what is not counted is not held
                return None
        slab.tick[got] = self.clock
        slab.n += m
        return got

    def _evict(self, slab: _Slab, want: int) -> bool:
        """Evict from the slab holding the least recently used chunk its oldest chunks, enough
        for ``want`` chunks of ``slab``; False when every chunk held was used at this tick."""
        oldest, victim = self.clock, None
        for s in self._slabs.values():
            if s.n:
                t = int(s.tick.min())
                if t < oldest:
                    oldest, victim = t, s
        if victim is None:
            return False
        # at least 1/64 of the slab at a time: one argpartition (~25 us on 2,400 slots) per ~40
        # chunks missed rather than per take, for at most 1.6% of the budget left empty a while
        k = min(victim.n, max(victim.cap >> 6, want if victim is slab else -(-want * slab.nbytes // victim.nbytes)))
        slots = np.argpartition(victim.tick, k - 1)[:k] if k < victim.cap else np.arange(victim.cap)
        slots = slots[victim.tick[slots] < self.clock].tolist()
        self._forget(victim, slots)
        if victim is not slab:
            victim.release(slots)
        return True

    def _forget(self, s: _Slab, slots: list[int]) -> None:
        for x in slots:
            s.col[x]._slot[s.j[x]] = -1
            s.col[x]._off[s.j[x]] = _AWAY
            s.col[x] = None
        s.tick[slots] = _FREE
        s.n -= len(slots)
        s.free += slots
        self.used -= len(slots) * s.nbytes

    def drop(self, columns) -> None:
        """Forget the chunks of ``columns`` (a segment being closed), giving their pages back."""
        with self._lock:
            for col in columns:
                s = self._slabs.get(col.nbytes)
                if s is None or col._gen != self.generation:
                    continue
                slots = col._slot[col._slot >= 0].tolist()
                self._forget(s, slots)
                s.release(slots)

    def resize(self, budget: int) -> None:
        with self._lock:
            for s in self._slabs.values():
                for x in range(s.top):
                    if s.col[x] is not None:
                        s.col[x]._slot[s.j[x]] = -1
                        s.col[x]._off[s.j[x]] = _AWAY
                s.release(range(s.top))
            self._slabs = {}
            self.used = 0
            self.budget = budget
            self.generation += 1


_CACHE = ChunkCache(DEFAULT_CACHE_BYTES)


def archive_cache_bytes(budget: int | None = None) -> int:
    """The bytes of decompressed chunks of compacted segments kept in memory, for all stores of
    this process (default 128 MiB); with ``budget``, set it first (a positive int of bytes; the
    chunks held are dropped)."""
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
            raise ValueError(f"archive_cache_bytes({budget!r}): expected a positive number of bytes, e.g. 256 << 20")
        _CACHE.resize(budget)
    return _CACHE.budget


class ArchiveColumn:
    """One column of a compacted segment, read chunk by chunk (``take``, slices, ``len``)."""

    def __init__(self, owner, name: str, dset: h5py.Dataset, rows: int, blosc: bool, mapped, path: str, src=None):
        self.owner, self.name, self.path = owner, name, path
        self.shape, self.dtype = dset.shape, dset.dtype
        self.rows = rows
        self.rpc = dset.chunks[0]
        self.n_chunks = -(-rows // self.rpc)
        self.nbytes = self.rpc * int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize  # one chunk
        self._dset, self._blosc, self._map = dset, blosc, mapped
        # (a uint8 array over the mapping, its address): chunks decompressed by address through
        # c-blosc (decompress_mapped); the array keeps the mapping from being closed under a
        # decompression in another thread. None: through numcodecs (decompress_into)
        self._src = src
        self._read = CHUNK_READ if blosc else "h5py"  # fixed at open: "mapped" needs its chunk index
        self._where = None
        self._slot = np.full(self.n_chunks, -1, np.int64)  # chunk -> its slot in the cache's slab, -1: not held
        # chunk j -> (slot - j) * rpc, so that row r of a held chunk is slab row r + _off[r // rpc];
        # _AWAY (past the slab) where not held
        self._off = np.full(self.n_chunks, _AWAY, np.int64)
        self._gen = -1  # the cache generation _slab and _rows belong to
        self._slab = self._rows = None
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

    def _bind(self) -> _Slab | None:
        """The cache's slab for this column's chunks (rebound after the budget changed); lock held."""
        if self._gen != _CACHE.generation:
            self._slot.fill(-1)
            self._off.fill(_AWAY)
            self._slab = _CACHE.slab(self.nbytes)
            self._rows = None if self._slab is None else \
                self._slab.data.view(self.dtype).reshape(self._slab.cap * self.rpc, *self.shape[1:])
            self._gen = _CACHE.generation
        return self._slab

    def _load(self, j: int, out: np.ndarray, dst: int = 0) -> None:
        """Chunk ``j`` decompressed into ``out`` (its ``rpc`` rows, C-contiguous, any view of them),
        whose address is ``dst`` if the caller knows it (a slab's slot)."""
        if not 0 <= j < self.n_chunks:
            raise IndexError(f"{self.path}: chunk {j} of column {self.name!r} is outside its {self.n_chunks} chunks")

        def where():
            return f"{self.path}, column {self.name!r}, chunk {j}"

        if self._read == "mapped":
            off, size = self._where[j].tolist()
            src = self._src  # held across the call: the mapping cannot be closed under it
            if src is not None and out.nbytes == self.nbytes and (dst or out.flags.c_contiguous):
                decompress_mapped(self._map, src[1] + off, off, size, dst or out.ctypes.data, self.nbytes, where)
                return
            decompress_into(memoryview(self._map)[off:off + size], out.reshape(-1).view(np.uint8), where)
        elif self._read == "h5py":
            lo = j * self.rpc
            n = min(self.rpc, self.rows - lo)
            self._dset.read_direct(out.view(self.dtype).reshape(self.rpc, *self.shape[1:]), np.s_[lo:lo + n],
                                   np.s_[:n])
        else:
            mask, raw = self._dset.id.read_direct_chunk((j * self.rpc,) + (0,) * (len(self.shape) - 1))
            if mask:
                raise DamagedStoreError(f"{where()}: filters were skipped on it (mask {mask}): the file is damaged")
            decompress_into(raw, out.reshape(-1).view(np.uint8), where)

    def _hold(self, slab: _Slab, need: list[int]) -> bool:
        """Chunks ``need`` (not held) decompressed into slots of ``slab``; False (nothing held) when
        the budget cannot hold them besides the chunks used at this tick. Lock held."""
        slots = _CACHE.alloc(slab, len(need))
        if slots is None:
            return False
        _CACHE.loads += len(need)
        done = 0
        try:
            for j, x in zip(need, slots):
                self._load(j, slab.data[x], slab.addr + x * slab.nbytes)
                self._slot[j] = x
                self._off[j] = (x - j) * self.rpc
                slab.col[x], slab.j[x] = self, j
                done += 1
        finally:
            if done < len(slots):  # a damaged chunk: its slot and the rest go back unused
                rest = slots[done:]
                slab.tick[rest] = _FREE
                slab.n -= len(rest)
                slab.free += rest
                _CACHE.used -= len(rest) * slab.nbytes
        return True

    def chunk(self, j: int) -> np.ndarray:
        """A copy of chunk ``j``'s rows."""
        if not 0 <= j < self.n_chunks:
            raise IndexError(f"{self.path}: chunk {j} of column {self.name!r} is outside its {self.n_chunks} chunks")
        return self[j * self.rpc:min(self.rows, (j + 1) * self.rpc)]

    def take(self, indices, axis=0, out=None, mode="raise"):
        """``np.take`` along rows: one numpy ``take`` from the cache's slab, after decompressing the
        chunks the rows need that it does not hold."""
        idx = indices if type(indices) is np.ndarray and indices.dtype == np.int64 else np.asarray(indices, np.int64)
        if out is None:
            out = np.empty((len(idx), *self.shape[1:]), self.dtype)
        # mode="clip" is how SegmentedTable calls it, with rows it checked (a row past the end would
        # still be refused: its chunk does not exist); np.take's default mode checks here
        if mode != "clip" and len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= self.rows):
            raise IndexError(f"{self.path}: rows {int(idx.min())}..{int(idx.max())} of column {self.name!r} lie "
                             f"outside its {self.rows} rows")
        if not len(idx):
            return out
        with _CACHE._lock:
            slab = self._bind()
            clock = _CACHE.clock = _CACHE.clock + 1
            if self.n_chunks == 1:  # small columns: a segment is one chunk
                x = int(self._slot[0])
                if x < 0 and slab is not None and self._hold(slab, [0]):
                    x = int(self._slot[0])
                if x >= 0:
                    slab.tick[x] = clock
                    return self._rows[x * self.rpc:(x + 1) * self.rpc].take(idx, 0, out, "clip")
                return self._take_uncached(idx, out)
            which = idx // self.rpc
            if slab is not None:
                # every chunk held (most takes): one take from the slab at rows idx + _off[chunk]; a
                # chunk not held puts its rows at _AWAY or past. The test is Python's max over a
                # short list (0.25 us for 5 rows against 1.0 for numpy's reduction; take's own
                # mode="raise" buffers its output: 8.8 against 3.0 us for 21 frames). 3.0 us a take
                # of 5 rows from 8 chunks held, against 5.5 for slots, a miss test and the arithmetic.
                pos = self._off[which]
                pos += idx
                if (max(pos.tolist()) if len(pos) <= 64 else int(pos.max())) < _AWAY:
                    self._rows.take(pos, 0, out, "clip")
                    slab.tick[self._slot[which]] = clock
                    return out
                # some chunks missing: those held stay (this tick), the missing ones are decompressed
                # into slots, and the rows are taken as above
                held = pos < _AWAY
                slab.tick[self._slot[which[held]]] = clock
                if self._hold(slab, sorted(set(which[~held].tolist()))):
                    pos = self._off[which]
                    pos += idx
                    return self._rows.take(pos, 0, out, "clip")
                return self._take_uncached(idx, out)
            return self._take_uncached(idx, out)  # a budget smaller than one chunk

    def _take_uncached(self, idx: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``take`` when the cache cannot hold every chunk it needs at once (a budget smaller than a
        batch's chunks): a chunk at a time, those not held decompressed into one scratch chunk.
        Lock held."""
        which = idx // self.rpc
        local = idx - which * self.rpc
        order = np.argsort(which, kind="stable")
        which, local = which[order], local[order]
        bounds = [0, *(np.flatnonzero(which[1:] != which[:-1]) + 1).tolist(), len(idx)]
        dst = np.empty_like(out)
        scratch = None
        for a, z in zip(bounds, bounds[1:]):
            j = int(which[a])
            x = int(self._slot[j])
            if x >= 0:
                src = self._rows[x * self.rpc:(x + 1) * self.rpc]
                self._slab.tick[x] = _CACHE.clock
            else:
                if scratch is None:
                    scratch = np.empty((self.rpc, *self.shape[1:]), self.dtype)
                self._load(j, scratch)
                src = scratch
            src.take(local[a:z], 0, dst[a:z], "clip")
        out[order] = dst
        return out

    def _part(self, j: int, a: int, b: int, dst: np.ndarray) -> None:
        """Rows ``a:b`` of chunk ``j`` (not held) into ``dst``, through the cache if it can hold
        the chunk. Lock held."""
        if self._slab is not None:
            _CACHE.clock += 1
            if self._hold(self._slab, [j]):
                x = int(self._slot[j])
                dst[...] = self._rows[x * self.rpc + a:x * self.rpc + b]
                return
        scratch = np.empty((self.rpc, *self.shape[1:]), self.dtype)
        self._load(j, scratch)
        dst[...] = scratch[a:b]

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
            with _CACHE._lock:
                self._bind()
                x = int(self._slot[j])
                if x >= 0:
                    self._slab.tick[x] = _CACHE.clock
                    out[r - lo:stop - lo] = self._rows[x * self.rpc + r - j * self.rpc:x * self.rpc + stop - j * self.rpc]
                elif r == j * self.rpc and stop - r == self.rpc:
                    # a whole chunk not held: decompressed straight into place, the cache left as it
                    # was (a sequential read, verify or an export, does not evict what a sampler uses)
                    self._load(j, out[r - lo:stop - lo])
                else:
                    self._part(j, r - j * self.rpc, stop - j * self.rpc, out[r - lo:stop - lo])
            r = stop
        return out

    def __array__(self, dtype=None, copy=None):
        a = self[:]
        return a if dtype is None else a.astype(dtype)


class CompactSegment:
    """A compacted segment's columns, decompressed a chunk at a time as rows are read."""

    wd = seen = None  # its watch (files/_watch.py) while mapped, and the stamp of its last check

    def __init__(self, path: str, expect_identity: bytes, schema, rows: int):
        self.path = path
        self.sealed_mtime = None
        self.arrays: dict = {}
        self._file = self._map = None
        self.fd, self.size = -1, 0  # kept while mapped: a file that shrank under the mapping is SIGBUS
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
            if self._map is not None:
                self.wd = GATE.watch(fd)
                self.fd, self.size, fd = fd, st.st_size, -1
        except (OSError, KeyError, ValueError) as e:
            self.close()
            if isinstance(e, DamagedStoreError):
                raise
            raise DamagedStoreError(f"compacted segment {path} is unreadable ({e})") from None
        except BaseException:
            self.close()
            raise
        finally:
            if fd >= 0:
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
        src = None
        if blosc and size:
            self._map = mmap.mmap(fd, size, prot=mmap.PROT_READ)
            if c_decompress():
                base = np.frombuffer(self._map, np.uint8)
                src = (base, base.ctypes.data)
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
            col = ArchiveColumn(self, c.name, d, rows, blosc, self._map, path, src)
            self.arrays[c.name] = self._in_place(col) if col._read == "mapped" and col.n_chunks == 1 else col
        if all(getattr(a, "_read", "mapped") == "mapped" for a in self.arrays.values()):  # (an array: mapped in place)
            # every chunk is indexed and read from the mapping: no HDF5 handle stays open per segment
            # (a raw segment holds one descriptor; so does this one, in its mapping)
            self._file.close()
            self._file = None

    def _in_place(self, col: ArchiveColumn):
        """A one-chunk column whose chunk Blosc stored as it is (a narrow column, ``_codec.NARROW_SHARE``):
        its rows mapped in place, as a raw segment's are (a take costs what a mapped one does, and
        nothing is held in the chunk cache); any other column as it was."""
        off, size = col._where[0].tolist()
        at = stored_rows(self._map, off, size, col.nbytes)
        if at is None:
            return col
        items = col.rows * int(np.prod(col.shape[1:], dtype=np.int64))
        return np.frombuffer(self._map, col.dtype, count=items, offset=at).reshape(col.rows, *col.shape[1:])

    def check(self) -> bool:
        """Refuse a mapped file that shrank (touching its pages would be SIGBUS); its bytes are checked
        per chunk as they are decompressed, and compaction never rewrites one."""
        if self.fd >= 0:
            now = os.fstat(self.fd).st_size
            if now < self.size:
                raise TruncatedStoreError(f"compacted segment {self.path} shrank from {self.size} to {now} bytes "
                                          "while mapped: it was truncated or copied over. Reopen the store")
        return True

    def close(self) -> None:
        cols = [a for a in self.arrays.values() if isinstance(a, ArchiveColumn)]
        self.arrays = {}  # with them, the arrays mapped in place (they keep the mapping open while they live)
        _CACHE.drop(cols)
        for col in cols:
            col._src = None  # the last references to the mapping's array, unless a decompression is under way
        del cols
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a memoryview of it is still alive in another thread's decompress
                pass
            self._map = None
        GATE.unwatch(self.wd)
        self.wd = self.seen = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

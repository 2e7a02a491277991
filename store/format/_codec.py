"""The codecs ``compact`` writes, and one chunk compressed or decompressed outside HDF5.

``blosc-lz4`` and ``blosc-zstd`` are HDF5 filter 32001 (Blosc 1), which stock h5py reads once
``import hdf5plugin`` registered it; the store itself compresses and decompresses the chunks with
numcodecs' bundled c-blosc (the same library and chunk format) and moves them with
``write_direct_chunk`` and mapped reads, so no HDF5 filter runs on the hot paths. Both packages
are the ``[archive]`` extra: the core imports without them, and a store with blosc segments says
which extra it needs. ``gzip`` and ``lzf`` (the codecs of older stores) go through HDF5's own
filters.
"""

from __future__ import annotations

import ctypes
import importlib.util
import struct

import numpy as np


from ..errors import ArchiveExtraError, DamagedStoreError

BLOSC_FILTER = 32001
ARCHIVE_MODULES = ("hdf5plugin", "numcodecs")  # the [archive] extra (common/extras.py lists it too)
# codec -> (blosc compressor name, level): lz4 level 5 compressed 84x84 frames at ~1 GB/s on one
# core; zstd level 1 trades ~2x the time for a smaller file (BENCHMARKS.md, archive)
BLOSC = {"blosc-lz4": ("lz4", 5), "blosc-zstd": ("zstd", 1)}
CODECS = (*BLOSC, "gzip", "lzf")
DEFAULT_CODEC = "blosc-lz4"
# A sampled row decompresses its chunk. With the slab cache (read/_archive.py), once it is full and
# evicting, decompression is most of a batch: 32 KiB chunks (4 frames of 84x84) decompress less
# that a batch does not use than 64 KiB ones and sampled the frames-once archive at 0.39-0.40x/
# 0.43-0.45x the uncompressed store (batches of 32/256, 128 MiB cache, 36% of the archive) against
# 0.37-0.38x/0.38-0.41x, with the same size on disk; 16 KiB chunks gave 0.39x/0.43x and compacted
# 1.5x slower. (Before the slab cache, per-chunk Python costs made 64 KiB the best.)
CHUNK_BYTES = 1 << 15
_SIZES = struct.Struct("<III")  # nbytes, blocksize, cbytes at byte 4 of a chunk
_HEADER = 16  # blosc 1: version, versionlz, flags, typesize, nbytes, blocksize, cbytes (little endian)


def check_codec(codec, feature: str) -> str:
    """``codec``, refused with a ``ValueError`` unless it is one ``compact`` writes; a blosc codec
    also needs the ``[archive]`` extra (``ArchiveExtraError``, an ``ImportError``, otherwise)."""
    if codec not in CODECS:
        raise ValueError(f"codec={codec!r}: expected one of {CODECS} (blosc-lz4 is the fast one; gzip and lzf are "
                         "HDF5's built-in filters)")
    if codec in BLOSC:
        for module in ARCHIVE_MODULES:  # looked up, not imported: asking is cheap (store/ sits below common/)
            if importlib.util.find_spec(module) is None:
                raise ArchiveExtraError(feature, module)
        import hdf5plugin  # noqa: F401  registers filter 32001 with h5py's HDF5, for stock reads
    return codec


def rows_per_chunk(codec: str, row_bytes: int, seg_rows: int) -> int:
    """Rows per chunk: a power of two (so chunks tile a segment) near ``CHUNK_BYTES`` for blosc;
    ~1 MiB for gzip/lzf, as compact always wrote them (whole segments are what they serve)."""
    target = CHUNK_BYTES if codec in BLOSC else 1 << 20
    rows = max(1, target // max(1, row_bytes))
    return min(seg_rows, 1 << (rows.bit_length() - 1))


def dataset_options(codec: str) -> dict:
    """``create_dataset`` keywords naming the codec's HDF5 filter (what stock h5py reads by)."""
    if codec in BLOSC:
        import hdf5plugin

        cname, level = BLOSC[codec]
        return dict(hdf5plugin.Blosc(cname=cname, clevel=level, shuffle=hdf5plugin.Blosc.SHUFFLE))
    return {"compression": codec, "shuffle": True}


# The shuffle of a column's chunks (each chunk's Blosc header carries its own, so any Blosc 1 reader
# undoes whichever it was given). Measured on 32 KiB chunks of 4 84x84 frames, LZ4 level 5, one
# core (BENCHMARKS.md, codec): on frames with a flat background (rendered, Atari) no shuffle made
# chunks 0.0085x against bit shuffle's 0.0198x and decoded at 7.5 GB/s against 1.9 (4 us a chunk
# against 15); on per-pixel noise 0..5 bit shuffle made them 0.39x against 0.74x at the same
# decode speed (1.7-1.8 GB/s). Where no shuffle came within 1.25x of bit shuffle's size it decoded
# 1.4-4.3x faster (flat, gradient or static-textured backgrounds, 0.1-5% noisy pixels: 0.43-1.05x
# the size); where it did not (20-100% noisy pixels: 1.37-1.88x) it decoded no faster (0.8-0.9x)
# and is only bigger. Hence LZ4's margin: a chunk goes unshuffled if that is at most 1.25x its
# shuffled size. zstd entropy-codes what it does not match, so unshuffled noise comes out as small
# as bit-shuffled noise (0.373x against 0.374x) yet compresses 3x slower (198 against 582 MB/s) and
# decodes no faster (0.70 against 0.75 GB/s), while flat frames unshuffled are half the size
# (0.0055x against 0.0110x) and decode 2.3x faster: zstd's chunks go unshuffled only when that is
# at most 0.75x the size.
NOSHUFFLE_MARGIN = {"blosc-lz4": 1.25, "blosc-zstd": 0.75}
# Both shuffles are tried on a column's first chunk and again PROBE_EVERY chunks later, the gap
# doubling (to PROBE_MAX) each time the probe confirms the last choice and back to PROBE_EVERY
# when it changes it; the chunks between take the last probe's choice. Trying both on every chunk
# compacted noisy frames at 0.40 GB/s against 1.96 (LZ4 without shuffle compresses noise at
# 0.43 GB/s), below the 10x gzip's speed compaction is for; a probe every 64th chunk cost 5% there
# (1.85 against 1.94 GB/s); doubled gaps probe a segment of 2,048 frame chunks 6 times instead of
# 32, and compressed noisy frames at 1.94-1.95 GB/s, as fast as bit shuffle alone, flat frames at
# 4.8 GB/s against 1.96 (one core, loaded machine: BENCHMARKS.md, codec).
PROBE_EVERY = 64
PROBE_MAX = 1024


# Narrow columns (at most 1/NARROW_SHARE of the bytes of the store's largest column, rows times
# row bytes: every column of a frames-once store's transitions table, 98 bytes a row against
# 7,056-byte frames) are stored as they are, one Blosc chunk per segment written in Blosc's own
# "stored" mode (clevel 0: a 16-byte header, then the bytes), which every Blosc 1 reader
# decompresses (a copy) and this store's reader maps in place (``stored_rows``), as it maps a raw
# segment. A 32-row frames-once batch takes its rows from 6 segments x 9 such columns: a take
# from a mapped column costs ~0.3 us against ~3 us through the chunk cache (BENCHMARKS.md,
# codec). The price is their size: 98 bytes a row instead of 12 (LZ4), against 75 (flat-field) to
# 2,787 (noisy) bytes of each compressed frame. Totals, not row widths, so that a small table of
# wide rows (telemetry) does not make a store's transitions narrow.
NARROW_SHARE = 64
NARROW_MAX_BYTES = 16 << 20  # a narrow column's segment larger than this is chunked and compressed as any


def is_narrow(column_bytes: int, largest: int, segment_bytes: int) -> bool:
    """Whether a column of ``column_bytes`` (its rows times its row bytes; ``segment_bytes`` in one
    segment) is stored uncompressed, ``largest`` being the bytes of the store's largest column
    (see ``NARROW_SHARE``)."""
    return 0 < column_bytes * NARROW_SHARE <= largest and segment_bytes <= NARROW_MAX_BYTES


def stored(block: np.ndarray) -> bytes:
    """``block`` (C-contiguous) as a Blosc 1 chunk in Blosc's stored mode: 16 bytes of header, then its bytes."""
    from numcodecs import blosc

    flat = block.reshape(-1)
    out = blosc.compress(flat, b"lz4", 0, blosc.NOSHUFFLE, blosc.AUTOBLOCKS, flat.dtype.itemsize)
    if len(out) != _HEADER + flat.nbytes or not out[2] & 0x2:
        raise RuntimeError(f"blosc did not store {flat.nbytes} bytes as they are (got {len(out)} bytes, flags "
                           f"{out[2]:#x}): this numcodecs' c-blosc does not do what compact expects")
    return out


def stored_rows(mapped, off: int, size: int, nbytes: int) -> int | None:
    """The offset in ``mapped`` of the bytes of the chunk at ``off`` (``size`` bytes) if it is a
    Blosc chunk in stored mode holding exactly ``nbytes``: they can be mapped in place. None
    otherwise (a compressed chunk, or a header that does not add up)."""
    if size != _HEADER + nbytes or size < _HEADER:
        return None
    version, _, flags = mapped[off], mapped[off + 1], mapped[off + 2]
    claimed, _, cbytes = _SIZES.unpack_from(mapped, off + 4)
    if version not in (1, 2) or not flags & 0x2 or claimed != nbytes or cbytes != size:
        return None
    return off + _HEADER


def compress(codec: str, block: np.ndarray, shuffle: int | None = None) -> bytes:
    """One chunk's rows (C-contiguous) as the Blosc 1 chunk filter 32001 stores, with ``shuffle``
    (numcodecs' ``blosc.NOSHUFFLE``, ``SHUFFLE`` or ``BITSHUFFLE``; None: ``AUTOSHUFFLE``, bit
    shuffle for 1-byte items, byte shuffle for wider ones). Each chunk's header says which shuffle
    it was given, so any Blosc reader undoes it."""
    from numcodecs import blosc

    cname, level = BLOSC[codec]
    flat = block.reshape(-1)
    return blosc.compress(flat, cname.encode(), level, blosc.AUTOSHUFFLE if shuffle is None else shuffle,
                          blosc.AUTOBLOCKS, flat.dtype.itemsize)


class ColumnCompressor:
    """Compresses the chunks of one column, in order: shuffled (bit shuffle for 1-byte items, byte
    shuffle for wider ones) or not, whichever the last probe chose (``NOSHUFFLE_MARGIN``,
    ``PROBE_EVERY``, ``PROBE_MAX``). ``unshuffled`` counts the chunks written without shuffle."""

    def __init__(self, codec: str):
        if codec not in BLOSC:
            raise ValueError(f"ColumnCompressor({codec!r}): expected a blosc codec, one of {tuple(BLOSC)}")
        self.codec = codec
        self.shuffled: bool | None = None  # the last probe's choice
        self.chunks = 0
        self.unshuffled = 0
        self.probe = 0  # the next chunk probed
        self.gap = PROBE_EVERY  # chunks from that one to the one after
        from numcodecs import blosc

        cname, self._level = BLOSC[codec]
        self._cname, self._blosc = cname.encode(), blosc

    def _compress(self, flat: np.ndarray, shuffle: int) -> bytes:
        return self._blosc.compress(flat, self._cname, self._level, shuffle, self._blosc.AUTOBLOCKS, flat.dtype.itemsize)

    def __call__(self, block: np.ndarray) -> bytes:
        flat, blosc = block.reshape(-1), self._blosc
        if self.chunks == self.probe:
            packed = self._compress(flat, blosc.AUTOSHUFFLE)
            plain = self._compress(flat, blosc.NOSHUFFLE)
            was, self.shuffled = self.shuffled, len(plain) > NOSHUFFLE_MARGIN[self.codec] * len(packed)
            if was is not None:
                self.gap = min(PROBE_MAX, self.gap * 2) if was == self.shuffled else PROBE_EVERY
            self.probe += self.gap
            out = packed if self.shuffled else plain
        else:
            out = self._compress(flat, blosc.AUTOSHUFFLE if self.shuffled else blosc.NOSHUFFLE)
        self.chunks += 1
        self.unshuffled += not self.shuffled
        return out


def chunk_shuffle(chunk) -> str:
    """The shuffle a Blosc 1 chunk's header names: ``"bit"``, ``"byte"`` or ``"none"``, or
    ``"copy"`` where Blosc stored the bytes as they were (they did not compress)."""
    if len(chunk) < _HEADER:
        raise DamagedStoreError(f"a compressed chunk of {len(chunk)} bytes is shorter than its header")
    flags = chunk[2]
    return "copy" if flags & 0x2 else "bit" if flags & 0x4 else "byte" if flags & 0x1 else "none"


_C_DECOMPRESS = None  # c_decompress()'s answer, looked up once


def c_decompress():
    """``blosc_decompress_ctx(src, dest, destsize, nthreads)`` of the c-blosc that numcodecs bundles
    (its extension exports it), called through ctypes; False where it cannot be found. A sampled
    chunk's decompression through it costs ~2 us less than through ``numcodecs.blosc.decompress``
    (1.8 against 3.9-4.3 us for a 28 KB chunk of flat-field frames, which decode at ~7 GB/s), whose
    argument checks and buffer conversions were half the time of such a chunk."""
    global _C_DECOMPRESS
    if _C_DECOMPRESS is None:
        from numcodecs import blosc

        try:
            f = ctypes.CDLL(blosc.__file__).blosc_decompress_ctx
        except (OSError, AttributeError):
            f = False
        else:
            f.restype = ctypes.c_int
            f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        _C_DECOMPRESS = f
    return _C_DECOMPRESS


def decompress_mapped(mapped, src: int, off: int, size: int, dst: int, nbytes: int, where) -> None:
    """The Blosc chunk at ``mapped[off:off + size]`` (``mapped``: the file's mapping, ``src`` the
    address of its byte ``off``) decompressed to address ``dst``, where the caller holds ``nbytes``
    bytes, through ``c_decompress()`` (the caller checked it is there), after the checks
    ``decompress_into`` makes: the header claims exactly ``nbytes`` in at most ``size`` bytes.
    The caller keeps both buffers alive across the call."""
    if size < _HEADER:
        raise DamagedStoreError(f"{where()}: a compressed chunk of {size} bytes is shorter than its header")
    claimed, _, cbytes = _SIZES.unpack_from(mapped, off + 4)
    if claimed != nbytes or cbytes > size or cbytes < _HEADER:
        raise DamagedStoreError(f"{where()}: a compressed chunk claims {claimed} bytes in {cbytes}, expected "
                                f"{nbytes} in at most {size}: the file is damaged or hostile")
    got = _C_DECOMPRESS(src, dst, nbytes, 1)
    if got != nbytes:
        raise DamagedStoreError(f"{where()}: a compressed chunk does not decompress (blosc returned {got}): the "
                                "file is damaged")


def decompress_into(chunk, out: np.ndarray, where) -> None:
    """Blosc chunk bytes (``chunk``) decompressed into ``out`` (``where()`` names it in errors:
    built only on an error, as this runs per sampled chunk), after checking that its header
    claims exactly ``out``'s size and that its compressed length fits in what was stored: a damaged
    or hostile chunk cannot make it write past ``out`` nor read past ``chunk``."""
    from numcodecs import blosc

    if len(chunk) < _HEADER:
        raise DamagedStoreError(f"{where()}: a compressed chunk of {len(chunk)} bytes is shorter than its header")
    nbytes, _, cbytes = _SIZES.unpack_from(chunk, 4)
    if nbytes != out.nbytes or cbytes > len(chunk) or cbytes < _HEADER:
        raise DamagedStoreError(f"{where()}: a compressed chunk claims {nbytes} bytes in {cbytes}, expected "
                                f"{out.nbytes} in at most {len(chunk)}: the file is damaged or hostile")
    try:
        blosc.decompress(chunk, out)
    except RuntimeError as e:
        raise DamagedStoreError(f"{where()}: a compressed chunk does not decompress ({e}): the file is damaged") from None

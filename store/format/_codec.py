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


def compress(codec: str, block: np.ndarray) -> bytes:
    """One chunk's rows (C-contiguous) as the Blosc 1 chunk filter 32001 stores. Bit shuffle for
    1-byte items, byte shuffle for wider ones (each chunk's header says which, so any Blosc reader
    undoes it): on 84x84 grey frames bit shuffle made LZ4 chunks 0.385x their size against 0.742x
    and compressed 5x faster (2.4 against 0.45 GB/s, one core)."""
    from numcodecs import blosc

    cname, level = BLOSC[codec]
    flat = block.reshape(-1)
    return blosc.compress(flat, cname.encode(), level, blosc.AUTOSHUFFLE, blosc.AUTOBLOCKS, flat.dtype.itemsize)


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

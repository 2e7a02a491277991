"""Block checksums: crc32, or a 64-bit word sum with a position-weighted sample where rows are
whole words.

Measured here (benchmarks/bench_store.py, alternating bursts): zlib.crc32 runs at about 4 GB/s,
which cost about 40% of an ``extend`` into page-cache pages; a position-weighted sum of every word
(``np.dot``, 10-14 GB/s) still cost 25%. For columns whose rows are a multiple of 8 bytes (the
state columns, nearly all of a row's bytes) numpy now computes, mod 2**64, ``s1 = sum(w)`` over
every 64-bit word ``w`` of the block (30-90 GB/s: any flipped bit, zeroed or replaced run changes
it) and ``s2 = sum((2i + 1) * w[i])`` over the words at positions ``i`` divisible by 8 (every
64 bytes: rows moved or swapped change it). Narrow columns keep crc32; their bytes are few.
Both continue over a block written in pieces, so a commit never re-reads a block. The sampled
words' weights come from a contiguous array (read through a strided view of every word's weight
they cost as much as the word sum: 73 -> 50 us per 2 MiB in cache, the same sums).
"""

from __future__ import annotations

import zlib

import numpy as np

from ._schema import Column

CRC32, SUM64 = "crc32", "sum64"
_MASK = (1 << 64) - 1
_weights = np.zeros(0, np.uint64)
_STRIDE = 8


def kind(column: Column) -> str:
    return SUM64 if column.row_bytes % 8 == 0 else CRC32


def start(k: str):
    return (0, 0) if k == SUM64 else 0


def _w(first: int, n: int) -> np.ndarray:
    """The weights ``2p + 1`` of the sampled positions ``p = 8 * (first + j)``, ``j < n``, contiguous:
    read through a strided view of every word's weight, they cost as much as the sum itself."""
    global _weights
    if len(_weights) < first + n:
        size = max(first + n, 2 * len(_weights), 1 << 13)
        _weights = np.arange(size, dtype=np.uint64) * np.uint64(2 * _STRIDE) + np.uint64(1)
    return _weights[first:first + n]


def update(k: str, state, data, offset: int):
    """Continue ``state`` over ``data`` (bytes-like), which starts ``offset`` bytes into its block."""
    if k == CRC32:
        return zlib.crc32(data, state)
    words = np.frombuffer(data, dtype="<u8")
    s1, s2 = state
    first = offset // 8
    skip = -first % _STRIDE  # the sample is positions divisible by _STRIDE within the block
    sample = words[skip::_STRIDE]
    return ((s1 + int(np.add.reduce(words))) & _MASK,
            (s2 + int(np.dot(sample, _w((first + skip) // _STRIDE, len(sample))))) & _MASK)


def same(k: str, recorded, got) -> bool:
    return (tuple(recorded) if k == SUM64 and isinstance(recorded, list) else recorded) == got


def valid(k: str, v) -> bool:
    if k == SUM64:
        return isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_u64(x) for x in v)
    return _is_u64(v)


def _is_u64(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= _MASK

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

Two sum kinds differ only in the sample's stride: ``sum64`` (every 8th word, one per 64-byte cache
line: the sample touches every line, so it cost as much as the word sum, 51 against 48 us per
4 MiB) and ``sum64-512`` (every 64th word, one per 512 bytes: 11 us). New tables use
``sum64-512``; a moved or swapped run of 512 aligned bytes or more, a state row of 128 float32
for instance, still changes ``s2``. Which kind a table uses is in its commit record
(``TableRecord.hashes``); a record without it was written with ``legacy_kind`` (``sum64``).
"""

from __future__ import annotations

import zlib

import numpy as np

from ._schema import Column

CRC32, SUM64, SUM64_512 = "crc32", "sum64", "sum64-512"
_STRIDES = {SUM64: 8, SUM64_512: 64}  # words between sampled words, per sum kind
KINDS = (CRC32, SUM64, SUM64_512)
_MASK = (1 << 64) - 1
_weights: dict[int, np.ndarray] = {}


def kind(column: Column) -> str:
    """The kind a new table uses for ``column``."""
    return SUM64_512 if column.row_bytes % 8 == 0 else CRC32


def legacy_kind(column: Column) -> str:
    """The kind of a table whose record names none (written before ``sum64-512`` existed)."""
    return SUM64 if column.row_bytes % 8 == 0 else CRC32


def fits(k: str, column: Column) -> bool:
    """Whether kind ``k`` can checksum ``column`` (sums need rows of whole 64-bit words)."""
    return k == CRC32 or (k in _STRIDES and column.row_bytes % 8 == 0)


def start(k: str):
    return 0 if k == CRC32 else (0, 0)


def _w(stride: int, first: int, n: int) -> np.ndarray:
    """The weights ``2p + 1`` of the sampled positions ``p = stride * (first + j)``, ``j < n``, contiguous:
    read through a strided view of every word's weight, they cost as much as the sum itself."""
    w = _weights.get(stride)
    if w is None or len(w) < first + n:
        size = max(first + n, 2 * (0 if w is None else len(w)), 1 << 13)
        w = _weights[stride] = np.arange(size, dtype=np.uint64) * np.uint64(2 * stride) + np.uint64(1)
    return w[first:first + n]


def update(k: str, state, data, offset: int):
    """Continue ``state`` over ``data`` (bytes-like), which starts ``offset`` bytes into its block."""
    if k == CRC32:
        return zlib.crc32(data, state)
    stride = _STRIDES[k]
    words = np.frombuffer(data, dtype="<u8")
    s1, s2 = state
    first = offset // 8
    skip = -first % stride  # the sample is positions divisible by the stride within the block
    sample = words[skip::stride]
    return ((s1 + int(np.add.reduce(words))) & _MASK,
            (s2 + int(np.dot(sample, _w(stride, (first + skip) // stride, len(sample))))) & _MASK)


def update_blocks(k: str, states: list, words: np.ndarray) -> list:
    """``update`` of several whole sum blocks at once: row ``j`` of ``words`` (little-endian uint64,
    one block per row, each starting at its block's first word) continues ``states[j]``. One
    reduction over all of them costs 61 us per 4 MiB where four calls of ``update`` cost 79."""
    stride = _STRIDES[k]
    s1 = np.add.reduce(words, axis=1)
    s2 = words[:, ::stride] @ _w(stride, 0, -(-words.shape[1] // stride))
    return [((a + int(x)) & _MASK, (b + int(y)) & _MASK) for (a, b), x, y in zip(states, s1.tolist(), s2.tolist())]


def same(k: str, recorded, got) -> bool:
    return (tuple(recorded) if k != CRC32 and isinstance(recorded, list) else recorded) == got


def valid(k: str, v) -> bool:
    if k in _STRIDES:
        return isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_u64(x) for x in v)
    return _is_u64(v)


def _is_u64(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= _MASK

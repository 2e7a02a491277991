"""Block checksums: written in pieces they equal the whole; flips, zeroed runs and swapped rows change them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replaystore.store.format import _checksum

BLOCK = np.random.default_rng(3).integers(0, 256, 8 * 4096, dtype=np.uint8).tobytes()


def whole(kind: str, data: bytes):
    return _checksum.update(kind, _checksum.start(kind), data, 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 4095), max_size=8, unique=True), st.sampled_from(list(_checksum.KINDS)))
def test_pieces_equal_the_whole(cuts, kind):
    """A block checksummed in pieces (cut at word boundaries, as rows of whole words are) equals it in one go."""
    edges = [0] + sorted(8 * c for c in cuts) + [len(BLOCK)]
    state = _checksum.start(kind)
    for lo, hi in zip(edges, edges[1:]):
        state = _checksum.update(kind, state, BLOCK[lo:hi], lo)
    assert whole(kind, BLOCK) == state


@pytest.mark.parametrize("kind", _checksum.KINDS)
@pytest.mark.parametrize("damage", ["bit", "zeroed run", "swapped 64-byte rows", "swapped 512-byte rows"])
def test_damage_changes_the_checksum(kind, damage):
    """One flipped bit, a zeroed run or two swapped rows give another checksum."""
    bad = bytearray(BLOCK)
    if damage == "bit":
        bad[12345] ^= 0x04
    elif damage == "zeroed run":
        bad[4096:8192] = bytes(4096)
    elif damage == "swapped 64-byte rows":
        bad[0:64], bad[640:704] = BLOCK[640:704], BLOCK[0:64]
    else:  # two 128-float32 state rows, at row boundaries of the block
        bad[1024:1536], bad[3072:3584] = BLOCK[3072:3584], BLOCK[1024:1536]
    assert whole(kind, bytes(bad)) != whole(kind, BLOCK)


def test_sum64_512_misses_only_moves_inside_512_bytes():
    """What sum64-512 gives up for its speed: a swap of two words that are both unsampled keeps it
    (sum64, sampling every 64 bytes, sees this one). Documented in _checksum.py."""
    bad = bytearray(BLOCK)
    bad[8:16], bad[16:24] = BLOCK[16:24], BLOCK[8:16]
    assert whole("sum64-512", bytes(bad)) == whole("sum64-512", BLOCK)
    bad = bytearray(BLOCK)
    bad[64:72], bad[128:136] = BLOCK[128:136], BLOCK[64:72]
    assert whole("sum64", bytes(bad)) != whole("sum64", BLOCK)


def test_recorded_form_compares_equal():
    """A sum64 state read back from JSON (a list) compares equal to the computed tuple."""
    for kind in ("sum64", "sum64-512"):
        got = whole(kind, BLOCK)
        assert _checksum.same(kind, list(got), got) and _checksum.valid(kind, list(got))
        assert not _checksum.valid(kind, [1, -1])
    assert not _checksum.valid("crc32", True)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 5000), st.integers(1, 600), st.integers(0, 2**32), st.sampled_from([("sum64", 8), ("sum64-512", 64)]))
def test_sum64_is_the_recorded_formula(first_word, n_words, seed, kind_stride):
    """sum64 is sum(w) and sum((2p+1) * w[p]) over block positions p divisible by 8, mod 2**64 (as recorded in
    older stores); sum64-512 the same over positions divisible by 64."""
    kind, stride = kind_stride
    w = np.random.default_rng(seed).integers(0, 2**64 - 1, n_words, dtype=np.uint64, endpoint=True)
    mask = (1 << 64) - 1
    s1 = sum(int(x) for x in w) & mask
    s2 = sum((2 * (first_word + i) + 1) * int(x) for i, x in enumerate(w) if (first_word + i) % stride == 0) & mask
    assert _checksum.update(kind, (0, 0), w.tobytes(), 8 * first_word) == (s1, s2)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["sum64", "sum64-512"]), st.integers(1, 6), st.sampled_from([8, 24, 512]),
       st.integers(1, 40), st.integers(0, 200), st.integers(0, 2**32))
def test_blocks_summed_together_equal_blocks_summed_alone(kind, blocks, row_bytes, block_rows, local, seed):
    """_update_sums over rows that cover several whole blocks (one reduction for them) gives the
    same per-block sums as writing the rows one at a time."""
    from replaystore.store.write._tablewriter import _update_sums

    n = blocks * block_rows + 3
    arr = np.random.default_rng(seed).integers(0, 256, (n, row_bytes), dtype=np.uint8)
    nblocks = -(-(local + n) // block_rows)
    together = [_checksum.start(kind)] * nblocks
    _update_sums(together, arr, local, block_rows, row_bytes, kind)
    alone = [_checksum.start(kind)] * nblocks
    for i in range(n):
        _update_sums(alone, arr[i:i + 1], local + i, block_rows, row_bytes, kind)
    assert together == alone

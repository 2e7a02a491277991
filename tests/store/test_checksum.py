"""Block checksums: written in pieces they equal the whole; flips, zeroed runs and swapped rows change them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replaystore.store import _checksum

BLOCK = np.random.default_rng(3).integers(0, 256, 8 * 4096, dtype=np.uint8).tobytes()


def whole(kind: str, data: bytes):
    return _checksum.update(kind, _checksum.start(kind), data, 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 4095), max_size=8, unique=True), st.sampled_from(["sum64", "crc32"]))
def test_pieces_equal_the_whole(cuts, kind):
    """A block checksummed in pieces (cut at word boundaries, as rows of whole words are) equals it in one go."""
    edges = [0] + sorted(8 * c for c in cuts) + [len(BLOCK)]
    state = _checksum.start(kind)
    for lo, hi in zip(edges, edges[1:]):
        state = _checksum.update(kind, state, BLOCK[lo:hi], lo)
    assert whole(kind, BLOCK) == state


@pytest.mark.parametrize("kind", ["sum64", "crc32"])
@pytest.mark.parametrize("damage", ["bit", "zeroed run", "swapped 64-byte rows"])
def test_damage_changes_the_checksum(kind, damage):
    """One flipped bit, a zeroed run or two swapped rows give another checksum."""
    bad = bytearray(BLOCK)
    if damage == "bit":
        bad[12345] ^= 0x04
    elif damage == "zeroed run":
        bad[4096:8192] = bytes(4096)
    else:
        bad[0:64], bad[640:704] = BLOCK[640:704], BLOCK[0:64]
    assert whole(kind, bytes(bad)) != whole(kind, BLOCK)


def test_recorded_form_compares_equal():
    """A sum64 state read back from JSON (a list) compares equal to the computed tuple."""
    got = whole("sum64", BLOCK)
    assert _checksum.same("sum64", list(got), got) and _checksum.valid("sum64", list(got))
    assert not _checksum.valid("sum64", [1, -1]) and not _checksum.valid("crc32", True)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 5000), st.integers(1, 600), st.integers(0, 2**32))
def test_sum64_is_the_recorded_formula(first_word, n_words, seed):
    """sum64 is sum(w) and sum((2p+1) * w[p]) over block positions p divisible by 8, mod 2**64 (as recorded in older stores)."""
    w = np.random.default_rng(seed).integers(0, 2**64 - 1, n_words, dtype=np.uint64, endpoint=True)
    mask = (1 << 64) - 1
    s1 = sum(int(x) for x in w) & mask
    s2 = sum((2 * (first_word + i) + 1) * int(x) for i, x in enumerate(w) if (first_word + i) % 8 == 0) & mask
    assert _checksum.update("sum64", (0, 0), w.tobytes(), 8 * first_word) == (s1, s2)

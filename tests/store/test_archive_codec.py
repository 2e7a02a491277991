"""The archive's codec on the frames it will meet: the benchmark's two kinds of frames (per-pixel
noise, a compressor's worst case; a flat field, as rendered frames are), the shuffle each chunk
is compressed with, and stock h5py + hdf5plugin reading every chunk compact writes."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
from bench_images import frames  # noqa: E402  the benchmarks' frames, so tests and figures meet the same data


def test_clean_frames_are_the_noisy_ones_sprites_on_a_flat_field():
    noisy, clean = frames(50, 3, "noisy"), frames(50, 3, "clean")
    assert noisy.shape == clean.shape == (50, 84, 84) and clean.dtype == np.uint8
    sprite = clean > 0
    assert 0.005 < sprite.mean() < 0.2  # a ball and a paddle, nothing else
    assert (noisy[sprite] == clean[sprite]).all()  # the same sprites, where they are
    assert (noisy[~sprite] <= 5).all() and len(np.unique(noisy[~sprite])) == 6  # noise 0..5 under them
    assert not (clean[1:] == clean[:-1]).all(axis=(1, 2)).any()  # they move every frame
    with pytest.raises(ValueError, match="noisy"):
        frames(2, 0, "grainy")

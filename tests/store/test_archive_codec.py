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


def test_a_column_compressor_leaves_flat_frames_unshuffled_and_bit_shuffles_noise():
    """Chunks of 4 flat-field frames go without shuffle (smaller and faster to decode), chunks of
    noisy frames with bit shuffle; a column whose frames turn noisy switches at the next probe."""
    from numcodecs import blosc

    from replaystore.store.format import _codec

    def shuffles(kinds):
        comp = _codec.ColumnCompressor("blosc-lz4")
        got = []
        for n, kind in enumerate(kinds):
            block = np.ascontiguousarray(frames(4 * (n + 1), n, kind)[-4:])
            chunk = comp(block)
            out = np.empty_like(block)
            blosc.decompress(chunk, out)
            assert block.tobytes() == out.tobytes()
            got.append(_codec.chunk_shuffle(chunk))
        assert comp.unshuffled == got.count("none")
        return got

    every = _codec.PROBE_EVERY
    assert ["none"] * 3 == shuffles(["clean"] * 3)
    assert ["bit"] * 3 == shuffles(["noisy"] * 3)
    # the first probe chose no shuffle; noisy chunks keep it until the next probe (chunk ``every``)
    assert ["none"] * every + ["bit"] * 4 == shuffles(["clean"] * 2 + ["noisy"] * (every + 2))
    # a probe that confirms the choice doubles the gap to the next (probes at 0, 64, 192): flat
    # frames from chunk 65 on stay bit-shuffled until 192; that change resets the gap to 64 (256)
    got = shuffles(["noisy"] * 65 + ["clean"] * 191 + ["noisy"] * 10)
    assert got == ["bit"] * 192 + ["none"] * 64 + ["bit"] * 10
    with pytest.raises(ValueError, match="blosc"):
        _codec.ColumnCompressor("gzip")


def test_stock_h5py_reads_a_compacted_segment_of_mixed_chunks_bit_for_bit(tmp_path, monkeypatch):
    """A plain image store whose rows alternate noisy and flat-field frames, compacted with a probe
    on every chunk, has chunks of both shuffles in one column; stock h5py with hdf5plugin, in a
    process that never imported replaystore, reads every column equal to the rows written, and so
    does the store."""
    import subprocess

    import h5py

    from bench_images import rollout_blocks, stack_shape
    from replaystore.store import ReplayStore, Schema
    from replaystore.store.format import _codec
    from replaystore.store.tools._compact import compact

    monkeypatch.setattr(_codec, "PROBE_EVERY", 1)
    monkeypatch.setattr(_codec, "PROBE_MAX", 1)
    path = tmp_path / "mixed.h5"
    schema = Schema.transition(stack_shape(-1), state_dtype="uint8")
    with ReplayStore.create(path, schema, actors=("expert", "dqn"), window=64, segment_rows=64) as s:
        for n in range(5):
            s.extend(next(rollout_blocks(16, 16, seed=n, kind=("noisy", "clean")[n % 2])))
    with ReplayStore.open(path) as r:
        want = r.read(None, 0, 64)
    assert [0] == compact(path, sealed=True)
    seg = os.path.join(f"{path}.d", "transitions-000000.z.h5")
    with h5py.File(seg, "r") as f:
        d = f["state"]
        assert d.chunks[0] == 1  # a 28 KB stack a chunk
        kinds = [_codec.chunk_shuffle(d.id.read_direct_chunk((j, 0, 0, 0))[1]) for j in range(64)]
    assert kinds == ["bit"] * 16 + ["none"] * 16 + ["bit"] * 16 + ["none"] * 16
    with h5py.File(seg, "r") as f:  # 4 bytes a row against 28,224: stored as it is, one chunk
        assert f["reward"].chunks == (64,)
        assert "copy" == _codec.chunk_shuffle(f["reward"].id.read_direct_chunk((0,))[1])
    out = tmp_path / "stock.npz"
    cols = [c for c in want if c not in ("actor",)]
    code = ("import sys, h5py, hdf5plugin, numpy as np; f = h5py.File(sys.argv[1], 'r'); "
            "np.savez(sys.argv[2], **{k: f[k][:] for k in sys.argv[3:]}); "
            "assert 'replaystore' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code, seg, str(out), "state", "next_state", "reward"],
                          capture_output=True, text=True)
    assert 0 == done.returncode, done.stderr
    got = np.load(out)
    for c in ("state", "next_state", "reward"):
        assert want[c].tobytes() == got[c].tobytes(), c
    with ReplayStore.open(path) as r:
        after = r.read(None, 0, 64)
    for c in cols:
        assert want[c].tobytes() == after[c].tobytes(), c


def _compacted_frames_store(path):
    """A frames-once store of 16x16 frames, 256-row segments, every full segment compacted; its rows."""
    from frames_helpers import rollout

    from replaystore.store import FrameStack, ReplayStore, Schema
    from replaystore.store.tools._compact import compact_tables

    rows = rollout(5, 500, envs=3, size=16)
    schema = Schema.transition(rows["state"].shape[1:], state_dtype="uint8")
    with ReplayStore.create(path, schema, actors=("expert", "dqn"), window=256, segment_rows=256,
                            frames=FrameStack(4)) as s:
        s.extend(rows)
    compact_tables(path, sealed=True)
    return rows


@pytest.mark.parametrize("route", ["c-blosc", "numcodecs"])
def test_both_decompression_routes_read_the_same_rows_and_refuse_a_damaged_chunk(tmp_path, monkeypatch, route):
    """Chunks decompressed by address through the c-blosc numcodecs bundles, or through numcodecs'
    own call where that cannot be found, give the rows written; a chunk whose block offsets were
    overwritten is refused with DamagedStoreError naming its segment, on either route."""
    import h5py

    from replaystore.store import ReplayStore, Sampler, errors
    from replaystore.store.format import _codec

    if route == "numcodecs":
        monkeypatch.setattr(_codec, "_C_DECOMPRESS", False)
    else:
        assert _codec.c_decompress()
    path = tmp_path / "framed.h5"
    rows = _compacted_frames_store(path)
    with ReplayStore.open(path) as r:
        seg = r._views["frames"].segment(1)
        assert (route == "c-blosc") == (seg.arrays["frame"]._src is not None)
        got = r.read()
        for c in ("state", "next_state", "reward", "done"):
            np.testing.assert_array_equal(rows[c], got[c], err_msg=c)
        with Sampler(r, 64, seed=2, as_torch=False) as sm:
            b = sm.sample()
            np.testing.assert_array_equal(rows["state"][b["row"]], b["state"])
    name = os.path.join(f"{path}.d", "frames-000001.z.h5")
    with h5py.File(name, "r") as f:
        info = f["frame"].id.get_chunk_info(1)  # frames 384-511
    with open(name, "r+b") as f:  # the header is intact; the block offsets after it point far away
        f.seek(info.byte_offset + 16)
        f.write(b"\xff" * 16)
    with ReplayStore.open(path) as r:
        with pytest.raises(errors.DamagedStoreError, match="frames-000001.z.h5.*does not decompress"):
            r.read_table("frames", ["frame"], 390, 400)


def test_narrow_columns_are_stored_as_they_are_and_read_in_place_or_through_the_cache(tmp_path, monkeypatch):
    """In a compacted frames-once store the columns of at most 1/64 of a frame a row are one
    stored-mode Blosc chunk per segment, mapped in place by the reader; a reader that decompresses
    them through the chunk cache instead (as readers before them did) reads the same rows; a chunk
    whose header no longer says "stored" is not mapped (it goes through blosc and its checks)."""
    import h5py

    from replaystore.store import ReplayStore, Sampler
    from replaystore.store.format import _codec
    from replaystore.store.read import _archive

    path = tmp_path / "framed.h5"
    rows = _compacted_frames_store(path)  # 16x16 frames: 256 bytes, so columns of <= 4 bytes are narrow
    narrow = {"reward", "done", "actor", "discrete_action"}
    name = os.path.join(f"{path}.d", "transitions-000002.z.h5")
    with h5py.File(name, "r") as f:
        for c in f:
            if c in narrow:
                assert f[c].chunks[0] == 256 and "copy" == _codec.chunk_shuffle(f[c].id.read_direct_chunk((0,))[1]), c
            elif c != "identity":
                assert "copy" != _codec.chunk_shuffle(f[c].id.read_direct_chunk((0,) * f[c].ndim)[1]), c

    def read_all():
        with ReplayStore.open(path) as r:
            seg = r._views["transitions"]._t.segment(2)
            kinds = {c: type(a).__name__ for c, a in seg.arrays.items()}
            got = r.read()
            with Sampler(r, 64, seed=2, as_torch=False) as sm:
                b = sm.sample()
        np.testing.assert_array_equal(rows["state"][b["row"]], b["state"])
        np.testing.assert_array_equal(rows["reward"][b["row"]], b["reward"])
        for c in ("reward", "done", "discrete_action", "state_frames" if "state_frames" in got else "state"):
            np.testing.assert_array_equal(rows[c], got[c], err_msg=c)
        return kinds

    kinds = read_all()
    assert {c for c, k in kinds.items() if k == "ndarray"} == narrow
    monkeypatch.setattr(_archive.CompactSegment, "_in_place", lambda self, col: col)  # the cache's way
    assert set(read_all().values()) == {"ArchiveColumn"}
    monkeypatch.undo()
    with h5py.File(name, "r") as f:
        info = f["reward"].id.get_chunk_info(0)
    with open(name, "r+b") as fh:  # flags without "stored": the reader decompresses it (blosc copies it)
        fh.seek(info.byte_offset + 2)
        flags = fh.read(1)[0]
        fh.seek(info.byte_offset + 2)
        fh.write(bytes([flags & ~0x2 & 0xFF]))
    with ReplayStore.open(path) as r:
        assert type(r._views["transitions"]._t.segment(2).arrays["reward"]).__name__ == "ArchiveColumn"


def test_zstd_keeps_bit_shuffle_on_noise_it_would_code_as_small_unshuffled():
    """zstd codes unshuffled noise about as small as bit-shuffled noise, but slower both ways: its
    noisy chunks keep bit shuffle, its flat-field ones go unshuffled."""
    from replaystore.store.format import _codec

    for kind, want in (("noisy", "bit"), ("clean", "none")):
        comp = _codec.ColumnCompressor("blosc-zstd")
        assert want == _codec.chunk_shuffle(comp(np.ascontiguousarray(frames(4, 0, kind)))), kind


def test_a_small_table_of_wide_rows_does_not_make_the_transitions_narrow(tmp_path):
    """Narrow is against the store's largest column in bytes, not in row width: a 16-row table of
    8 KB rows leaves a vector store's transitions compressed."""
    import h5py

    from replaystore.store import Column, ReplayStore, Schema
    from replaystore.store.format import _codec
    from replaystore.store.tools._compact import compact_tables

    path = tmp_path / "vec.h5"
    schema = Schema.transition((4,), state_dtype="float32")
    wide = Schema((Column("hist", np.dtype("float32"), (2048,)),))
    n = 4096
    with ReplayStore.create(path, schema, actors=("a", "b"), window=1, segment_rows=1024) as s:
        s.create_table("telemetry", wide, seg_rows=8)
        s.extend_table("telemetry", {"hist": np.ones((16, 2048), "f4")})
        s.extend({"actor": np.arange(n) % 2, "state": np.tile(np.arange(4, dtype="f4"), (n, 1)),
                  "next_state": np.zeros((n, 4), "f4"), "discrete_action": np.zeros(n, "i4"),
                  "continuous_action": np.zeros((n, 0), "f4"), "reward": np.zeros(n, "f4"), "done": np.zeros(n, bool)})
    done = compact_tables(path, sealed=True)
    assert done["transitions"] and done["telemetry"]

    def kinds(name):
        with h5py.File(os.path.join(f"{path}.d", name), "r") as f:
            return {c: _codec.chunk_shuffle(f[c].id.read_direct_chunk((0,) * f[c].ndim)[1]) for c in f if c != "identity"}

    # 16-64 KB a column against the hist's 128 KB (by row width, 4-16 bytes against 8,192, every
    # one of them would have been narrow)
    assert "copy" not in kinds("transitions-000000.z.h5").values()
    assert "copy" not in kinds("telemetry-000000.z.h5").values()  # the largest column itself

"""Compaction: sealed segments rewritten compressed, a chunk at a time, readable by stock h5py.

``compact(path)`` takes the writer lock and, for each table, writes ``<table>-NNNNNN.z.h5``
beside each full segment it compacts: chunked by whole rows, every chunk compressed with the
codec (``_codec.py``; the file's ``codec`` attribute names it) straight from the raw segment's
mapped bytes, so memory stays at one chunk whatever the segment's size. With blosc, each chunk is
shuffled or not as the column's chunks compress best (``_codec.ColumnCompressor``; each chunk's
header says which), and narrow columns (``_codec.NARROW_SHARE``) are one chunk per segment, stored
as they are, which the reader maps in place. It then publishes a
commit record that names the new files, and only then deletes the raw ones: a kill at any point
leaves a readable store. Which segments: by default those no sampler reads (transitions wholly
before the replay window, frames no window row names, every full segment of the other tables);
with ``sealed=True`` every full segment of every table (an archive still sampled, through
``_archive.py``'s chunk cache). Checksums still cover the uncompressed bytes, so ``verify``
checks compacted rows the same way.
"""

from __future__ import annotations

import mmap
import os

import h5py
import numpy as np

from ..format._codec import (BLOSC, DEFAULT_CODEC, ColumnCompressor, check_codec, dataset_options, is_narrow,
                             rows_per_chunk, stored)
from ..format._format import TRANSITIONS, compact_name, segment_dir
from ..files._fileio import replacing
from ..files._h5image import hdf5_file
from ..read._frames import FRAMES_TABLE, spec_of
from ..format._segment import IDENTITY, identity_bytes

# rows per write for gzip/lzf (through HDF5's filter): a few MiB bounds memory, whole chunks
_BLOCK_BYTES = 8 << 20


def compact(path, codec: str = DEFAULT_CODEC, fsync: bool = False, sealed: bool = False) -> list[int]:
    """``compact_tables(...)``, returning the transitions segments compacted (as before tables)."""
    return compact_tables(path, codec, fsync, sealed).get(TRANSITIONS, [])


def compact_tables(path, codec: str = DEFAULT_CODEC, fsync: bool = False, sealed: bool = False) -> dict[str, list[int]]:
    """Compact full segments with ``codec`` (``_codec.CODECS``); returns ``{table: [indexes]}``
    for the tables where something was compacted (empty: nothing to do)."""
    from ..read._store import ReplayStore

    check_codec(codec, f"replaystore compact --codec {codec}")
    done: dict[str, list[int]] = {}
    with ReplayStore.open(path, "a", fsync=fsync) as s:
        rows = {name: getattr(s._views[name], "_t", s._views[name]).rows for name in s._tables if name in s._views}
        largest = max((c.row_bytes * rows.get(name, 0) for name, tw in s._tables.items() for c in tw.stored), default=0)
        for name, tw in s._tables.items():
            view = s._views.get(name)
            if view is None:
                continue
            todo = [k for k in range(tw.first_segment, _last(s, name, view, sealed)) if k not in tw.compacted]
            for k in todo:
                narrow = {c.name for c in tw.stored if codec in BLOSC and
                          is_narrow(c.row_bytes * rows[name], largest, c.row_bytes * tw.seg_rows)}
                _write_compact(segment_dir(s.path), view.segment(k), tw, k, codec, fsync, narrow)
                view.forget(k)  # unmapped: the pages read stay out of this process (RSS), whatever the store's size
            if todo:
                done[name] = todo
        if done:
            s.use_compacted(done)  # commits a record naming them, then removes the raw segments
    return done


def _last(s, name: str, view, sealed: bool) -> int:
    """One past the last segment of table ``name`` to compact."""
    full = view.rows >> view.shift  # segments below this one are full: no writer touches them again
    if sealed:
        return full
    if name == TRANSITIONS:
        return min(full, max(0, len(s) - s.window) >> view.shift)  # segments before this one hold no window row
    if name == FRAMES_TABLE and spec_of(s._extra) is not None:
        return min(full, _first_window_frame(s) >> view.shift)
    return full


def _first_window_frame(s) -> int:
    """The smallest frame id a row of the replay window names (frames before it are never sampled)."""
    t = s._views[TRANSITIONS]
    stored = getattr(t, "_t", t)  # a FramesView reads stacks; its table holds the ids
    cols = [c.name for c in stored.schema if c.name.endswith("_frames")]
    lo, hi = max(stored.first_row, len(s) - s.window), len(s)
    first = None
    for a in range(lo, hi, 1 << 16):  # a block at a time: ids of a 1M-row window are 32 MB a column
        got = stored.read(cols, a, min(hi, a + (1 << 16)), "compact")
        m = min(int(v.min()) for v in got.values()) if cols else 0
        first = m if first is None else min(first, m)
    return 0 if first is None else first


def _write_compact(folder: str, seg, tw, k: int, codec: str, fsync: bool, narrow: set) -> None:
    final = os.path.join(folder, compact_name(tw.name, k))
    tmp = final + ".tmp"
    # Built in memory (as segments are) and written by the layer: h5py writing the file itself
    # crashed the process (SIGSEGV) when a write failed on a full disk. The image holds the
    # compressed segment only (0.2-0.4x its raw bytes), while the raw one is read a block at a time.
    with replacing(tmp, final, fsync, f"compacting segment {k} into {final}"):
        with h5py.File(seg.path, "r", locking=False) as src, hdf5_file(tmp) as f:
            for key, value in src.attrs.items():
                f.attrs[key] = value
            f.attrs["codec"] = codec
            for c in tw.stored:
                _write_column(f, c, np.asarray(seg.arrays[c.name]), tw.seg_rows, codec, _releaser(seg),
                              c.name in narrow)
            # the identity the mapped bytes were checked against, not the source's dataset (which a
            # hostile segment can point at another file)
            f.create_dataset(IDENTITY, data=np.frombuffer(identity_bytes(tw.uuid, tw.name, k), np.uint8))


def _releaser(seg):
    """A call that drops the pages of ``seg``'s mapping read so far from this process (they stay in
    the page cache): without it the mapped pages of a segment being compacted count in the RSS of
    the compacting process, up to a whole segment."""
    mm = getattr(seg, "mm", None)
    if mm is None or not hasattr(mm, "madvise"):
        return lambda: None
    return lambda: mm.madvise(mmap.MADV_DONTNEED)


def _write_column(f: h5py.File, c, src: np.ndarray, seg_rows: int, codec: str, release, narrow: bool = False) -> None:
    """Column ``c`` of a segment (``src``: its mapped rows) written chunk by chunk, ``release()``d
    every ``_BLOCK_BYTES`` read; a ``narrow`` one (blosc only) as one chunk, its bytes stored as
    they are (``_codec.NARROW_SHARE``)."""
    rpc = seg_rows if narrow else rows_per_chunk(codec, c.row_bytes, seg_rows)
    d = f.create_dataset(c.name, shape=(seg_rows, *c.shape), dtype=c.dtype, chunks=(rpc, *c.shape),
                         **dataset_options(codec))
    rest = (0,) * len(c.shape)
    if codec in BLOSC:
        # compressed here and handed to HDF5 as finished chunks: its filter pipeline (one chunk at a
        # time through the plugin, with a copy each way) is skipped, and the bytes are the filter's own.
        # (A second thread compressing ahead of the writer ran 20% slower here, on 2 loaded cores.)
        every = max(1, _BLOCK_BYTES // max(1, rpc * c.row_bytes))
        compress = stored if narrow else ColumnCompressor(codec)  # shuffled or not, as its chunks compress best
        for n, lo in enumerate(range(0, seg_rows, rpc), 1):
            block = src[lo:lo + rpc]
            if len(block) < rpc:  # an edge chunk is stored whole: pad it as HDF5 would
                block = np.concatenate([block, np.zeros((rpc - len(block), *c.shape), c.dtype)])
            d.id.write_direct_chunk((lo, *rest), compress(np.ascontiguousarray(block)))
            if n % every == 0:
                release()
        release()
        return
    step = max(rpc, (_BLOCK_BYTES // max(1, c.row_bytes)) // rpc * rpc)
    for lo in range(0, seg_rows, step):
        d[lo:lo + step] = src[lo:lo + step]
        release()

"""Compaction: full segments older than the replay window rewritten with a standard HDF5 filter.

``compact(path)`` takes the writer lock, writes ``<table>-NNNNNN.z.h5`` beside each raw segment
(chunked, gzip or lzf: stock h5py reads both), publishes a commit record that names them, and
only then deletes the raw files; a kill at any point leaves a readable store. Compacted rows
read identically; they are decompressed into memory a segment at a time when first read (the
sampler never reads them: they lie before the window), and their checksums still cover the
uncompressed bytes, so ``verify`` checks them the same way.
"""

from __future__ import annotations

import os
import stat

import h5py
import numpy as np

from ..format._format import TRANSITIONS, compact_name, segment_name
from ..files._fileio import layer, replacing
from ..format._segment import IDENTITY, identity_bytes
from ..files._untrusted import local_dataset
from ..files._h5image import hdf5_file
from ..errors import DamagedStoreError

FILTERS = ("gzip", "lzf")


class CompactSegment:
    """A compacted segment's columns, decompressed into memory on first use."""

    def __init__(self, path: str, expect_identity: bytes, schema, rows: int):
        self.path = path
        self.sealed_mtime = None
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):  # a symlink may point outside the store; a FIFO would hang HDF5
                raise DamagedStoreError(f"compacted segment {path} is not a regular file (mode "
                                        f"{stat.filemode(st.st_mode)}): a store keeps only regular files there")
            with h5py.File(path, "r", locking=False) as f:
                # every dataset is checked (no bytes of another file, no plugin filter, the expected
                # shape) before a byte of it is read: a store is data (_untrusted.py)
                ident = local_dataset(f, IDENTITY, (len(expect_identity),), np.uint8, path)
                if bytes(ident[:]) != expect_identity:
                    raise DamagedStoreError(f"compacted segment {path} belongs to another store or place")
                self.arrays = {c.name: local_dataset(f, c.name, (rows, *c.shape), c.dtype, path)[:]
                               for c in schema if c.row_bytes}
        except FileNotFoundError:
            raise DamagedStoreError(f"compacted segment {path} is missing: restore the store's .d folder") from None
        except (OSError, KeyError) as e:
            raise DamagedStoreError(f"compacted segment {path} is unreadable ({e})") from None
        for name, a in self.arrays.items():
            if len(a) != rows:
                raise DamagedStoreError(f"compacted segment {path}: column {name!r} has {len(a)} rows, not {rows}")

    def check(self) -> bool:
        return True  # in memory: nothing can change under it

    def close(self) -> None:
        self.arrays = {}


def compact(path, filter: str = "gzip", fsync: bool = False) -> list[int]:
    """Compact every full transition segment before the replay window; returns their indexes."""
    from ..read._store import ReplayStore

    if filter not in FILTERS:
        raise ValueError(f"filter={filter!r}: expected one of {FILTERS} (standard HDF5 filters stock h5py reads)")
    with ReplayStore.open(path, "a", fsync=fsync) as s:
        tw = s._tw
        t = s._record.tables[TRANSITIONS]
        last = (len(s) - s.window) >> tw.shift  # segments before this one hold no window row
        todo = [k for k in range(t.first_segment, last) if k not in t.compacted]
        view = s._views[TRANSITIONS]
        for k in todo:
            _write_compact(s._folder, view.segment(k), tw, k, filter, fsync)
        tw.compacted.update(todo)
        tw.segments_changed = bool(todo)
        s.commit()  # the record names the compacted files: from here on the raw ones are unused
        for k in todo:
            view.forget(k)
            layer().remove(os.path.join(s._folder, segment_name(TRANSITIONS, k)))
    return todo


def _write_compact(folder: str, seg, tw, k: int, filter: str, fsync: bool) -> None:
    final = os.path.join(folder, compact_name(tw.name, k))
    tmp = final + ".tmp"
    # Built in memory, as segments are, and written by the layer (create_new: no link followed):
    # h5py writing the file itself crashed the process (SIGSEGV) when a write failed on a full
    # disk (measured: a file size limit below a compacted segment). The image holds the compressed
    # segment, at most its raw bytes: no more than reading a compacted segment holds anyway.
    with replacing(tmp, final, fsync, f"compacting segment {k} into {final}"):
        with h5py.File(seg.path, "r", locking=False) as src, hdf5_file(tmp) as f:
            for key, value in src.attrs.items():
                f.attrs[key] = value
            f.attrs["compression"] = filter
            for c in tw.stored:
                rows = max(1, min(tw.seg_rows, (1 << 20) // c.row_bytes))
                f.create_dataset(c.name, data=np.asarray(seg.arrays[c.name]), chunks=(rows, *c.shape),
                                 compression=filter, shuffle=True)
            # the identity the mapped bytes were checked against, not the source's dataset (which a
            # hostile segment can point at another file)
            f.create_dataset(IDENTITY, data=np.frombuffer(identity_bytes(tw.uuid, tw.name, k), np.uint8))

"""One table's writing side (format 2): rows staged in memory, written into segment files with
``pwrite``, checksummed as they are written, sealed when a segment is full.

Nothing here changes any state a reader trusts: that is the commit record, written by the
``StoreWriter`` after ``flush_stage`` and ``seal`` have returned. A failed write changes nothing
in memory either (rows stay staged, checksums and counts unchanged), so a retry is exact.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..format import _checksum
from ..format._format import N_CODES, check_rows, segment_name, sums_name
from ..files._fileio import layer
from ..format._record import TableRecord, write_atomic, write_error
from ..format._schema import ACTOR, Schema
from ..format._segment import create_segment
from ..errors import StoreWriteError


# Blocks of this many rows or more skip the stage: copying them there first, and out again from the
# stage's shared float matrix (not contiguous per column), cost more than the pwrite itself.
WRITE_THROUGH = 1024


def finite_weights(n: int, dtype) -> np.ndarray:
    """Weights ``w`` for a finiteness test of ``n`` floats by one dot product ``x . w``.

    ``w`` is ``2**-k`` with ``2**k >= n``: every finite product is exact or tiny and their sum
    cannot overflow, while ``inf * w`` stays inf and a NaN stays NaN, so the dot is finite
    exactly when every ``x`` is (zeros would do the same, but ``0 * inf`` raises numpy's
    "invalid value" warning, an error under ``-W error``, before the store could say what is
    wrong). Only a row holding both +inf and -inf still sets that flag; callers treat the
    warning, or a FloatingPointError under ``np.seterr(all="raise")``, as "look closer"."""
    k = max(0, (int(n) - 1).bit_length())
    return np.full(int(n), 2.0 ** -k, dtype)


def _staging(schema: Schema, rows: int):
    """Staging arrays, one per column. The float array columns whose finiteness is checked, when
    there are several of one dtype, are views side by side in one matrix, so one dot product per
    row checks them all (the one-row append's costliest check). Returns the arrays and the groups
    as ``(matrix, weights, column names)`` (``finite_weights``)."""
    stage: dict[str, np.ndarray] = {}
    groups = []
    by_dtype: dict = {}
    for c in schema:
        if c.is_float and not c.allow_nonfinite and c.shape and c.row_bytes:
            by_dtype.setdefault(c.dtype, []).append(c)
    for dtype, cols in by_dtype.items():
        if len(cols) < 2:
            continue
        widths = [int(np.prod(c.shape)) for c in cols]
        matrix = np.empty((rows, sum(widths)), dtype)
        views, off = {}, 0
        for c, w in zip(cols, widths):
            view = matrix[:, off:off + w].reshape(rows, *c.shape)  # splits a contiguous axis: a view
            if not np.shares_memory(view, matrix):
                views = None
                break
            views[c.name] = view
            off += w
        if views:
            stage.update(views)
            groups.append((matrix, finite_weights(matrix.shape[1], dtype), tuple(views)))
    for c in schema:
        if c.name not in stage:
            stage[c.name] = np.empty((rows, *c.shape), c.dtype)
    return stage, groups


class TableWriter:
    """Staging, segment files and running checksums of one table."""

    def __init__(self, folder: str, store_uuid: str, name: str, schema: Schema, seg_rows: int, chunk_bytes: int,
                 stage_rows: int, fsync: bool, counted: bool):
        self.folder, self.uuid, self.name, self.schema = folder, store_uuid, name, schema
        self.seg_rows = seg_rows
        self.shift = seg_rows.bit_length() - 1
        self.fsync = fsync
        self.stored = [c for c in schema if c.row_bytes]
        self.check_rows = {c.name: check_rows(c, chunk_bytes, seg_rows) for c in self.stored}
        self.stage_rows = int(stage_rows)
        self.stage, self.finite_groups = _staging(schema, self.stage_rows)
        self.n_staged = 0
        self.rows_written = 0            # rows in segment files (committed or not)
        self.first_segment = 0
        self.layout: dict = {}           # offsets, identity, file_bytes (the same in every segment)
        self.sums: dict[int, dict[str, list]] = {}  # segment -> column -> checksum state per block
        self.hash = {c.name: _checksum.kind(c) for c in self.stored}  # a resumed table keeps its record's
        self.seg_counts: dict[int, np.ndarray] | None = {} if counted else None  # actor counts per segment
        self.to_seal: set[int] = set()
        self.compacted: set[int] = set()  # segments rewritten compressed (``_compact.py``)
        self.segments_changed = False    # the manifest's view of the segments is out of date
        self._fds: dict[int, int] = {}   # open segment files, by index
        self.before_flush = None          # called before staged rows are read (StoreWriter moves list-kept scalars)
        self.before_open = None           # called before a segment file is made or opened (StoreWriter checks its folder)
        self._unsynced: set[int] = set()
        self._trimmed: dict[int, list[int]] = {}   # full segments' actor counts, trimmed (see record)
        self._scratch: dict[str, np.ndarray] = {}  # per column, for stage columns that are not contiguous

    # ------------------------------------------------------------------ state
    @property
    def rows(self) -> int:
        """Rows accepted so far: written plus staged."""
        return self.rows_written + self.n_staged

    def new_sums(self) -> dict[str, list]:
        return {c.name: [_checksum.start(self.hash[c.name])] * -(-self.seg_rows // self.check_rows[c.name])
                for c in self.stored}

    def resume(self, t: TableRecord) -> None:
        """Continue after the committed state ``t`` (a new store's, or a recovered one's)."""
        self.rows_written, self.first_segment = t.rows, t.first_segment
        self.hash = dict(t.hashes)
        self.layout = {"offsets": dict(t.offsets), "identity": t.identity, "file_bytes": t.file_bytes}
        k = t.rows >> self.shift
        sums = self.new_sums()
        for c, v in t.tail_sums.items():
            sums[c][:len(v)] = [tuple(x) if isinstance(x, list) else x for x in v]
        self.sums = {k: sums}
        self.compacted = set(t.compacted)
        if self.seg_counts is not None:
            self.seg_counts = {j: _full(v) for j, v in t.segment_counts.items()}

    def record(self) -> TableRecord:
        """This table's committed state, once every written row is committed."""
        rows = self.rows_written
        k = rows >> self.shift
        local = rows - (k << self.shift)
        tail = {c: self.sums[k][c][:-(-local // self.check_rows[c])] for c in self.sums.get(k, {})}
        counts = {}
        if self.seg_counts is not None:
            # a full segment's counts never change: trim each once, not at every commit
            trimmed = self._trimmed
            for j in [j for j in trimmed if j < self.first_segment or j >= k]:
                del trimmed[j]
            for j, v in self.seg_counts.items():
                if self.first_segment <= j < k:
                    got = trimmed.get(j)
                    if got is None:
                        got = trimmed[j] = _trim(v)
                    counts[j] = got
        return TableRecord(self.schema.to_json(), rows, self.seg_rows, self.first_segment,
                           dict(self.layout["offsets"]), self.layout["identity"], self.layout["file_bytes"],
                           dict(self.check_rows), tail, counts,
                           sorted(k for k in self.compacted if k >= self.first_segment), dict(self.hash))

    # ------------------------------------------------------------------ segments
    def _fd(self, k: int) -> int:
        fd = self._fds.get(k)
        if fd is not None:
            return fd
        path = os.path.join(self.folder, segment_name(self.name, k))
        if self.before_open is not None:
            self.before_open()
        if not os.path.exists(path):
            layout = create_segment(self.folder, self.name, k, self.schema, self.seg_rows, self.uuid, self.fsync)
            if self.layout and layout != self.layout:
                raise write_error(f"creating segment {path}", OSError(0, f"its layout {layout} differs from the "
                                                                         f"store's {self.layout}"))
            self.layout = layout
            self.segments_changed = True
        try:
            fd = layer().open_write(path)
        except OSError as e:
            raise write_error(f"opening segment {path}", e) from e
        self._fds[k] = fd
        return fd

    def ensure_segment(self) -> None:
        """Create the segment the next row goes to (a new table's first), so the layout is known."""
        self._fd(self.rows_written >> self.shift)

    def write_block(self, block: dict[str, np.ndarray], n: int) -> None:
        """Write ``n`` validated rows after the rows written; on failure nothing is counted as written."""
        if n == 0:
            return
        r0, pos = self.rows_written, 0
        sums: dict[int, dict[str, list]] = {}
        counts: dict[int, np.ndarray] = {}
        offsets = None
        files = layer()
        try:
            while pos < n:
                k = (r0 + pos) >> self.shift
                local = r0 + pos - (k << self.shift)
                m = min(n - pos, self.seg_rows - local)
                fd = self._fd(k)
                offsets = self.layout["offsets"]
                seg_sums = sums[k] = {c: list(v) for c, v in self.sums.get(k, self.new_sums()).items()}
                for c in self.stored:
                    arr = self._contiguous(c, block[c.name][pos:pos + m])
                    files.pwrite(fd, arr, offsets[c.name] + local * c.row_bytes)
                    _update_sums(seg_sums[c.name], arr, local, self.check_rows[c.name], c.row_bytes, self.hash[c.name])
                self._unsynced.add(k)
                if self.seg_counts is not None:
                    counts[k] = np.bincount(block[ACTOR][pos:pos + m], minlength=N_CODES)
                pos += m
        except StoreWriteError:
            raise
        except OSError as e:
            raise write_error(f"writing rows [{r0}, {r0 + n}) of {self.name!r}", e) from e
        self.sums.update(sums)
        for k, v in counts.items():
            self.seg_counts[k] = self.seg_counts.get(k, np.zeros(N_CODES, np.int64)) + v
        self.rows_written = r0 + n
        self.to_seal.update(range(r0 >> self.shift, self.rows_written >> self.shift))

    def _contiguous(self, c, src: np.ndarray) -> np.ndarray:
        """``src`` as contiguous bytes of the column's dtype. A stage column that is a view into the
        shared float matrix is copied into a buffer kept for it: a new array at every flush paid
        fresh pages (a flush cost 0.92 us per appended row, 0.47 with the kept buffers)."""
        if src.dtype == c.dtype and src.flags.c_contiguous:
            return src
        if len(src) > self.stage_rows:
            return np.ascontiguousarray(src, dtype=c.dtype)
        buf = self._scratch.get(c.name)
        if buf is None:
            buf = self._scratch[c.name] = np.empty((self.stage_rows, *c.shape), c.dtype)
        out = buf[:len(src)]
        np.copyto(out, src, casting="same_kind")
        return out

    def use_compacted(self, ks) -> None:
        """Segments ``ks`` now have compacted copies (``tools/_compact.py``): the next record names
        those, and the manifest's view of the segments is out of date."""
        self.compacted.update(int(k) for k in ks)
        self.segments_changed = True

    def flush_stage(self) -> None:
        if self.before_flush is not None:
            self.before_flush()
        if self.n_staged:
            self.write_block(self.stage, self.n_staged)
            self.n_staged = 0

    def add_block(self, block: dict[str, np.ndarray], n: int) -> None:
        """Stage small blocks, write big ones through. Raises before accepting any row, or accepts all."""
        if self.n_staged + n > self.stage_rows or (n >= WRITE_THROUGH and self.n_staged):
            self.flush_stage()
        if n < WRITE_THROUGH and n <= self.stage_rows:
            i = self.n_staged
            for name, arr in block.items():
                self.stage[name][i:i + n] = arr
            self.n_staged = i + n
        else:
            self.write_block(block, n)

    def seal(self) -> None:
        """Write the checksum file of every segment that became full (before the record says so)."""
        for k in sorted(self.to_seal):
            doc = {"uuid": self.uuid, "table": self.name, "index": k, "rows": self.seg_rows,
                   "check_rows": self.check_rows, "sums": self.sums[k]}
            if self.seg_counts is not None:
                doc["counts"] = _trim(self.seg_counts[k])
            write_atomic(os.path.join(self.folder, sums_name(self.name, k)), json.dumps(doc).encode(), self.fsync,
                         "segment checksums")
            self.to_seal.discard(k)

    def sync(self) -> None:
        for k in sorted(self._unsynced):
            fd = self._fds.get(k)
            if fd is not None:
                try:
                    layer().fsync(fd)
                except OSError as e:
                    raise write_error(f"syncing segment {k} of {self.name!r}", e) from e
        self._unsynced.clear()

    def after_commit(self) -> None:
        """Close the files of segments no row will go to again; forget their sums."""
        cur = self.rows_written >> self.shift
        for k in [k for k in self._fds if k < cur]:
            layer().close(self._fds.pop(k))
        for k in [k for k in self.sums if k < cur]:
            del self.sums[k]

    def drop_before(self, first: int) -> list[int]:
        """Forget segments before ``first`` (retention); returns them, for the caller to delete."""
        gone = list(range(self.first_segment, first))
        self.first_segment = first
        if gone:
            self.segments_changed = True
        return gone

    def close(self) -> None:
        for fd in self._fds.values():
            layer().close(fd)
        self._fds.clear()


def _update_sums(sums: list, arr: np.ndarray, local: int, block_rows: int, row_bytes: int, kind: str) -> None:
    """Continue each block's checksum over the bytes of rows written at segment row ``local``."""
    data = memoryview(arr.reshape(-1).view(np.uint8))
    r, end = local, local + len(arr)
    while r < end:
        b = r // block_rows
        whole = (end - r) // block_rows if r == b * block_rows and kind != _checksum.CRC32 else 0
        if whole > 1:  # blocks written whole, in one reduction
            at = (r - local) * row_bytes
            words = np.frombuffer(data[at:at + whole * block_rows * row_bytes], "<u8").reshape(whole, -1)
            sums[b:b + whole] = _checksum.update_blocks(kind, sums[b:b + whole], words)
            r += whole * block_rows
            continue
        stop = min(end, (b + 1) * block_rows)
        sums[b] = _checksum.update(kind, sums[b], data[(r - local) * row_bytes:(stop - local) * row_bytes],
                                   (r - b * block_rows) * row_bytes)
        r = stop


def _trim(v: np.ndarray) -> list[int]:
    nz = np.flatnonzero(v)
    return v[:int(nz[-1]) + 1].tolist() if len(nz) else []


def _full(v: list[int]) -> np.ndarray:
    out = np.zeros(N_CODES, np.int64)
    out[:len(v)] = v
    return out

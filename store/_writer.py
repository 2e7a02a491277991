"""The writing side: rows staged in memory, written to HDF5 in blocks, committed on demand.

One ``TableWriter`` per table. Rows are copied into preallocated staging arrays (one-row appends
cost a few numpy assignments) and go to HDF5 a block at a time, which is where h5py is fast.
"""

from __future__ import annotations

import h5py
import numpy as np

from ._format import create_column_dataset, group_path, rows_per_chunk
from ._schema import Schema


def _staging(schema: Schema, rows: int):
    """Staging arrays, one per column. The float array columns whose finiteness is checked, when
    there are several of one dtype, are views side by side in one matrix, so one dot product per
    row checks them all (the one-row append's costliest check). Returns the arrays and the groups
    as ``(matrix, zeros, column names)``."""
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
            groups.append((matrix, np.zeros(matrix.shape[1], dtype), tuple(views)))
    for c in schema:
        if c.name not in stage:
            stage[c.name] = np.empty((rows, *c.shape), c.dtype)
    return stage, groups


class TableWriter:
    def __init__(self, f: h5py.File, name: str, schema: Schema, chunk_bytes: int, stage_rows: int,
                 committed_rows: int, create: bool):
        self.name = name
        self.schema = schema
        self.chunk_bytes = chunk_bytes
        if create:
            g = f.require_group(group_path(name))
            g.attrs["schema"] = schema.to_json()
            for c in schema:
                create_column_dataset(g, c, chunk_bytes)
        g = f[group_path(name)]
        self.group = g
        self.stored = [c for c in schema if c.row_bytes > 0]
        self.datasets = {c.name: g[c.name] for c in self.stored}
        self.rpc = {c.name: rows_per_chunk(c, chunk_bytes) for c in self.stored}
        self.stage_rows = int(stage_rows)
        self.stage, self.finite_groups = _staging(schema, self.stage_rows)
        self.n_staged = 0
        self.rows_written = committed_rows  # rows in the HDF5 datasets (committed or not)
        self.offsets: dict[str, np.ndarray] = {c.name: np.empty(0, np.int64) for c in self.stored}

    @property
    def rows(self) -> int:
        """Rows accepted so far: written plus staged."""
        return self.rows_written + self.n_staged

    def truncate_to(self, rows: int) -> None:
        """Drop rows past ``rows`` (uncommitted rows a dead writer left behind)."""
        for name, d in self.datasets.items():
            if d.shape[0] != rows:
                d.resize(rows, axis=0)
        self.rows_written = rows

    def write_block(self, block: dict[str, np.ndarray], n: int) -> None:
        """Write ``n`` validated rows straight to HDF5 (staging must be empty)."""
        if n == 0:
            return
        r0 = self.rows_written
        for c in self.stored:
            # Low-level calls: the high-level resize/__setitem__ spend more time in Python
            # selection logic than in HDF5 for the blocks we write.
            d = self.datasets[c.name].id
            arr = np.ascontiguousarray(block[c.name][:n], dtype=c.dtype)
            d.set_extent((r0 + n, *c.shape))
            fspace = d.get_space()
            fspace.select_hyperslab((r0, *(0,) * len(c.shape)), (n, *c.shape))
            d.write(h5py.h5s.create_simple((n, *c.shape)), fspace, arr)
        self.rows_written = r0 + n

    def flush_stage(self) -> None:
        if self.n_staged:
            n, self.n_staged = self.n_staged, 0
            self.write_block(self.stage, n)

    def add_block(self, block: dict[str, np.ndarray], n: int) -> None:
        """Stage small blocks, write big ones through."""
        if self.n_staged + n <= self.stage_rows:
            i = self.n_staged
            for name, arr in block.items():
                self.stage[name][i:i + n] = arr
            self.n_staged = i + n
            if self.n_staged == self.stage_rows:
                self.flush_stage()
            return
        self.flush_stage()
        self.write_block(block, n)

    def refresh_offsets(self, rows: int) -> dict[str, tuple[int, np.ndarray]]:
        """Byte offsets of every chunk holding rows ``[0, rows)``; only new chunks are looked up."""
        for c in self.stored:
            rpc = self.rpc[c.name]
            need = -(-rows // rpc)
            have = self.offsets[c.name]
            if need > len(have):
                d = self.datasets[c.name]
                zeros = (0,) * len(c.shape)
                new = [d.id.get_chunk_info_by_coord((k * rpc, *zeros)).byte_offset for k in range(len(have), need)]
                self.offsets[c.name] = np.concatenate([have, np.asarray(new, np.int64)])
        return {c.name: (self.rpc[c.name], self.offsets[c.name]) for c in self.stored}

    def load_offsets(self) -> None:
        """All existing chunk offsets, from the file (used on reopen)."""
        for c in self.stored:
            d = self.datasets[c.name]
            rpc = self.rpc[c.name]
            found: dict[int, int] = {}
            d.id.chunk_iter(lambda info: found.__setitem__(info.chunk_offset[0] // rpc, info.byte_offset))
            n = -(-d.shape[0] // rpc)
            missing = [k for k in range(n) if k not in found]
            if missing:
                from .errors import TruncatedStoreError

                raise TruncatedStoreError(
                    f"{self.name}/{c.name}: chunks {missing[:5]} of rows written are not allocated in the file"
                )
            self.offsets[c.name] = np.asarray([found[k] for k in range(n)], np.int64)

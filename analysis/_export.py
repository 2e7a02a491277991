"""Export committed rows as Parquet (pyarrow), to a local folder or any fsspec URL.

Columns keep their meaning in the Arrow types: ``actor`` is a dictionary of the vocabulary's
names (every file carries the whole vocabulary, so categories agree across files), an array
column of shape ``(k,)`` is a fixed-size list of ``k``, one of more dimensions is Arrow's
fixed-shape tensor; columns of width 0 hold no data and are left out (the schema in the
provenance still names them). Each file's metadata key ``replaystore`` holds its provenance as
JSON: the store's uuid and path, the shard and run where there is one, the row range, the schema
and vocabulary, and the store's format version.

Rows are read in blocks of ``row_group_bytes`` (one Parquet row group each) and files are closed
at ``file_bytes`` (uncompressed): hundreds of MB per file by default, never one per episode.
A run gives one file set per shard, in hive-style folders ``shard=<name>/`` that pyarrow, pandas,
Dask and DuckDB read back as a ``shard`` column.
"""

from __future__ import annotations

import json
import os
import posixpath
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from replaystore.store import FORMAT_VERSION, ReplayStore, Run

EXPORT_KEY = b"replaystore"
ROW_GROUP_BYTES = 128 << 20
FILE_BYTES = 512 << 20


@dataclass(frozen=True)
class ExportedFile:
    """One written file: where it is, which shard (None for a single store) and which rows."""
    path: str
    shard: str | None
    start: int
    stop: int


def export_parquet(source, dest: str, *, row_group_bytes: int = ROW_GROUP_BYTES, file_bytes: int = FILE_BYTES,
                   compression: str = "zstd", storage_options: Mapping | None = None,
                   progress: bool | str = "auto") -> list[ExportedFile]:
    """Write the committed rows of ``source`` (a store or run, or a path to one) under ``dest``.

    ``dest`` is a folder path or an fsspec URL (``s3://bucket/prefix``; ``storage_options`` go to
    the filesystem, e.g. ``{"endpoint_url": ...}``); it must not exist yet or be empty. Rows
    committed after the export starts are not included. Returns the files written, in order.
    """
    pa, pq = _pyarrow("export_parquet()")
    import fsspec

    if int(row_group_bytes) <= 0 or int(file_bytes) < int(row_group_bytes):
        raise ValueError(f"row_group_bytes={row_group_bytes}, file_bytes={file_bytes}: expected 0 < row_group_bytes "
                         "<= file_bytes")
    fs, root = fsspec.core.url_to_fs(os.fspath(dest), **dict(storage_options or {}))
    if fs.exists(root) and (not fs.isdir(root) or fs.ls(root)):
        raise FileExistsError(f"{dest} already exists and is not an empty folder; export into a new folder")
    run = source if isinstance(source, Run) else (Run.open(source) if _is_run(source) else None)
    written: list[ExportedFile] = []
    if run is not None:
        for name in run.shards():
            with run.open_shard(name) as store:
                written += _export_store(pa, pq, fs, posixpath.join(root, f"shard={name}"), store, name, run,
                                         row_group_bytes, file_bytes, compression, progress, _proto(fs))
    else:
        store, owns = (source, False) if isinstance(source, ReplayStore) else (ReplayStore.open(source, "r"), True)
        try:
            written = _export_store(pa, pq, fs, root, store, None, None, row_group_bytes, file_bytes, compression,
                                    progress, _proto(fs))
        finally:
            if owns:
                store.close()
    return written


def _export_store(pa, pq, fs, folder, store, shard, run, row_group_bytes, file_bytes, compression, progress,
                  proto) -> list[ExportedFile]:
    from tqdm import tqdm

    n = len(store)  # the committed rows now: later commits are not part of this export
    cols = [c for c in store.schema if int(np.prod(c.shape, dtype=np.int64)) > 0]
    row_bytes = max(1, sum(c.row_bytes for c in cols))
    group = max(1, int(row_group_bytes) // row_bytes)
    per_file = max(1, int(file_bytes) // row_bytes) // group * group
    schema = _arrow_schema(pa, cols, store.actors.names)
    fs.makedirs(folder, exist_ok=True)
    bar = tqdm(total=n, desc=f"export {shard or os.path.basename(store.path)}", unit="row", leave=False,
               disable=not _show(progress, n))
    out = []
    try:
        for k, start in enumerate(range(0, n, per_file)):
            stop = min(n, start + per_file)
            path = posixpath.join(folder, f"part-{k:05d}.parquet")
            meta = _provenance(store, shard, run, start, stop)
            with pq.ParquetWriter(path, schema.with_metadata({EXPORT_KEY: meta}), filesystem=fs,
                                  compression=compression) as w:
                for a in range(start, stop, group):
                    z = min(stop, a + group)
                    w.write_table(_arrow_table(pa, schema, cols, store.read([c.name for c in cols], a, z),
                                               store.actors.names), row_group_size=z - a)
                    bar.update(z - a)
            out.append(ExportedFile(proto + path, shard, start, stop))
    finally:
        bar.close()
    return out


def _arrow_schema(pa, cols, actor_names):
    fields = []
    for c in cols:
        if c.name == "actor":
            t = pa.dictionary(pa.uint8(), pa.string())
        else:
            t = pa.from_numpy_dtype(c.dtype)
            if len(c.shape) == 1:
                t = pa.list_(t, c.shape[0])
            elif len(c.shape) > 1:
                t = pa.fixed_shape_tensor(t, list(c.shape))
        fields.append(pa.field(c.name, t, nullable=False))
    return pa.schema(fields)


def _arrow_table(pa, schema, cols, data, actor_names):
    names = pa.array(list(actor_names), pa.string())
    arrays = []
    for c in cols:
        v = data[c.name]
        if c.name == "actor":
            arrays.append(pa.DictionaryArray.from_arrays(pa.array(v, pa.uint8()), names))
        elif len(c.shape) == 1:
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), c.shape[0]))
        elif len(c.shape) > 1:
            arrays.append(pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(v)))
        else:
            arrays.append(pa.array(v))
    return pa.Table.from_arrays(arrays, schema=schema)


def _provenance(store, shard, run, start, stop) -> bytes:
    from replaystore.common import __version__

    d = {
        "store_uuid": store.uuid, "store_path": os.path.abspath(store.path), "shard": shard,
        "run_uuid": run.uuid if run is not None else None,
        "run_path": os.path.abspath(run.path) if run is not None else None,
        "rows": [start, stop], "schema": json.loads(store.schema.to_json()), "actors": list(store.actors.names),
        "store_format_version": FORMAT_VERSION, "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "replaystore_version": __version__, "metadata": store.metadata,
        "omitted_columns": [c.name for c in store.schema if int(np.prod(c.shape, dtype=np.int64)) == 0],
    }
    return json.dumps(d).encode()


def provenance(path: str, storage_options: Mapping | None = None) -> dict:
    """The provenance an exported Parquet file carries (see the module's docstring)."""
    _, pq = _pyarrow("provenance()")
    import fsspec

    fs, p = fsspec.core.url_to_fs(path, **dict(storage_options or {}))
    meta = pq.read_schema(p, filesystem=fs).metadata or {}
    if EXPORT_KEY not in meta:
        raise ValueError(f"{path} has no replaystore provenance: it was not written by export_parquet")
    return json.loads(meta[EXPORT_KEY])


def _is_run(source) -> bool:
    return isinstance(source, (str, os.PathLike)) and Run.is_run(source)


def _proto(fs) -> str:
    p = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return "" if p in ("file", "local") else f"{p}://"


def _show(progress, n) -> bool:
    import sys

    return bool(progress) and (progress != "auto" or (sys.stderr.isatty() and n >= 100_000))


def _pyarrow(feature: str = "Parquet export"):
    from replaystore.common.extras import require_extra

    require_extra("parquet", feature)  # MissingExtraError (an ImportError) naming [parquet]
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pa, pq

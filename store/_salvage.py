"""Rebuild a store whose HDF5 metadata is damaged, from its commit record and the mapped chunks.

A kill during an HDF5 flush can, in principle, leave the file's metadata unreadable while every
committed row still sits at the byte offsets the commit record lists. Readers never need HDF5,
so they read such a file as it is; a writer rebuilds it here before appending. The damaged file
is kept beside the new one (``<path>.damaged-<time>``) as evidence.
"""

from __future__ import annotations

import json
import os
import time

from ._commit import CommitRecord
from ._format import FORMAT_NAME, FORMAT_VERSION, open_h5
from ._mapped import ColumnMap, MappedFile
from ._schema import Schema
from ._writer import TableWriter

_BLOCK = 65536


def salvage(path: str, record: CommitRecord) -> str:
    """Write a fresh file holding exactly the committed rows of ``record``; returns the damaged file's new name."""
    mf = MappedFile(path)
    mf.ensure(record.bytes_needed())
    attrs = record.attrs
    chunk_bytes = int(attrs["chunk_bytes"])
    tmp = f"{path}.salvage"
    f = open_h5(tmp, "w", chunk_bytes)
    try:
        a = f.attrs
        a["format"] = FORMAT_NAME
        a["format_version"] = FORMAT_VERSION
        a["uuid"] = record.uuid
        for key in ("schema", "actors", "metadata", "created"):
            a[key] = attrs[key]
        a["window"] = int(attrs["window"])
        a["chunk_bytes"] = chunk_bytes
        a["committed"] = json.dumps({k: t.rows for k, t in record.tables.items()})
        a["actor_counts"] = json.dumps(record.actor_counts)
        a["checkpoints"] = json.dumps(record.checkpoints)
        a["extra"] = json.dumps(record.extra)
        for name, t in record.tables.items():
            schema = Schema.from_json(t.schema_json)
            tw = TableWriter(f, name, schema, chunk_bytes, 1, 0, create=True)
            maps = {n: ColumnMap(schema[n], rpc, off) for n, (rpc, off) in t.chunks.items()}
            for start in range(0, t.rows, _BLOCK):
                stop = min(t.rows, start + _BLOCK)
                tw.write_block({n: m.read(mf, start, stop) for n, m in maps.items()}, stop - start)
    finally:
        f.close()
        mf.close()
    damaged = f"{path}.damaged-{time.strftime('%Y%m%dT%H%M%S')}"
    os.replace(path, damaged)
    os.replace(tmp, path)
    return damaged

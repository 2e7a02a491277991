"""Format-1 stores (one chunked HDF5 file), opened read-only.

Their committed counts and chunk offsets come from the file's own attributes and chunk index,
read once at open; rows are then read through the mapping like format 2. Actor counts are
counted from the rows themselves, so a file whose actor bytes were damaged reports what it holds.
``replaystore convert OLD NEW`` writes a format-2 copy that can be appended to.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from ..format._format import ACTOR_PREFIX, TRANSITIONS, group_path, rows_per_chunk
from ..files._mapped import ColumnMap, MappedFile
from ..format._schema import Schema
from ..files._untrusted import loads, own_dataset, own_group
from ._views import MappedTable
from ..errors import DamagedStoreError, TruncatedStoreError


def _offsets(d: h5py.Dataset, rpc: int, rows: int, where: str) -> np.ndarray:
    found: dict[int, int] = {}
    d.id.chunk_iter(lambda info: found.__setitem__(info.chunk_offset[0] // rpc, info.byte_offset))
    need = -(-rows // rpc)
    missing = [k for k in range(need) if k not in found]
    if missing:
        raise TruncatedStoreError(f"{where}: chunks {missing[:5]} of committed rows are not in the file")
    return np.asarray([found[k] for k in range(need)], np.int64)


def load_v1(f: h5py.File, path: str) -> dict:
    """Everything a reader needs from an open format-1 file: attributes and mapped tables."""
    a = f.attrs
    try:
        committed = loads(a["committed"], f"{path}: attribute 'committed'")
        chunk_bytes = int(a["chunk_bytes"])
        info = {
            "uuid": str(a["uuid"]), "schema": str(a["schema"]), "actors": str(a["actors"]),
            "window": int(a["window"]), "metadata": str(a["metadata"]), "created": str(a["created"]),
            "chunk_bytes": chunk_bytes, "checkpoints": loads(a["checkpoints"], f"{path}: attribute 'checkpoints'"),
            "extra": loads(a.get("extra", "{}"), f"{path}: attribute 'extra'"),
            "recovery": loads(a["recovery"], f"{path}: attribute 'recovery'") if "recovery" in a else None,
        }
        mf = MappedFile(path)
        tables, end = {}, 0
        for name, rows in committed.items():
            if name == ACTOR_PREFIX:
                continue
            rows = int(rows)
            g = own_group(f, group_path(name), path)  # a link would make HDF5 open another file
            schema = Schema.from_json(g.attrs["schema"])
            maps = {}
            for c in schema:
                if not c.row_bytes:
                    continue
                rpc = rows_per_chunk(c, chunk_bytes)
                off = _offsets(own_dataset(g, c.name, path), rpc, rows, f"{path}:{name}/{c.name}")
                maps[c.name] = ColumnMap(c, rpc, off)
                if rows:
                    end = max(end, int(off[(rows - 1) // rpc]) + ((rows - 1) % rpc + 1) * c.row_bytes)
            tables[name] = (schema, rows, maps)
    except (TruncatedStoreError, DamagedStoreError):
        raise
    except Exception as e:
        raise DamagedStoreError(f"{path}: a format-1 store whose attributes or chunk index are damaged "
                                f"({type(e).__name__}: {e})") from None
    mf.ensure(end)
    info["tables"] = {name: MappedTable(name, schema, rows, maps, mf) for name, (schema, rows, maps) in tables.items()}
    if TRANSITIONS not in info["tables"]:
        raise DamagedStoreError(f"{path}: a format-1 store without a transitions table")
    info["file_bytes"] = os.path.getsize(path)
    return info

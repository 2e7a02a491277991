"""``verify``: re-read every committed byte of a store and compare it with the checksums recorded
when it was committed (one per block of about ``chunk_bytes`` per column; see ``_checksum.py``).

A full segment's checksums are in its ``.sums`` file (written once, when it filled); the last,
open segment's are in the commit record. A mismatch names the table, the column and the rows.
"""

from __future__ import annotations

import json
import os

import numpy as np

from . import _checksum
from ._format import sums_name
from ._record import read_regular_file
from ._untrusted import loads
from .errors import DamagedStoreError, StoreError


def verify(store) -> list[dict]:
    """Every mismatch in the committed rows of ``store`` (an open format-2 store), as dicts with
    ``table``, ``column``, ``rows`` (``[first, stop)``) and ``problem``. Empty when all is intact."""
    if store.format_version != 2:
        raise DamagedStoreError(f"verify: {store.path} is a format-{store.format_version} store, which has no "
                                "checksums; `replaystore convert` writes a format-2 copy that has them")
    found = []
    rec = store._record
    folder = store.path + ".d"
    for name, t in rec.tables.items():
        view = store._views[name]
        last = (t.rows - 1) >> view.shift if t.rows else t.first_segment - 1
        for k in range(t.first_segment, last + 1):
            lo = k * t.segment_rows
            try:
                seg = view.segment(k)
                seg.check()
                found += segment_findings(folder, rec.uuid, name, t, k, seg)
            except StoreError as e:
                found.append({"table": name, "column": None, "rows": [lo, min(t.rows, lo + t.segment_rows)],
                              "problem": str(e)})
    return found


def segment_findings(folder: str, store_uuid: str, name: str, t, k: int, seg) -> list[dict]:
    """Mismatches between segment ``k``'s committed bytes and their checksums."""
    lo = k * t.segment_rows
    n = min(t.segment_rows, t.rows - lo)
    sums = t.tail_sums if lo + t.segment_rows > t.rows else _sealed_sums(folder, store_uuid, name, k)
    found = []
    for col, block in t.check_rows.items():
        arr = seg.arrays[col]  # mapped rows, or a compacted column (decompressed a block at a time)
        want = sums.get(col, [])
        k_ = t.hashes[col]
        for b in range(-(-n // block)):
            r0, r1 = b * block, min(n, (b + 1) * block)
            data = memoryview(np.ascontiguousarray(arr[r0:r1]).reshape(-1).view("u1"))
            got = _checksum.update(k_, _checksum.start(k_), data, 0)
            if b >= len(want) or not _checksum.same(k_, want[b], got):
                found.append({"table": name, "column": col, "rows": [lo + r0, lo + r1],
                              "problem": "checksum mismatch" if b < len(want) else "no checksum recorded"})
    return found


def _sealed_sums(folder: str, store_uuid: str, table: str, k: int) -> dict:
    p = os.path.join(folder, sums_name(table, k))
    got = read_regular_file(p, "segment checksums")
    if got is None:
        raise DamagedStoreError(f"the checksum file {p} of a full segment is missing")
    d = loads(got[0], f"segment checksums {p}")
    if not isinstance(d, dict) or d.get("uuid") != store_uuid or d.get("index") != k or d.get("table") != table:
        raise DamagedStoreError(f"the checksum file {p} belongs to another segment or store")
    sums = d.get("sums", {})
    if not isinstance(sums, dict) or not all(isinstance(v, list) for v in sums.values()):
        raise DamagedStoreError(f"the checksum file {p} is damaged: 'sums' is not a mapping of column to checksums")
    return sums


def format_findings(path: str, found: list[dict], rows: dict[str, int]) -> str:
    if not found:
        return f"ok: every committed row of {path} matches its checksums ({json.dumps(rows)})"
    lines = [f"{path}: {len(found)} damaged block(s)"]
    for f in found:
        col = f" column {f['column']!r}" if f["column"] else ""
        lines.append(f"  table {f['table']!r}{col} rows [{f['rows'][0]}, {f['rows'][1]}): {f['problem']}")
    return "\n".join(lines)




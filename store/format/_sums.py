"""A segment's recorded checksums: its ``.sums`` file once full (the commit record's tail sums
while open), and the blocks of its committed bytes that no longer match them.

Both roles use it: ``verify`` (tools) walks every segment, and a reader's view (``_views``) checks
a sealed segment whose file changed since it was sealed. It sits with the format, below both, so
the reading side no longer imports the verify tool.
"""

from __future__ import annotations

import os

import numpy as np

from . import _checksum
from ..files._fileio import read_regular_file
from ._format import sums_name
from ..files._untrusted import loads
from ..errors import DamagedStoreError


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

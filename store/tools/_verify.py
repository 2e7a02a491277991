"""``verify``: re-read every committed byte of a store and compare it with the checksums recorded
when it was committed (one per block of about ``chunk_bytes`` per column; see ``_checksum.py``).

A full segment's checksums are in its ``.sums`` file (written once, when it filled); the last,
open segment's are in the commit record. A mismatch names the table, the column and the rows.
"""

from __future__ import annotations

import json

from ..format._sums import segment_findings
from ..errors import DamagedStoreError, StoreError


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


def format_findings(path: str, found: list[dict], rows: dict[str, int]) -> str:
    if not found:
        return f"ok: every committed row of {path} matches its checksums ({json.dumps(rows)})"
    lines = [f"{path}: {len(found)} damaged block(s)"]
    for f in found:
        col = f" column {f['column']!r}" if f["column"] else ""
        lines.append(f"  table {f['table']!r}{col} rows [{f['rows'][0]}, {f['rows'][1]}): {f['problem']}")
    return "\n".join(lines)




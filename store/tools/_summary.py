"""A JSON-able summary of a store (what ``replaystore info`` prints)."""

from __future__ import annotations

import os

from ..format import _record
from ..format._format import segment_dir


def summarize(store) -> dict:
    """Rows, window, actors (counts and fractions, whole store and window), columns, tables,
    size on disk, format version, and the last writer's fate, from counts the store maintains."""
    whole = store.actor_composition(window=False)
    win = store.actor_composition(window=True)
    ws = store.writer_state
    rec = ws.get("recovery") or None
    return {
        "path": os.path.abspath(store.path),
        "format_version": store.format_version,
        "rows": len(store),
        "window": store.window,
        "window_rows": win["total"],
        "actors": {
            name: {"code": code, "count": whole["counts"][name], "fraction": whole["fractions"][name],
                   "window_count": win["counts"][name], "window_fraction": win["fractions"][name]}
            for code, name in enumerate(store.actors.names)
        },
        # rows whose actor byte is outside the vocabulary (a damaged or foreign file): {code: rows}
        "unknown_actor_codes": {str(k): v for k, v in whole["unknown"]["codes"].items()},
        "window_unknown_actor_codes": {str(k): v for k, v in win["unknown"]["codes"].items()},
        "columns": [{"name": c.name, "dtype": c.dtype.name, "shape": list(c.shape)} for c in store.schema],
        "tables": store.tables,
        "checkpoints": len(store.checkpoints),
        # Segment space is allocated at creation but written as rows arrive: the unwritten rest of
        # a segment is a hole, so the bytes on disk can be far fewer than the files' length.
        "size_bytes": sum(st.st_blocks * 512 for st in _files(store.path)),
        "apparent_bytes": sum(st.st_size for st in _files(store.path)),
        "writer": {
            "live": ws["live"],
            "died": ws["died"],
            # a reader of a store whose writer died sees exactly what recovery will keep
            "rows_recovery_keeps": len(store) if ws["died"] else None,
            "last_recovery": rec,
        },
        "metadata": store.metadata,
    }


def _files(path: str) -> list[os.stat_result]:
    """The store's files: the HDF5 file, its commit record and (format 2) its segment folder."""
    paths = [path, _record.record_path(path)]
    folder = segment_dir(path)
    if os.path.isdir(folder):
        paths += [os.path.join(folder, n) for n in os.listdir(folder)]
    out = []
    for p in paths:
        try:
            out.append(os.stat(p))
        except FileNotFoundError:  # a writer may delete a segment meanwhile
            pass
    return out


def format_summary(s: dict) -> str:
    lines = [
        f"store          {s['path']}",
        f"format         replaystore v{s['format_version']}",
        f"rows           {s['rows']:,} committed (window {s['window']:,}: {s['window_rows']:,} rows in it)",
        f"size on disk   {s['size_bytes'] / 1e6:,.2f} MB (file length {s['apparent_bytes'] / 1e6:,.2f} MB; "
        "segment space not yet written is sparse)",
        "actors         " + ("(none)" if not s["actors"] else ""),
    ]
    for name, a in s["actors"].items():
        lines.append(f"  {a['code']:>3} {name:<12} {a['count']:>12,} ({a['fraction']:6.1%})   "
                     f"window {a['window_count']:>12,} ({a['window_fraction']:6.1%})")
    if s["unknown_actor_codes"]:
        codes = ", ".join(f"code {k}: {v:,}" for k, v in s["unknown_actor_codes"].items())
        wcodes = ", ".join(f"code {k}: {v:,}" for k, v in s["window_unknown_actor_codes"].items()) or "none"
        lines.append(f"  UNKNOWN actor codes (outside the vocabulary) {codes}; in the window: {wcodes}")
    lines.append("columns")
    for c in s["columns"]:
        lines.append(f"  {c['name']:<20} {c['dtype']:<8} {tuple(c['shape'])}")
    other = {k: v for k, v in s["tables"].items() if k != "transitions"}
    if other:
        lines.append("tables         " + ", ".join(f"{k}: {v:,} rows" for k, v in other.items()))
    if s["checkpoints"]:
        lines.append(f"checkpoints    {s['checkpoints']}")
    w = s["writer"]
    if w["died"]:
        lines.append(f"writer         DIED before closing; recovery keeps the {w['rows_recovery_keeps']:,} committed rows "
                     "(opening with mode 'a' recovers it)")
    elif w["live"]:
        lines.append("writer         live (a process is appending; figures are its last commit)")
    else:
        lines.append("writer         closed cleanly")
    if w["last_recovery"]:
        r = w["last_recovery"]
        lines.append(f"last recovery  writer pid {r.get('dead_pid')} had died; {r.get('rows_kept', 0):,} committed rows kept")
    if s["metadata"]:
        keys = ", ".join(f"{k}={v!r}" for k, v in s["metadata"].items() if not isinstance(v, (dict, list)))
        lines.append(f"metadata       {keys}")
    return "\n".join(lines)

"""``replaystore verify PATH [--json]``: re-read every committed row and check it against its checksums."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="the store's .h5 file")
    p.add_argument("--json", action="store_true",
                   help='print {"path", "ok", "rows" per table, "damaged": [{table, column, rows, problem}]} as JSON')
    p.epilog = "for this command: 0 every committed row matches its checksums, 1 damage found (listed), 2 unreadable store\n\n" + (p.epilog or "")


def run(args: argparse.Namespace) -> int:
    from replaystore.store import ReplayStore
    from replaystore.store import format_findings, verify
    from replaystore.store.errors import StoreError

    try:
        with ReplayStore.open(args.path, "r") as s:
            found = verify(s)
            rows = s.tables
    except (StoreError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"path": args.path, "ok": not found, "rows": rows, "damaged": found}, indent=2))
    else:
        print(format_findings(args.path, found, rows))
    return 1 if found else 0

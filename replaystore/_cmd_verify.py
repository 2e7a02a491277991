"""``replaystore verify PATH``: re-read every committed row and check it against its checksums."""

from __future__ import annotations

import sys


def add_arguments(p) -> None:
    p.add_argument("path", help="the store's .h5 file")
    p.epilog = "for this command: 0 every committed row matches its checksums, 1 damage found (listed), 2 unreadable store\n\n" + (p.epilog or "")


def run(args) -> int:
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
    print(format_findings(args.path, found, rows))
    return 1 if found else 0

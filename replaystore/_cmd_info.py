"""``replaystore info PATH [--json]``."""

from __future__ import annotations

import json
import sys


def add_arguments(p) -> None:
    p.add_argument("path", help="the store's .h5 file")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args) -> int:
    from replaystore.store import ReplayStore
    from replaystore.store import format_summary, summarize
    from replaystore.store.errors import StoreError

    try:
        with ReplayStore.open(args.path, "r") as s:
            summary = summarize(s)
    except (StoreError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0

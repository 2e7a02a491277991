"""``replaystore compact PATH [--json]``: rewrite full segments older than the replay window compressed."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="the store's .h5 file (no writer may hold it)")
    p.add_argument("--filter", default="gzip", choices=("gzip", "lzf"),
                   help="HDF5 compression filter (both read by stock h5py)")
    p.add_argument("--json", action="store_true",
                   help='print {"path", "filter", "segments": [indexes compacted]} as JSON')
    p.epilog = "for this command: 0 compacted (or nothing to do), 2 unreadable store or a live writer\n\n" + (p.epilog or "")


def run(args: argparse.Namespace) -> int:
    from replaystore.store import compact
    from replaystore.store.errors import StoreError

    try:
        done = compact(args.path, args.filter.lower())
    except (StoreError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"path": args.path, "filter": args.filter.lower(), "segments": sorted(done)}))
        return 0
    print(f"compacted {len(done)} segment(s) of {args.path} with {args.filter}" if done else
          f"nothing to compact in {args.path}: no full segment lies wholly before the replay window")
    return 0

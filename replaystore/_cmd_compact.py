"""``replaystore compact PATH [--codec C] [--sealed] [--json]``: rewrite sealed segments compressed."""

from __future__ import annotations

import argparse
import json
import sys
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    from replaystore.store import CODECS, DEFAULT_CODEC

    p.add_argument("path", help="the store's .h5 file (no writer may hold it)")
    p.add_argument("--codec", choices=CODECS, default=None,
                   help=f"compression (default {DEFAULT_CODEC}: Blosc/LZ4, read by stock h5py after `import hdf5plugin`, "
                        "needs the [archive] extra; gzip and lzf are HDF5's built-in filters, ~10x slower)")
    p.add_argument("--filter", choices=("gzip", "lzf"), default=None,
                   help="the old name of --codec gzip|lzf, kept for scripts written before --codec")
    p.add_argument("--sealed", action="store_true",
                   help="compact every full segment of every table, the replay window too (the sampler then "
                        "decompresses the chunks each batch needs); by default only what no sampler reads")
    p.add_argument("--json", action="store_true",
                   help='print {"path", "codec", "segments": [transitions indexes], "tables": {table: [indexes]}, '
                        '"seconds"} as JSON')
    p.epilog = ("for this command: 0 compacted (or nothing to do), 2 unreadable store, a live writer or a missing "
                "extra\n\n" + (p.epilog or ""))


def run(args: argparse.Namespace) -> int:
    from replaystore.store import DEFAULT_CODEC
    from replaystore.store import compact_tables
    from replaystore.store.errors import StoreError

    if args.codec and args.filter and args.codec != args.filter:
        print(f"error: --codec {args.codec} and --filter {args.filter} disagree: pass only --codec", file=sys.stderr)
        return 2
    codec = args.codec or args.filter or DEFAULT_CODEC
    started = time.perf_counter()
    try:
        done = compact_tables(args.path, codec, sealed=args.sealed)
    except ImportError as e:  # MissingExtraError: the one line naming the extra
        print(f"error: {e} (or pass --codec gzip)", file=sys.stderr)
        return 2
    except (StoreError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"path": args.path, "codec": codec, "filter": codec,
                          "segments": sorted(done.get("transitions", [])), "tables": done,
                          "seconds": round(time.perf_counter() - started, 3)}))
        return 0
    n = sum(len(v) for v in done.values())
    print(f"compacted {n} segment(s) of {args.path} with {codec}" if n else
          f"nothing to compact in {args.path}: no full segment lies wholly before the replay window")
    return 0

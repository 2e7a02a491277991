"""``replaystore export PATH --format parquet --out DEST``: committed rows as Parquet files."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a store's .h5 file or a run folder (one file set per shard)")
    p.add_argument("--format", required=True, choices=["parquet"], help="the output format")
    p.add_argument("--out", required=True, metavar="DEST",
                   help="a new (or empty) folder, or an fsspec URL such as s3://bucket/prefix")
    p.add_argument("--row-group-mb", type=float, default=128, help="uncompressed MB per row group")
    p.add_argument("--file-mb", type=float, default=512, help="uncompressed MB per file")
    p.add_argument("--compression", default="zstd", help="Parquet compression codec")
    p.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an fsspec filesystem option (repeatable), e.g. endpoint_url=http://127.0.0.1:9000; "
                        "a value that parses as JSON is taken as JSON")
    p.add_argument("--json", action="store_true",
                   help='print {"out", "rows", "files": [{path, shard, start, stop, rows}]} as JSON')


def _options(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--storage-option {pair!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def run(args: argparse.Namespace) -> int:
    from replaystore.common.extras import require_extra
    from replaystore.store.errors import StoreError

    require_extra("parquet", "replaystore export --format parquet")  # before anything is created
    if "://" in args.out and args.out.split("://", 1)[0] == "s3":
        require_extra("s3", f"replaystore export --out {args.out}")
    try:
        from replaystore.analysis import export_parquet

        files = export_parquet(args.path, args.out, row_group_bytes=int(args.row_group_mb * 2**20),
                               file_bytes=int(args.file_mb * 2**20), compression=args.compression,
                               storage_options=_options(args.storage_option), progress="auto")
    except (StoreError, ValueError, ImportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = sum(f.stop - f.start for f in files)
    if args.json:
        print(json.dumps({"out": args.out, "rows": rows, "files": [
            {"path": f.path, "shard": f.shard, "start": f.start, "stop": f.stop, "rows": f.stop - f.start}
            for f in files]}, indent=2))
        return 0
    shards = sorted({f.shard for f in files if f.shard is not None})
    print(f"exported {rows:,} rows to {len(files)} Parquet file(s) under {args.out}"
          + (f" ({len(shards)} shards)" if shards else ""))
    return 0

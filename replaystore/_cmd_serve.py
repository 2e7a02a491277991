"""``replaystore serve PATH [--host H] [--port N] [--token-file F] [--tls-cert C --tls-key K] ...``.

Serves a run (ingestion: each client its own shard; sampling) or a store (sampling only) over
Arrow Flight; the protocol is PROTOCOL.md. Prints one line, ``serving PATH at LOCATION``, to
stdout once the port is bound (``--port 0`` picks a free one), then runs until SIGTERM or Ctrl-C.
The token is read from a file or the environment, never from the command line (which every
user of the machine can read in the process list).
"""

from __future__ import annotations

import os
import sys


def add_arguments(p) -> None:
    p.add_argument("path", help="a run folder (Run.create; clients write their own shards) or a store (sampled only)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind; anything but loopback needs a token (--token-file or $REPLAYSTORE_TOKEN)")
    p.add_argument("--port", type=int, default=8815, help="port to bind (0: a free one, printed at start)")
    p.add_argument("--token-file", help="file holding the token every call must send as 'authorization: Bearer "
                                        "<token>' (default: $REPLAYSTORE_TOKEN if set, else no token)")
    p.add_argument("--tls-cert", help="PEM certificate chain: serve grpc+tls (with --tls-key)")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--commit-every", type=int, default=4096, help="each client shard commits every N rows ...")
    p.add_argument("--commit-seconds", type=float, default=1.0, help="... or every S seconds, and when asked")
    p.add_argument("--fsync", action="store_true", help="fsync every commit of the clients' shards (power loss)")
    p.add_argument("--samples-per-insert", type=float,
                   help="rate limiter: rows sampled per row inserted (off unless given)")
    p.add_argument("--min-size-to-sample", type=int, default=1, help="rate limiter: rows before sampling starts")
    p.add_argument("--error-buffer", type=float,
                   help="rate limiter: how far sampled and inserted rows may drift (default 2*max(1, ratio))")


def run(args) -> int:
    from replaystore.common.extras import require_extra

    require_extra("remote", "replaystore serve")  # one line and exit 2 when pyarrow is missing
    from replaystore.remote import SampleToInsertRatio, serve
    from replaystore.store.errors import StoreError

    try:
        token = _read(args.token_file, "--token-file").decode().strip() if args.token_file else \
            os.environ.get("REPLAYSTORE_TOKEN") or None
        cert = _read(args.tls_cert, "--tls-cert") if args.tls_cert else None
        key = _read(args.tls_key, "--tls-key") if args.tls_key else None
        limiter = None
        if args.samples_per_insert is not None:
            limiter = SampleToInsertRatio(args.samples_per_insert, args.min_size_to_sample, args.error_buffer)
        shard_options = {"commit_every": args.commit_every, "commit_seconds": args.commit_seconds, "fsync": args.fsync}

        def ready(server, location):
            print(f"serving {args.path} at {location}", flush=True)

        serve(args.path, args.host, args.port, token=token, tls_cert=cert, tls_key=key, rate_limiter=limiter,
              shard_options=shard_options, ready=ready)
    except (StoreError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _read(path: str, flag: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as e:
        raise OSError(e.errno, f"{flag} {path}: {e.strerror}") from None

"""``replaystore tensorboard RUN --out DIR``: a recorded store's telemetry as TensorBoard scalars.

The same tags ``replaystore train`` writes live (see ``replaystore.common.tensorboard``), from the
store's ``train_steps`` table and its transitions, so any run can be viewed in TensorBoard
afterwards: ``tensorboard --logdir DIR``.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="the store (.h5)")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the event files")
    p.add_argument("--every", type=int, default=1, help="keep one training step in this many")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")


def run(args: argparse.Namespace) -> int:
    from replaystore.common.extras import require_extra
    from replaystore.store.errors import StoreError

    require_extra("tensorboard", "replaystore tensorboard")  # MissingExtraError: one line, exit 2

    from replaystore.common.tensorboard import export

    try:
        done = export(args.path, args.out, every=args.every)
    except (StoreError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(done))
    else:
        print(f"wrote {done['steps']} training steps and {done['episodes']} episodes to {done['out']}; "
              f"view them with: tensorboard --logdir {done['out']}")
    return 0

"""A writer process for the crash and concurrent-reader tests, and the rows it writes.

Run as ``python writer_proc.py PATH --mode create|append [--fsync] [--seed S] [--rows N]``.
Every row is self-describing: each column is a function of the row id alone (see ``make_rows``),
so a test can tell any row the store returns from what the writer meant to write, and a torn row
(columns from different writes) cannot pass. After every ``commit()`` returns, the writer prints
the committed count and flushes stdout: a printed count is a promise the store must keep.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from replaystore.store import Column, ReplayStore, Schema

ACTORS = ("expert", "dqn", "random")
EPISODE_LEN = 11  # a row with id % 11 == 10 ends its episode
SCHEMA = Schema.transition(state_shape=(3,), continuous_dim=2, discrete_dtype="int32",
                           extra=[Column("row_id", np.dtype("int64"))])
# Columns a writer gives; episode, step and time are left to the store.
GIVEN = ("state", "next_state", "discrete_action", "continuous_action", "reward", "done", "actor", "row_id")


def make_rows(start: int, stop: int) -> dict[str, np.ndarray]:
    """Rows ``[start, stop)`` exactly as the writer appends them, plus the episode/step it expects."""
    return rows_at(np.arange(start, stop, dtype=np.int64))


def rows_at(i: np.ndarray) -> dict[str, np.ndarray]:
    """The rows with ids ``i`` (any order, repeats allowed), as ``make_rows`` gives them."""
    i = np.asarray(i, dtype=np.int64)
    f = i.astype(np.float32)
    return {
        "state": np.repeat(f[:, None], 3, axis=1),
        "next_state": np.repeat((f + np.float32(0.5))[:, None], 3, axis=1),
        "discrete_action": (i % 5).astype(np.int32),
        "continuous_action": np.stack([f * np.float32(0.25), -f], axis=1),
        "reward": f,
        "done": i % EPISODE_LEN == EPISODE_LEN - 1,
        "actor": (i % len(ACTORS)).astype(np.uint8),
        "row_id": i,
        "episode": i // EPISODE_LEN,
        "step": i % EPISODE_LEN,
    }


def given(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: rows[k] for k in GIVEN}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("path")
    p.add_argument("--mode", choices=("create", "append"), required=True)
    p.add_argument("--fsync", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rows", type=int, default=None, help="stop and close after this many rows")
    p.add_argument("--commit-every", type=int, default=64)
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    if args.mode == "create":
        s = ReplayStore.create(args.path, SCHEMA, actors=ACTORS, window=1000, commit_every=args.commit_every,
                               commit_seconds=3600.0, fsync=args.fsync, chunk_bytes=4096)
    else:
        s = ReplayStore.open(args.path, "a", commit_every=args.commit_every, commit_seconds=3600.0,
                             fsync=args.fsync)
    n = len(s)
    print(f"ready {n}", flush=True)
    while args.rows is None or n < args.rows:
        k = int(rng.integers(1, 400)) if rng.random() < 0.5 else int(rng.integers(1, 12))
        if args.rows is not None:
            k = min(k, args.rows - n)
        rows = make_rows(n, n + k)
        if k > 1 and rng.random() < 0.7:
            s.extend(given(rows))
        else:
            for j in range(k):
                s.append(**{c: rows[c][j] for c in GIVEN})
        n += k
        if rng.random() < 0.8:  # otherwise rely on the automatic commit every --commit-every rows
            print(s.commit(), flush=True)
    s.close()
    print(f"done {len(s)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

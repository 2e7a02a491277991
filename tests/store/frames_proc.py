"""A frames-once writer process for the kill -9 test: image rows that are a function of their step.

Run as ``python frames_proc.py PATH --mode create|append --seed S``. Frame ``t`` of the one
stream is ``frame_at(t)``; row ``i`` holds the stacks of frames ``i .. i+3`` and ``i+1 .. i+4``,
so any row read back can be checked against its id alone. Prints the committed count after every
``commit()`` returns (a printed count is a promise), in blocks that roll segments over often.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from replaystore.store import FrameStack, ReplayStore, Schema

DEPTH, SIZE = 4, 24
SCHEMA = Schema.transition((SIZE, SIZE, DEPTH), state_dtype="uint8")
SEG_ROWS = 1024


def frame_at(t: np.ndarray) -> np.ndarray:
    """Frames ``t`` ((n,) -> (n, SIZE, SIZE)), each distinct from its neighbours."""
    t = np.asarray(t, np.int64)
    base = (t[:, None, None] * 7 + np.arange(SIZE * SIZE).reshape(SIZE, SIZE)) % 251
    return base.astype(np.uint8)


def rows(start: int, stop: int) -> dict:
    i = np.arange(start, stop, dtype=np.int64)
    stack = lambda first: np.stack([frame_at(first + j) for j in range(DEPTH)], axis=-1)
    n = len(i)
    return {"state": stack(i), "next_state": stack(i + 1), "discrete_action": (i % 3).astype(np.int32),
            "continuous_action": np.zeros((n, 0), np.float32), "reward": i.astype(np.float32),
            "done": np.zeros(n, bool), "actor": np.array(["dqn"] * n)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--mode", choices=("create", "append"), required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    if a.mode == "create":
        s = ReplayStore.create(a.path, SCHEMA, actors=("dqn",), window=4096, commit_every=1 << 20,
                               commit_seconds=3600.0, segment_rows=SEG_ROWS, frames=FrameStack(DEPTH))
    else:
        s = ReplayStore.open(a.path, "a", commit_every=1 << 20, commit_seconds=3600.0)
    n = len(s)
    print(n, flush=True)
    while True:
        k = int(rng.integers(1, 300))
        if rng.random() < 0.5:
            s.extend(rows(n, n + k))
        else:
            for r in range(n, n + min(k, 20)):
                s.append(**{c: v[0] for c, v in rows(r, r + 1).items()})
            k = min(k, 20)
        n += k
        print(s.commit(), flush=True)


if __name__ == "__main__":
    sys.exit(main())

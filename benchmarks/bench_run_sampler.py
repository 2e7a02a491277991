"""The run sampler against the single-store sampler on the same total rows, measured in the same run.

    python benchmarks/bench_run_sampler.py                         # 400k rows in 4 shards, batch 8192
    python benchmarks/bench_run_sampler.py --rows 1000000 --shards 8 --repeats 50

Writes one store of ``--rows`` rows and a run of ``--shards`` shards holding the same rows (split
evenly), warms the page cache, then prints the median ms per batch of each strategy for both,
and the ratio single/run (target: >= 0.85x, i.e. the run sampler at most ~18% slower). Calls are
interleaved in rounds (``bench_sampler.interleaved_medians``) so load on a shared machine falls
on both alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

import numpy as np
from tqdm import tqdm

from bench_sampler import interleaved_medians, warm_page_cache
from bench_store import CDIM, STATE, make_rows
from replaystore.store import ReplayStore, Run, Sampler, Schema, store_files

KW = {"uniform": {}, "stratified": {"actor_fractions": {"expert": 0.25, "dqn": 0.75}}, "prioritized": {}}
TARGET = 0.85


def warm_store(path: str) -> None:
    """Evict and re-read every file of the store (the HDF5 file and its segments)."""
    for p in store_files(path):
        if os.path.isdir(p):
            for root, _, names in os.walk(p):
                for n in names:
                    warm_page_cache(os.path.join(root, n))
        elif os.path.isfile(p):
            warm_page_cache(p)


def fill(store: ReplayStore, start: int, stop: int, block: int = 65536) -> None:
    for a in range(start, stop, block):
        store.extend(make_rows(min(block, stop - a), seed=a))
    store.commit()


def prioritize(sm, rng) -> None:
    """Non-trivial priorities on every row the sampler holds (one large batch of updates per round)."""
    for _ in range(8):
        b = sm.sample()
        sm.update_priorities(b["row"], rng.exponential(1.0, len(b["row"])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=400_000)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench_run_sampler_")
    try:
        schema = Schema.transition((STATE,), CDIM)
        opts = dict(commit_every=1 << 30, commit_seconds=3600.0)
        single_path = os.path.join(tmp, "single.h5")
        with ReplayStore.create(single_path, schema, actors=("expert", "dqn"), window=args.rows, **opts) as s:
            fill(s, 0, args.rows)
        run = Run.create(os.path.join(tmp, "run"), schema, actors=("expert", "dqn"), window=args.rows)
        cuts = np.linspace(0, args.rows, args.shards + 1).astype(int)
        for k in tqdm(range(args.shards), desc="writing shards", disable=None):
            with run.create_shard(f"w{k}", **opts) as s:
                fill(s, int(cuts[k]), int(cuts[k + 1]))
        for path in [single_path] + [run.shard_path(name) for name in run.shards()]:
            warm_store(path)
        single = ReplayStore.open(single_path, "r")
        rng = np.random.default_rng(0)
        fns, samplers = {}, []
        for strategy in KW:
            for label, src in (("single", single), ("run", run)):
                sm = Sampler(src, args.batch, strategy=strategy, seed=1, **KW[strategy])
                if strategy == "prioritized":
                    prioritize(sm, rng)
                samplers.append(sm)
                fns[strategy, label] = sm.sample
        med = interleaved_medians(fns, args.repeats, rounds=5)
        print(f"{args.rows:,} rows ({STATE}-float states), {args.shards} shards, batch {args.batch}, "
              f"{args.repeats} repeats (medians)")
        print(f"{'strategy':14s}{'single ms':>10s}{'run ms':>9s}{'single/run':>12s}")
        for strategy in KW:
            a, b = med[strategy, "single"], med[strategy, "run"]
            ok = "ok" if a / b >= TARGET else f"below target {TARGET}x"
            print(f"{strategy:14s}{a:10.2f}{b:9.2f}{a / b:11.2f}x {ok}")
        for sm in samplers:
            sm.close()
        single.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Reopen to first batch in a fresh process: the time from ``Sampler(path, ...)`` to its first batch.

    python benchmarks/bench_first_batch.py                  # 1M rows of the standard schema
    python benchmarks/bench_first_batch.py --rows 200000 --runs 5

Each run is a new Python process that imports replaystore (not timed: a training script pays it
once), then times opening the store and drawing one batch, so lazy imports on that path (numpy's
``random`` at the first Generator, ``numpy.ma`` at the first ``np.unique``) count, as they do for a
user. The page cache is warm (the store is read through once). Target (issue 17): under 10 ms.
Also the process's CPU time over the same span: on a machine shared with other jobs the wall time
includes waiting for a core, the CPU time does not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

from bench_sampler import warm_page_cache, write_store

CHILD = """
import sys, time
import numpy as np
from replaystore.store import Sampler
t, c = time.perf_counter(), time.process_time()
with Sampler(sys.argv[1], int(sys.argv[2]), seed=0) as s:
    s.sample()
print((time.perf_counter() - t) * 1e3, (time.process_time() - c) * 1e3, "numpy.ma" in sys.modules, flush=True)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--batches", type=int, nargs="+", default=[256, 8192])
    ap.add_argument("--path", help="an existing store to open instead of writing one")
    a = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="bench_first_")
    try:
        path = a.path or os.path.join(folder, "run.h5")
        if not a.path:
            write_store(path, a.rows)
        warm_page_cache(path)
        for batch in a.batches:
            got = [subprocess.run([sys.executable, "-c", CHILD, path, str(batch)], capture_output=True, text=True,
                                  check=True).stdout.split() for _ in range(a.runs)]
            ms, cpu = [float(g[0]) for g in got], [float(g[1]) for g in got]
            print(f"{a.rows:,} rows, batch {batch}: open -> first batch median {statistics.median(ms):.1f} ms "
                  f"(min {min(ms):.1f}, max {max(ms):.1f}), CPU time median {statistics.median(cpu):.1f} ms; "
                  f"numpy.ma imported: {got[0][2]}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

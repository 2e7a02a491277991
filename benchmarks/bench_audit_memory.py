#!/usr/bin/env python
"""Peak memory and time of `replaystore audit` as stores grow (not a timed test).

    .venv/bin/python benchmarks/bench_audit_memory.py [--rows 1000000 10000000] [--state-dim 4] [--dir DIR]

For each size: a synthetic store (analysis._synthetic, no telemetry) of ``rows`` rows with
``state-dim``-float states, then one fresh process that imports the audit (its peak RSS is the
baseline: the libraries) and one that audits the store (``audit(path)``, no plots). Prints the
audit's wall and CPU seconds, its peak RSS, the peak above the import baseline, and both against
the size of the store's transition data (the reference: the bytes of its rows). The peak RSS counts
the store's mapped file pages too (clean, reclaimable): the peaks of anonymous and of file-backed
RSS are sampled apart (every 5 ms from /proc/self/status), so that memory the audit allocates and
pages it merely maps are told apart.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD = r"""
import json, resource, sys, threading, time
from replaystore.analysis import audit
peaks = {"RssAnon": 0, "RssFile": 0}
def sample():  # the kernel keeps only the total's peak (VmHWM): sample the parts every 5 ms
    while True:
        with open("/proc/self/status") as f:
            for line in f:
                k = line.split(":")[0]
                if k in peaks:
                    peaks[k] = max(peaks[k], int(line.split()[1]))
        time.sleep(0.005)
threading.Thread(target=sample, daemon=True).start()
from replaystore.store import ReplayStore
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
time.sleep(0.02)
out = {"import_rss_kib": base, "import_anon_kib": peaks["RssAnon"]}
if len(sys.argv) > 1:
    with ReplayStore.open(sys.argv[1]) as s:
        out["data_bytes"] = sum(c.dtype.itemsize * max(1, int(__import__("numpy").prod(c.shape))) for c in s.schema) * len(s)
    t, c = time.perf_counter(), time.process_time()
    r = audit(sys.argv[1])
    out.update(seconds=time.perf_counter() - t, cpu=time.process_time() - c, codes=r.codes(),
               peak_rss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               peak_anon_kib=peaks["RssAnon"], peak_file_kib=peaks["RssFile"])
print(json.dumps(out))
"""


def child(*args) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--state-dim", type=int, default=4)
    p.add_argument("--dir", help="keep the stores here (reused when present)")
    args = p.parse_args()
    from replaystore.analysis._synthetic import RunSpec, write_run

    tmp = args.dir or tempfile.mkdtemp(prefix="bench_audit_mem_")
    os.makedirs(tmp, exist_ok=True)
    try:
        b = child()
        base, base_anon = b["import_rss_kib"] / 2**10, b["import_anon_kib"] / 2**10
        print(f"import baseline: peak RSS {base:.0f} MiB, anonymous {base_anon:.0f} MiB")
        for rows in args.rows:
            path = os.path.join(tmp, f"m{rows}x{args.state_dim}.h5")
            if not os.path.exists(path):
                t = time.perf_counter()
                write_run(path, RunSpec(rows=rows, window=rows, state_shape=(args.state_dim,), telemetry=False,
                                        seed=0, commit_every=1 << 20))
                print(f"wrote {path} in {time.perf_counter() - t:.1f} s")
            r = child(path)
            data, peak = r["data_bytes"] / 2**20, r["peak_rss_kib"] / 2**10
            anon, file = r["peak_anon_kib"] / 2**10, r["peak_file_kib"] / 2**10
            print(f"{rows:>11,d} rows x {args.state_dim} floats: data {data:7.0f} MiB; audit {r['seconds']:6.2f} s "
                  f"(CPU {r['cpu']:.2f} s); peak RSS {peak:6.0f} MiB = {peak / data:.2f}x the data, "
                  f"{(peak - base) / data:.2f}x above the import baseline; sampled peaks: anonymous {anon:.0f} MiB "
                  f"({(anon - base_anon) / data:.2f}x the data above the import's), file-backed {file:.0f} MiB; "
                  f"load {os.getloadavg()[0]:.1f}")
    finally:
        if not args.dir:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

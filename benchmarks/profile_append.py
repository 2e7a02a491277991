"""Where a one-row ``append`` spends its time: each part measured by switching it off.

    python benchmarks/profile_append.py [--rows 200000]

Prints microseconds per row for: the numpy-assign reference (bench_store.py's), the store as
shipped, the store with the checksum update switched off, the store without periodic commits
(one commit at close), and the time spent writing staged blocks into segments (``pwrite`` and
crc32, timed by wrapping the table writer's ``write_block``). Differences are the parts' costs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

from bench_store import CDIM, STATE, NumpyRows, make_rows, per_row_calls

from replaystore.store import ReplayStore, Schema
from replaystore.store.write import _tablewriter


def timed_store(path, n, calls, schema, checksums=True, **kw):
    spent = [0.0]
    orig = _tablewriter.TableWriter.write_block
    orig_sums = _tablewriter._update_sums

    def write_block(self, block, k):
        t = time.perf_counter()
        orig(self, block, k)
        spent[0] += time.perf_counter() - t

    _tablewriter.TableWriter.write_block = write_block
    if not checksums:
        _tablewriter._update_sums = lambda *a: None
    try:
        for f in (path, path + ".commit"):
            if os.path.exists(f):
                os.remove(f)
        shutil.rmtree(path + ".d", ignore_errors=True)
        s = ReplayStore.create(path, schema, actors=("expert", "dqn"), window=n, **kw)
        k = len(calls)
        t0 = time.perf_counter()
        for j in range(n):
            s.append(**calls[j % k])
        s.close()
        total = time.perf_counter() - t0
    finally:
        _tablewriter.TableWriter.write_block = orig
        _tablewriter._update_sums = orig_sums
    return total / n * 1e6, spent[0] / n * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="profile_append_")
    p = os.path.join(d, "a.h5")
    calls = per_row_calls(make_rows(8192, seed=2), 8192)
    codes = {"expert": 0, "dqn": 1}
    ref_calls = [dict(c, actor=codes[c["actor"]]) for c in calls]
    base = Schema.transition((STATE,), continuous_dim=CDIM)
    rows = {k: [] for k in ("ref", "store", "hdf5", "nosums", "nocommit")}
    for _ in range(a.rounds):
        ref = NumpyRows(a.rows)
        t0 = time.perf_counter()
        for j in range(a.rows):
            ref.append(**ref_calls[j % len(ref_calls)])
        rows["ref"].append((time.perf_counter() - t0) / a.rows * 1e6)
        us, h5 = timed_store(p, a.rows, calls, base)
        rows["store"].append(us)
        rows["hdf5"].append(h5)
        us2, h52 = timed_store(p, a.rows, calls, base, checksums=False)
        rows["nosums"].append(h5 - h52)
        us3, h53 = timed_store(p, a.rows, calls, base, commit_every=10**9, commit_seconds=1e9)
        rows["nocommit"].append((us - h5) - (us3 - h53))
    m = {k: statistics.median(v) for k, v in rows.items()}
    print(f"rows={a.rows}, state=({STATE},) float32, continuous_dim={CDIM}; medians of {a.rounds} rounds, us/row")
    print(f"  numpy-assign reference               {m['ref']:6.2f}")
    print(f"  store.append as shipped              {m['store']:6.2f}   ({m['ref'] / m['store']:.2f}x the reference)")
    print(f"    block writes into segments (pwrite + checksums) {m['hdf5']:6.2f}")
    print(f"      of which checksums                        {m['nosums']:6.2f}")
    print(f"    commits every 4096 rows (record)            {m['nocommit']:6.2f}")
    rest = m["store"] - m["hdf5"] - m["nocommit"]
    print(f"    the rest: call, checks, copies into staging, actor, episode/step/time {rest:6.2f}")


if __name__ == "__main__":
    main()

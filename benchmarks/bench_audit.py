#!/usr/bin/env python
"""Audit speed on a 1M-row store with 128-float states and its training telemetry (not a timed test).

    MPLBACKEND=Agg .venv/bin/python benchmarks/bench_audit.py [--rows 1000000] [--state-dim 128]
        [--path run.h5] [--repeat 3]

Prints, each the median of ``--repeat`` runs in this process:
- audit + plots: ``analysis.audit`` then the six PNGs, report.json and report.md, as
  ``replaystore audit`` writes them (target: under 5 s at 1M rows);
- the same through a fresh ``replaystore audit`` process (imports included), once;
- ``load_transitions`` (default columns) against a plain h5py read of the same columns from
  the same file in the same run (the reference), as a ratio;
- the transition checks' share: their seconds per check, and the row pass over ``state`` and
  ``next_state`` against a plain read of those two columns (``ReplayStore.read``) in the same run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLUMNS = ("actor", "episode", "step", "reward", "done", "time")


CPU = {}  # median CPU seconds of this process per timed call, by function name: on a machine shared
           # with other jobs the wall time also counts their turns, the CPU time does not


def timed(fn, repeat: int) -> tuple[float, object]:
    times, cpu, out = [], [], None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    CPU[getattr(fn, "__name__", "?")] = statistics.median(cpu)
    return statistics.median(times), out


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="bench_audit_")
    try:
        return run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp: str) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--path", help="reuse (or create) the store here instead of a temporary file")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--state-dim", type=int, default=128, help="floats per state (the store's row width)")
    args = p.parse_args()
    os.environ.setdefault("MPLBACKEND", "Agg")

    import h5py

    from replaystore.analysis import audit, load_transitions
    from replaystore.analysis._synthetic import RunSpec, write_run

    path = args.path or os.path.join(tmp, "run.h5")
    if not os.path.exists(path):
        spec = RunSpec(rows=args.rows, window=args.rows, state_shape=(args.state_dim,), train_steps=args.rows // 4,
                       batch_size=256, samples_every=100, learning_starts=10_000, seed=0, commit_every=65536)
        t = time.perf_counter()
        write_run(path, spec)
        print(f"wrote {path}: {os.path.getsize(path) / 2**20:.0f} MiB in {time.perf_counter() - t:.1f} s")
    out = os.path.join(tmp, "out")

    def h5py_read():
        with h5py.File(path, "r") as f:
            return {c: f["transitions"][c][:] for c in COLUMNS}

    t_h5, ref = timed(h5py_read, args.repeat)
    t_load, df = timed(lambda: load_transitions(path), args.repeat)
    same_rows = len(df) == len(ref["actor"])
    def audit_only():
        return audit(path)

    t_audit, report = timed(audit_only, args.repeat)
    from replaystore.store import ReplayStore

    def read_states():
        with ReplayStore.open(path) as s:
            for lo in range(0, len(s), 16384):
                s.read(["state", "next_state"], lo, lo + 16384)

    t_states, _ = timed(read_states, args.repeat)
    def audit_and_write():
        return _audit_and_write(path, out)

    t_full, _ = timed(audit_and_write, args.repeat)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "replaystore.cli", "audit", path, "--out", out],
                          capture_output=True, text=True, cwd=ROOT)
    t_cli = time.perf_counter() - t
    if proc.returncode not in (0, 1):
        print(proc.stderr)
        return 1
    print(f"store: {len(df)} rows, tables {report.store['tables']}")
    print(f"plain h5py read of {len(COLUMNS)} columns: {t_h5 * 1e3:8.1f} ms (reference)")
    print(f"load_transitions (same columns + Categorical): {t_load * 1e3:8.1f} ms  "
          f"ratio {t_load / t_h5:.2f}x the reference  (rows match: {same_rows})")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"audit() without plots:            {t_audit:6.2f} s  (CPU {CPU['audit_only']:.2f} s)")
    checks = report.generated["seconds"]["checks"]
    print("  checks: " + ", ".join(f"{k} {v:.2f}" for k, v in checks.items() if v >= 0.005) + " s")
    print(f"  plain read of state + next_state in 16k-row blocks: {t_states:6.2f} s (reference for the row pass)")
    print(f"audit + 6 plots + report files:   {t_full:6.2f} s  (CPU {CPU['audit_and_write']:.2f} s; target < 5 s)")
    print(f"`replaystore audit` fresh process: {t_cli:6.2f} s  (imports included)")
    print(f"anomalies: {report.codes()}")
    return 0


def _audit_and_write(path, out) -> None:
    from replaystore.analysis import audit, plots

    report = audit(path)
    files = plots.save_figures(report, out)
    with open(os.path.join(out, "report.json"), "w") as f:
        f.write(report.to_json())
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write(report.to_markdown(files))


if __name__ == "__main__":
    sys.exit(main())

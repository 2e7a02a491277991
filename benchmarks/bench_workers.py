"""Throughput of N acting workers against 1, measured in the same run.

    python benchmarks/bench_workers.py                           # mp engine, 1/2/4 workers, 8000 frames
    python benchmarks/bench_workers.py --engine ray --workers 1 2 4 --frames 8000

Each setting trains a fresh run of ``--frames`` frames (CartPole-v1, the expert mixed in at
0.26) with ``replaystore.agent.train_distributed`` and prints: acting throughput (frames / the
slowest worker's acting time), end-to-end throughput (frames / wall time, the learner's
catching up included: one training step per ``--train-every`` frames), and each ratio against
1 worker. The learner runs in this process and competes with the workers for the cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

from replaystore.agent import AgentConfig, train_distributed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", choices=["mp", "ray"], default="mp")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--frames", type=int, default=8000)
    ap.add_argument("--train-every", type=int, default=4)
    args = ap.parse_args()
    cfg = AgentConfig(total_steps=args.frames, learning_starts=500, train_every=args.train_every, batch_size=64,
                      commit_every=256, log_batch_every=0, log_buffer_every=0)
    tmp = tempfile.mkdtemp(prefix="bench_workers_")
    rows = []
    try:
        for n in args.workers:
            s = train_distributed(cfg, os.path.join(tmp, f"run{n}"), workers=n, engine=args.engine, progress=False)
            acting = s["frames"] / max(w["seconds"] for w in s["worker_metrics"])
            rows.append((n, acting, s["frames_per_s"], s["train_steps"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base_act, base_e2e = rows[0][1], rows[0][2]
    print(f"engine {args.engine}, {args.frames} frames, one training step per {args.train_every} frames, "
          f"{os.cpu_count()} CPUs")
    print(f"{'workers':>8s}{'acting fr/s':>13s}{'vs 1':>7s}{'end-to-end fr/s':>17s}{'vs 1':>7s}{'train steps':>13s}")
    for n, act, e2e, steps in rows:
        print(f"{n:8d}{act:13.0f}{act / base_act:6.2f}x{e2e:17.0f}{e2e / base_e2e:6.2f}x{steps:13d}")


if __name__ == "__main__":
    main()

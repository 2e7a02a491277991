"""Cost of the per-actor training metrics as a share of a training step.

A training step = sample a batch through store.Sampler, n-step gather, forward/backward, Adam,
per-actor metrics, telemetry staging (the default config's cadences). The metrics are timed
on the very tensors a step produces: ``per_actor_stats`` (one index_add_ and one bincount on
the actor codes) plus building the ``TrainMetrics``. For reference, the same metrics by a
Python loop over the batch are timed too. Target: metrics under 2% of a step.

    .venv/bin/python benchmarks/bench_agent_metrics.py [--rows 50000] [--batches 64,128,1024,8192]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch
from tqdm import tqdm

from replaystore.agent import Agent, AgentConfig, EnvSpec, TrainMetrics, per_actor_stats, store_schema
from replaystore.store import ReplayStore


def _fill(store, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    done = rng.random(rows) < 0.01
    store.extend({"actor": np.where(rng.random(rows) < 0.26, 0, 1).astype("u1"),
                  "state": rng.normal(size=(rows, 4)).astype("f4"), "next_state": rng.normal(size=(rows, 4)).astype("f4"),
                  "discrete_action": rng.integers(0, 2, rows).astype("i4"),
                  "continuous_action": np.zeros((rows, 0), "f4"), "reward": np.ones(rows, "f4"), "done": done,
                  "truncated": np.zeros(rows, bool)})
    store.commit()


def _loop_metrics(codes, td, reward, q, n):
    count = [0] * n
    sums = [[0.0, 0.0, 0.0] for _ in range(n)]
    for c, t, r, v in zip(codes.tolist(), td.tolist(), reward.tolist(), q.tolist()):
        count[c] += 1
        sums[c][0] += abs(t)
        sums[c][1] += r
        sums[c][2] += v
    return count, sums


def _median_time(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def bench(batch: int, rows: int, steps: int, tmp: str) -> dict:
    spec = EnvSpec((4,), 2, 0)
    cfg = AgentConfig(batch_size=batch, checkpoint_every=0, log_batch_every=0, log_buffer_every=0)
    path = os.path.join(tmp, f"bench_{batch}.h5")
    store = ReplayStore.create(path, store_schema(spec), actors=cfg.actors)
    _fill(store, rows)
    agent = Agent(cfg, store, spec)
    for _ in range(20):
        agent.train_step()
    step_times = []
    for _ in tqdm(range(steps), desc=f"batch {batch}", leave=False):
        t = time.perf_counter()
        agent.train_step()
        step_times.append(time.perf_counter() - t)
    step = float(np.median(step_times))
    step_mean = float(np.mean(step_times))
    # the metrics' inputs as a step makes them
    g = torch.Generator().manual_seed(0)
    codes = (torch.rand(batch, generator=g) < 0.26).to(torch.uint8).long()
    td, reward, q = torch.randn(batch), torch.ones(batch), torch.randn(batch)

    def metrics():
        c, t, r, m = per_actor_stats(codes, td, reward, q, 2)
        TrainMetrics(1, 0.0, 0.0, 0.0, cfg.actors, c, t, r, m)

    metrics_t = _median_time(metrics, 2000)
    loop_t = _median_time(lambda: _loop_metrics(codes, td, reward, q, 2), 200)
    agent.close()
    store.close()
    return {"batch": batch, "step_ms": 1e3 * step, "step_mean_ms": 1e3 * step_mean, "metrics_ms": 1e3 * metrics_t,
            "share": metrics_t / step, "loop_ms": 1e3 * loop_t, "loop_share": loop_t / step}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=50_000, help="rows in the store sampled from")
    p.add_argument("--batches", default="64,128,1024,8192", help="batch sizes to measure (comma-separated)")
    p.add_argument("--steps", type=int, default=200, help="timed training steps per batch size")
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        results = [bench(int(b), args.rows, args.steps, tmp) for b in args.batches.split(",")]
    print(f"{'batch':>6} {'step ms (median)':>17} {'metrics ms':>11} {'metrics/step':>13} "
          f"{'python loop ms':>15} {'loop/step':>10}")
    for r in results:
        print(f"{r['batch']:>6} {r['step_ms']:>17.3f} {r['metrics_ms']:>11.4f} {r['share']:>12.2%} "
              f"{r['loop_ms']:>15.3f} {r['loop_share']:>9.1%}")
    worst = max(r["share"] for r in results)
    print(f"per-actor metrics cost at most {worst:.2%} of a training step (target < 2%)")


if __name__ == "__main__":
    main()

"""Deterministic synthetic runs (transitions plus training telemetry) for tests, benchmarks and the
recorded buffers in tests/data. Not public: the shape of a run here is whatever those need.

Everything is vectorized and seeded; the wall-clock columns are synthetic too (a fixed start and a
fixed step), so the same arguments give the same rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from replaystore.store import (TRAIN_SAMPLES, TRAIN_STEPS, ReplayStore, Schema, file_layer, train_samples_schema,
                               train_steps_schema)

T0 = 1_700_000_000.0   # synthetic start of the run (seconds since the epoch)
DT = 0.001             # synthetic seconds between transitions


@dataclass
class RunSpec:
    """How a synthetic run behaves. Rates are per transition; the expert acts step by step."""

    rows: int = 4096
    window: int = 2048
    state_shape: tuple = (4,)
    expert_ratio: float = 0.26                # declared in the metadata
    actual_expert_ratio: float | None = None  # what really happens (default: as declared)
    drift_to: float | None = None             # the expert share moves linearly to this by the end
    drop_tags: bool = False                   # the incident: every row stored as 'dqn'
    train_steps: int = 300
    batch_size: int = 64
    learning_starts: int = 512
    samples_every: int = 10                   # per-sample telemetry every k training steps
    batch_expert_scale: float = 1.0           # a sampler bug: expert rows drawn this much less often
    td_scale: dict = field(default_factory=lambda: {"expert": 0.2, "dqn": 0.5})
    nan_loss_steps: tuple = ()                # training steps whose loss is NaN
    telemetry: bool = True
    seed: int = 0
    commit_every: int = 4096
    metadata: dict = field(default_factory=dict)  # merged over the default run metadata


def write_run(path, spec: RunSpec) -> None:
    """Write the run described by ``spec`` to a new store at ``path``."""
    rng = np.random.default_rng(spec.seed)
    n, names = spec.rows, ("expert", "dqn")
    meta = {"env_id": "Synthetic-v0", "seed": spec.seed, "expert_ratio": spec.expert_ratio,
            "sampler": "uniform", "batch_size": spec.batch_size, "gamma": 0.99, "n_step": 1,
            "generator": "analysis._synthetic", **spec.metadata}
    p0 = spec.expert_ratio if spec.actual_expert_ratio is None else spec.actual_expert_ratio
    p = np.full(n, p0) if spec.drift_to is None else np.linspace(p0, spec.drift_to, n)
    lengths = rng.integers(8, 64, size=n // 8 + 2)
    ends = np.cumsum(lengths)
    # Half the expert's share comes as whole demonstration episodes, half as single steps mixed
    # into the learner's episodes, so both pure and mixed episodes occur.
    demo = rng.random(len(ends)) < p[np.minimum(ends, n) - 1] / 2
    in_demo = demo[np.searchsorted(ends, np.arange(n), side="right")]
    step_p = (p / 2) / (1 - p / 2)
    truth = np.where(in_demo | (rng.random(n) < step_p), 0, 1).astype(np.uint8)  # 0 expert, 1 dqn
    stored = np.ones(n, np.uint8) if spec.drop_tags else truth
    done = np.zeros(n, bool)
    done[ends[ends <= n] - 1] = True
    reward = np.where(truth == 0, rng.normal(1.0, 0.3, n), rng.normal(0.4, 0.6, n)).astype(np.float32)
    state = rng.normal(size=(n, *spec.state_shape)).astype(np.float32)
    # next_state continues the chain inside episodes; an episode's last row gets a terminal
    # observation of its own (drawn apart, so the other draws do not move), not the next reset state
    next_state = np.roll(state, -1, axis=0)
    ends = np.flatnonzero(done)
    next_state[ends] = np.random.default_rng((spec.seed, 1)).normal(
        size=(ends.size, *spec.state_shape)).astype(np.float32)
    schema = Schema.transition(spec.state_shape, continuous_dim=1)
    with ReplayStore.create(path, schema, actors=names, window=spec.window, metadata=meta,
                            commit_every=spec.commit_every, commit_seconds=3600.0) as s:
        for lo in range(0, n, 65536):
            hi = min(n, lo + 65536)
            s.extend({
                "actor": stored[lo:hi], "state": state[lo:hi],
                "next_state": next_state[lo:hi],
                "discrete_action": rng.integers(0, 3, hi - lo).astype(np.int32),
                "continuous_action": rng.uniform(-1, 1, (hi - lo, 1)).astype(np.float32),
                "reward": reward[lo:hi], "done": done[lo:hi],
                "time": T0 + DT * np.arange(lo, hi),
            })
        if spec.telemetry and spec.train_steps:
            _write_telemetry(s, spec, stored, truth, rng)


def _write_telemetry(s: ReplayStore, spec: RunSpec, stored, truth, rng) -> None:
    n, a, b, w = spec.rows, 2, spec.batch_size, spec.window
    steps = np.arange(spec.train_steps, dtype=np.int64)
    # The row count the learner had seen at each step: training runs over the whole collection.
    seen = np.linspace(min(spec.learning_starts, n), n, spec.train_steps).astype(np.int64)
    lo = np.maximum(0, seen - w)
    cum = np.zeros((n + 1, a), np.int64)
    cum[1:] = np.cumsum(np.eye(a, dtype=np.int64)[stored], axis=0)
    frac = (cum[seen] - cum[lo]) / np.maximum(1, seen - lo)[:, None]
    if spec.batch_expert_scale != 1.0:
        frac = frac * np.array([spec.batch_expert_scale, 1.0])
        frac /= frac.sum(axis=1, keepdims=True)
    counts = rng.multinomial(b, frac).astype(np.int32)
    scale = np.array([spec.td_scale["expert"], spec.td_scale["dqn"]], np.float32)
    decay = np.exp(-steps / max(1, spec.train_steps))[:, None].astype(np.float32)
    td = np.where(counts > 0, scale * decay * (1 + 0.1 * rng.standard_normal((len(steps), a))), np.nan)
    q = np.where(counts > 0, np.array([2.0, 1.0]) * (1 - decay) + 0.05 * rng.standard_normal((len(steps), a)), np.nan)
    rmean = np.where(counts > 0, np.array([1.0, 0.4]) + 0.05 * rng.standard_normal((len(steps), a)), np.nan)
    loss = (td.astype(np.float64) ** 2).mean(axis=1, where=counts > 0).astype(np.float32)
    loss[list(spec.nan_loss_steps)] = np.nan
    s.create_table(TRAIN_STEPS, train_steps_schema(a))
    s.extend_table(TRAIN_STEPS, {
        "step": steps, "time": T0 + DT * seen, "loss": loss, "batch_count": counts,
        "td_abs_mean": td.astype(np.float32), "reward_mean": rmean.astype(np.float32),
        "q_mean": q.astype(np.float32), "grad_norm": np.full((len(steps), a), np.nan, np.float32),
    })
    ks = steps[::spec.samples_every]
    if spec.batch_expert_scale == 1.0:
        rows = lo[ks, None] + (rng.random((len(ks), b)) * (seen - lo)[ks, None]).astype(np.int64)
    else:
        rows = np.empty((len(ks), b), np.int64)
        for j, k in enumerate(ks):
            w = np.where(stored[lo[k]:seen[k]] == 0, spec.batch_expert_scale, 1.0)
            rows[j] = lo[k] + rng.choice(len(w), b, p=w / w.sum())
    codes = stored[rows]
    who = truth[rows]  # TD error follows who really acted, whatever the tag says
    tde = (scale[who] * decay[ks] * rng.standard_normal(rows.shape)).astype(np.float32)
    qv = (np.array([2.0, 1.0])[who] * (1 - decay[ks]) + 0.1 * rng.standard_normal(rows.shape)).astype(np.float32)
    s.create_table(TRAIN_SAMPLES, train_samples_schema())
    s.extend_table(TRAIN_SAMPLES, {
        "step": np.repeat(ks, b), "row": rows.ravel(), "actor": codes.ravel(),
        "td_error": tde.ravel(), "q": qv.ravel(), "target": (qv + tde).ravel(),
    })


def corrupt(path, *, bad_codes: dict | None = None, nonfinite_rewards: tuple = ()) -> None:
    """Damage a closed store in place, the way a buggy writer would have: actor codes outside the
    vocabulary at given rows (``{row: code}``), NaN rewards at given rows. The commit record beside
    the file is removed so readers take the HDF5 file itself as the truth."""
    import h5py

    with h5py.File(path, "r+") as f:
        if bad_codes:
            ds = f["transitions/actor"]
            for row, code in sorted(bad_codes.items()):
                ds[row] = code
        if nonfinite_rewards:
            ds = f["transitions/reward"]
            for row in sorted(nonfinite_rewards):
                ds[row] = np.nan
    drop_sidecar(path)


def drop_sidecar(path) -> None:
    """Remove ``<path>.commit``: a closed store opens from the HDF5 file alone."""
    file_layer().remove(os.fspath(path) + ".commit")

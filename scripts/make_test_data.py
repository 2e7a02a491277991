#!/usr/bin/env python
"""Regenerate the recorded buffers in tests/data and the golden audit beside each.

    .venv/bin/python scripts/make_test_data.py            # stores and goldens
    .venv/bin/python scripts/make_test_data.py --goldens  # goldens only, from the stores there

The stores are deterministic (seeded data, synthetic clocks) apart from the file's uuid and
creation time, which no golden depends on. Only the .h5 files are committed: a closed store opens
from its HDF5 file alone, so the commit-record sidecar is removed.

- healthy.h5:   expert mixed in at the declared expert_ratio 0.26; no anomaly.
- incident.h5:  the incident that started the project: every frame stored as 'dqn' although the
                metadata says expert_ratio=0.26. The audit must flag SINGLE_ACTOR.
- corrupt.h5:   the expert share drifts to 0, the sampler under-draws expert rows, the learner's
                TD errors differ 15x between actors, NaN losses, a NaN reward and two rows whose
                actor code (7) is outside the vocabulary.
- negated.h5:   a simulated CartPole-v1 run (analysis._cartpole: gymnasium's physics, the agent's
                expert mixed in frame by frame at 0.3) whose expert rewards are stored negated from
                row 1200 on, the kind of bug a refactor of one actor's code path ships. The shares,
                the tags and the telemetry-free checks look fine; the audit must flag REWARD_SIGN
                for 'expert' from row 1200. The notebook walks through it.
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from replaystore.analysis import audit
from replaystore.analysis import _cartpole
from replaystore.analysis._synthetic import RunSpec, corrupt, drop_sidecar, write_run

DATA = os.path.join(ROOT, "tests", "data")
SMALL = dict(rows=3072, window=1024, train_steps=200, batch_size=32, samples_every=8)

STORES = {
    "healthy": (RunSpec(seed=11, **SMALL), None),
    "incident": (RunSpec(seed=12, drop_tags=True, **SMALL), None),
    "corrupt": (RunSpec(seed=13, drift_to=0.0, batch_expert_scale=0.3, td_scale={"expert": 0.1, "dqn": 1.5},
                        nan_loss_steps=(100, 101), **{**SMALL, "samples_every": 4}),
                {"bad_codes": {500: 7, 501: 7}, "nonfinite_rewards": (900,)}),
}


NEGATED = dict(run=_cartpole.CartPoleRun(rows=2400, seed=21, expert_ratio=0.3), actor="expert", start=1200)


def write_negated(path) -> None:
    run = NEGATED["run"]
    cols = _cartpole.simulate(run)
    _cartpole.plant_negated_rewards(cols, actor=NEGATED["actor"], start=NEGATED["start"])
    _cartpole.write(path, cols, _cartpole.metadata(run), window=1024)


def golden_path(name: str) -> str:
    return os.path.join(DATA, f"{name}.report.json")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--goldens", action="store_true", help="only rewrite the golden reports")
    args = p.parse_args(argv)
    os.makedirs(DATA, exist_ok=True)
    for name in [*STORES, "negated"]:
        path = os.path.join(DATA, f"{name}.h5")
        if not args.goldens:
            for f in (path, path + ".commit"):
                if os.path.exists(f):
                    os.remove(f)
            if name == "negated":
                write_negated(path)
            else:
                spec, damage = STORES[name]
                write_run(path, spec)
                if damage:
                    corrupt(path, **damage)
            drop_sidecar(path)
        report = audit(path)
        report.generated = {}  # volatile (path, wall clock); compare() ignores it anyway
        with open(golden_path(name), "w", encoding="utf-8") as f:
            f.write(report.to_json() + "\n")
        print(f"{name}: {os.path.getsize(path)} bytes, anomalies {report.codes()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Calibration of the audit's checks on real gymnasium runs other than CartPole (needs gymnasium).

    .venv/bin/python benchmarks/calibrate_tags.py [--seeds 1 2 3 4] [--rows 3000]

For Acrobot-v1, MountainCar-v0 and Pendulum-v1 (analysis._gymruns: a scripted deterministic expert
and a noisy learner mixed frame by frame, time limits stored as truncation): the findings at warning
level or worse on clean runs (there should be none), TAG_BEHAVIOUR's agreement rates, and the
findings on planted defects (learner rows tagged 'expert', tags swapped in a stretch of a 50/50 run,
the learner's rewards negated, its time-limit ends stored as terminal, a block appended twice).
The thresholds in analysis/_neighbours.py quote the rates printed here.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from replaystore.analysis import _gymruns as g  # noqa: E402
from replaystore.analysis import audit  # noqa: E402

ENVS = ("Acrobot-v1", "MountainCar-v0", "Pendulum-v1")
PLANTS = {
    "fake_expert": (dict(expert_ratio=0.2), {"expert_ratio": 0.3}, lambda c: g.plant_fake_expert(c, 0.1)),
    "swapped_tags": (dict(expert_ratio=0.5), {}, lambda c: g.plant_swapped_tags(c, 1500, 2100)),
    "negated_dqn": (dict(), {}, lambda c: g.plant_negated_rewards(c, 1)),
    "limit_terminal_dqn": (dict(), {}, lambda c: g.plant_limit_as_terminal(c, 1)),
    "appended_twice": (dict(), {}, lambda c: g.plant_appended_twice(c, 1200, 64)),
    "clean_pure_expert": (dict(expert_ratio=1.0), {}, lambda c: c["actor"][:0]),
}


def one(tmp, env, seed, rows, settings=None, meta=None, plant=None):
    run = g.GymRun(env_id=env, rows=rows, seed=seed, **(settings or {}))
    cols = g.simulate(run)
    planted = plant(cols) if plant else None
    path = os.path.join(tmp, f"{env}-{seed}-{id(cols)}.h5")
    g.write(path, cols, {**g.metadata(run), **(meta or {})})
    return audit(path), planted


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    p.add_argument("--rows", type=int, default=3000)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for env in ENVS:
            for seed in args.seeds:
                rep, _ = one(tmp, env, seed, args.rows)
                ev = rep.checks["tag_behaviour"].get("evidence", {}).get("per_actor", {}).get("expert", {})
                rates = {k: round(v, 3) for k, v in ev.get("agreement_with_neighbour", {}).items()}
                found = [(a.code, a.actor) for a in rep.anomalies_at_least("warning")]
                print(f"clean {env:15s} seed {seed}: warnings+ {found}, nn agreement {rates}, natural repeats "
                      f"{rep.checks['duplicate_rows'].get('evidence', {}).get('natural_repeats')}")
            for name, (settings, meta, plant) in PLANTS.items():
                rep, rows = one(tmp, env, args.seeds[0], args.rows, settings, meta, plant)
                found = [(a.code, a.severity, a.actor, a.rows) for a in rep.anomalies_at_least("warning")]
                ev = rep.checks["tag_behaviour"].get("evidence", {}).get("per_actor", {}).get("expert", {})
                found.append({k: round(v, 3) for k, v in ev.get("agreement_with_neighbour", {}).items()})
                where = f"[{rows.min()}, {rows.max() + 1})" if rows.size else "none (nothing to plant)"
                print(f"  {name:18s} planted rows {where}: {found}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

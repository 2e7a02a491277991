#!/usr/bin/env python
"""Calibration of the fit checks' thresholds on clean runs (not a timed test).

    MPLBACKEND=Agg .venv/bin/python benchmarks/calibrate_fit.py [--seeds 0 1 2] [--rows 4000]
        [--envs Acrobot-v1 MountainCar-v0 Pendulum-v1 PointMass-v0] [--planted]

For each environment and seed, a clean run (real gymnasium rollouts, a scripted expert and a noisy
learner mixed frame by frame; PointMass is declared by metadata only) is written and audited. Prints
per run the statistic each fit check compares with its threshold, and the margin: how far the clean
statistic stays from the threshold (a factor; above 1 is quiet). With ``--planted``, also the same
statistic on the planted bug of each check, so both sides of every threshold are on one page.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from replaystore.analysis import _envsuite as es  # noqa: E402
from replaystore.analysis import _fit_checks as fc  # noqa: E402
from replaystore.analysis import audit  # noqa: E402


def statistics(report) -> dict:
    """The clean-run side of each threshold, from the checks' evidence."""
    c = report.checks
    out = {}
    ev = c["action_bounds"].get("evidence") or {}
    shares = [v for v in (ev.get("outside_share") or {}).values() if v is not None]
    out["bounds: max share outside"] = (max(shares) if shares else None, "> 0")
    ev = c["reward_clipped"].get("evidence") or {}
    close = [min(s["share_at_bound"] / fc.PILE_SHARE, s["others_beyond"] / fc.PASS_SHARE)
             for a in ev.get("per_actor", {}).values() for s in a.values()]
    out["clipped: max min(pile/5%, beyond/5%)"] = (max(close) if close else None, ">= 1")
    ev = c["reward_lag"].get("evidence") or {}
    ratios = [a["ratio"] for a in ev.get("per_actor", {}).values() if "ratio" in a]
    out["lag: max own/previous error"] = (max(ratios) if ratios else None, f"> {fc.LAG_RATIO}")
    ev = c["action_fit"].get("evidence") or {}
    cross = [v for k, v in (ev.get("explained_share") or {}).items()
             if k.split(" by ")[0] != k.split(" by ")[1].replace("'s model", "")]
    out["fit: min explained share"] = (min(cross) if cross else None, f"< {fc.FIT_LOW}")
    ev = c["foreign_rows"].get("evidence") or {}
    out["foreign: longest run above ratio"] = (ev.get("longest_run"), f">= {fc.FOREIGN_RUN} sampled rows above "
                                                                     f"{fc.FOREIGN_RATIO}x")
    return out


STATISTIC = {"ACTION_BOUNDS": "bounds: max share outside", "REWARD_CLIPPED": "clipped: max min(pile/5%, beyond/5%)",
             "REWARD_LAG": "lag: max own/previous error", "ACTION_FIT": "fit: min explained share",
             "FOREIGN_ROWS": "foreign: longest run above ratio"}


def margin(name: str, value) -> str:
    if value is None:
        return "-"
    if name.startswith("fit"):
        return f"{value / fc.FIT_LOW:.2f}x"
    if name.startswith("bounds"):
        return "quiet" if value == 0 else "FLAGGED"
    limit = {"clipped": 1.0, "lag": fc.LAG_RATIO, "foreign": fc.FOREIGN_RUN}[name.split(":")[0]]
    return f"{limit / value:.2f}x" if value > 0 else "inf"


PLANTS = {"Acrobot-v1": [("shifted_actions", {}), ("foreign_block", {"at": None})],
          "MountainCar-v0": [("shifted_actions", {})],
          "Pendulum-v1": [("late_rewards", {}), ("clipped_rewards", {}), ("preclip_actions", {})],
          "PointMass-v0": [("late_rewards", {}), ("preclip_actions", {"low": -1.0, "high": 1.0})]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rows", type=int, default=4000)
    p.add_argument("--envs", nargs="+", default=list(es.ENVS))
    p.add_argument("--planted", action="store_true", help="also print each check's statistic on its planted bug")
    p.add_argument("--whole-episodes", action="store_true",
                   help="the expert plays whole demonstration episodes instead of single frames")
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="calibrate_fit_")
    worst: dict = {}
    weakest: dict = {}  # the planted side: each check's statistic on its own planted bug
    try:
        for env in args.envs:
            for seed in args.seeds:
                run = es.Run(env, rows=args.rows, seed=seed, whole_episodes=args.whole_episodes)
                cols = es.simulate(run)
                path = os.path.join(tmp, f"{env}_{seed}.h5")
                es.write(path, cols, es.metadata(run))
                report = audit(path)
                loud = [(a.code, a.actor) for a in report.anomalies_at_least("warning")]
                print(f"{env} seed {seed}: {args.rows} rows, {int(cols['done'].sum())} episodes, "
                      f"warnings/errors (all checks): {loud or 'none'}")
                for name, (value, rule) in statistics(report).items():
                    print(f"    {name:40s} {value if value is None else round(value, 4)!s:>10} "
                          f"(flags {rule}; margin {margin(name, value)})")
                    worst.setdefault(name, []).append(value)
                if args.planted:
                    for plant, kw in PLANTS.get(env, []):
                        c2 = es.simulate(run)
                        kw = dict(kw)
                        if kw.get("at", 0) is None:
                            kw["at"] = es.episode_start_after(c2, len(c2["step"]) // 2)
                        code, actor, rows = getattr(es, f"plant_{plant}")(c2, **kw)
                        pp = os.path.join(tmp, f"{env}_{seed}_{plant}.h5")
                        es.write(pp, c2, es.metadata(run))
                        rep = audit(pp)
                        hit = [(a.code, a.actor, a.rows) for a in rep.anomalies if a.code == code]
                        weakest.setdefault(STATISTIC[code], []).append(statistics(rep)[STATISTIC[code]][0])
                        value = statistics(rep)[STATISTIC[code]][0]
                        print(f"    planted {plant}: expect {code} {actor} rows [{rows.min()}, {rows.max() + 1}]; "
                              f"got {hit}; {STATISTIC[code]} {value if value is None else round(value, 4)}")
        print("worst clean value per statistic over all runs:")
        for name, vals in worst.items():
            vals = [v for v in vals if v is not None]
            if not vals:
                continue
            w = min(vals) if name.startswith("fit") else max(vals)
            print(f"    {name:40s} {w:.4g} (margin {margin(name, w)})")
        if weakest:
            print("weakest planted value per statistic (the other side of each threshold):")
            for name, vals in weakest.items():
                w = max(vals) if name.startswith("fit") else min(vals)
                print(f"    {name:40s} {w:.4g} over {len(vals)} planted runs")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

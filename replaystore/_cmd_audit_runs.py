"""The parts of ``replaystore audit`` for runs of shards and for many runs at once.

``replaystore audit RUN_FOLDER --out DIR``: report.json and report.md over the run's shards.
``replaystore audit RUN... --engine dask [--scheduler ADDR] --out DIR``: the runs audited in
parallel on Dask, compared in ``runs.csv`` and ``runs.md`` (one row per run).
"""

from __future__ import annotations

import os
import sys


def add_arguments(p) -> None:
    p.add_argument("--engine", choices=["dask", "local"], default=None,
                   help="audit several runs in parallel on Dask (a LocalCluster here, or --scheduler) or one "
                        "after another ('local'), and compare them in runs.csv / runs.md")
    p.add_argument("--scheduler", metavar="ADDR", help="address of a running Dask scheduler (tcp://host:8786)")
    p.add_argument("--workers", type=int, default=2, help="threads of the LocalCluster")


def wanted(args) -> bool:
    """True when this module handles the command (many paths, an engine, or a run folder)."""
    from replaystore.store import Run

    return len(args.path) > 1 or args.engine is not None or Run.is_run(args.path[0])


def run(args, expected) -> int:
    if len(args.path) == 1 and args.engine is None:
        return _one_run(args, expected)
    from replaystore.analysis import audit_runs, write_comparison

    table = audit_runs(args.path, engine=args.engine or "local", scheduler=args.scheduler,
                       n_workers=args.workers, expected=expected)
    if args.json:
        print(table.to_json(orient="records", indent=2))
    if args.out:
        csv, md = write_comparison(table, args.out)
        if not args.json:
            with open(md, encoding="utf-8") as f:
                print(f.read())
            print(f"table: {md} (and {csv})")
    if args.fail_on == "error" and table["errors"].sum():
        print(f"failing: {int(table['errors'].sum())} error(s) across the runs", file=sys.stderr)
        return 1
    if args.fail_on in ("warning", "info") and (table["errors"].sum() + table["warnings"].sum()):
        print("failing: errors or warnings across the runs", file=sys.stderr)
        return 1
    return 0


def facts(args) -> dict:
    """The audit's keyword arguments for the environment facts and the policies given on the command line."""
    from replaystore.analysis._tags import load_policy

    policies = {}
    for item in args.policy:
        actor, sep, spec = item.partition("=")
        if not sep or not actor or not spec:
            raise ValueError(f"--policy {item!r}: expected ACTOR=package.module:function, e.g. expert=mygame.experts:act")
        if actor in policies:
            raise ValueError(f"--policy names actor {actor!r} twice; give one policy per actor")
        policies[actor] = load_policy(spec)
    return {"env_facts": args.env_facts, "policies": policies or None,
            "trust_policies": args.trust_metadata_policies}


def _one_run(args, expected) -> int:
    from replaystore.analysis import audit

    report = audit(args.path[0], expected, bucket_rows=args.bucket_rows, **facts(args))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "report.json"), "w", encoding="utf-8") as f:
            f.write(report.to_json())
        with open(os.path.join(args.out, "report.md"), "w", encoding="utf-8") as f:
            f.write(report.to_markdown())
    if args.json:
        print(report.to_json())
    else:
        print(report.summary())
        if args.out:
            print(f"report: {os.path.join(args.out, 'report.md')} (and report.json; per-shard plots: audit a "
                  "shard's file)")
    if args.fail_on and report.anomalies_at_least(args.fail_on):
        print(f"failing: {len(report.anomalies_at_least(args.fail_on))} anomaly(ies) of severity {args.fail_on} "
              "or worse", file=sys.stderr)
        return 1
    return 0

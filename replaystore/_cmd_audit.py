"""``replaystore audit PATH --out DIR [--json] [--env-facts FILE] [--policy ACTOR=MODULE:FUNCTION]``:
report.json, report.md and PNG plots; exit status for CI."""

from __future__ import annotations

import argparse
import json
import os
import sys

FAIL_LEVELS = ("error", "warning", "info")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .cli import choice

    p.add_argument("path", nargs="+", help="the store file or run folder to audit (also while it is being written); "
                   "several with --engine")
    p.add_argument("--out", metavar="DIR", help="directory for report.json, report.md and plots "
                                               "(required unless --json)")
    p.add_argument("--json", action="store_true",
                   help="print the report as one JSON document to stdout (the summary goes nowhere)")
    p.add_argument("--fail-on", type=choice(*FAIL_LEVELS), default=None, metavar="{error,warning,info}",
                   help="exit with status 1 when an anomaly of this severity or worse is found (any case)")
    p.add_argument("--expert-fraction", nargs=2, type=float, metavar=("MEAN", "TOL"),
                   help="the expert share the run should show, e.g. --expert-fraction 0.26 0.02")
    p.add_argument("--expect", metavar="JSON", help='more expectations as JSON, e.g. \'{"td_ratio_max": 3}\'')
    p.add_argument("--bucket-rows", type=int, default=None, help="rows per bucket of the over-time composition (default: a round number giving about 50 buckets)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--env-facts", metavar="FILE",
                   help="JSON facts about the environment, in the format of the metadata 'env' block "
                        "(max_episode_steps, reward_range, random_reset, observation, action, actors); they override "
                        "gymnasium's registry and the store's own block. Checks that need a missing fact are skipped "
                        "with the reason")
    p.add_argument("--policy", action="append", default=[], metavar="ACTOR=MODULE:FUNCTION",
                   help="the policy ACTOR followed, e.g. expert=mygame.experts:act (repeatable). Called on a batch "
                        "of states (n, *state_shape) -> actions (n,) or (n, k), or state by state if it fails on a "
                        "batch; TAG_POLICY checks the actor's rows against it (continuous actions within a tolerance)")
    p.add_argument("--trust-metadata-policies", action="store_true",
                   help="also import the policies the store's metadata names (env.actors.ACTOR.policy); without "
                        "this flag code named by a store is never imported")
    from . import _cmd_audit_runs

    _cmd_audit_runs.add_arguments(p)


def _expected(args) -> dict | None:
    exp = {}
    if args.expect:
        try:
            exp = json.loads(args.expect)
        except json.JSONDecodeError as e:
            raise ValueError(f"--expect {args.expect!r} is not JSON: {e}") from None
        if not isinstance(exp, dict):
            raise ValueError(f"--expect must be a JSON object, got {args.expect!r}")
    if args.expert_fraction:
        exp["expert_fraction"] = tuple(args.expert_fraction)
    return exp or None


def _write_files(report, out: str, plots: bool) -> dict:
    from replaystore.analysis import plots as figures_of
    from replaystore.common.progress import progress

    os.makedirs(out, exist_ok=True)
    figures = {}
    if plots:
        big = report.store["rows"] >= 100_000
        d = report.to_dict()
        for name, fn in progress(figures_of.FIGURES.items(), desc="plots", disable=not big, leave=False):
            fig = fn(d)
            if not figures_of.has_data(fig):  # a figure with no panel (e.g. no telemetry) is left out
                continue
            fig.savefig(os.path.join(out, f"{name}.png"), dpi=80)
            figures[name] = f"{name}.png"
    with open(os.path.join(out, "report.json"), "w", encoding="utf-8") as f:
        f.write(report.to_json())
    with open(os.path.join(out, "report.md"), "w", encoding="utf-8") as f:
        f.write(report.to_markdown(figures))
    return figures


def run(args) -> int:
    from replaystore.store.errors import StoreError

    if not args.out and not args.json:
        print("error: pass --out DIR (report files) and/or --json (report on stdout)", file=sys.stderr)
        return 2
    try:
        return _run(args)
    except (StoreError, ValueError, TypeError, KeyError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2


def _run(args) -> int:
    from replaystore.analysis import audit

    from . import _cmd_audit_runs

    if _cmd_audit_runs.wanted(args):  # a run of shards, or many runs compared
        return _cmd_audit_runs.run(args, _expected(args))
    args.path = args.path[0]
    report = audit(args.path, _expected(args), bucket_rows=args.bucket_rows, progress="auto", **_cmd_audit_runs.facts(args))
    if args.out:
        figures = _write_files(report, args.out, plots=not args.no_plots)
    if args.json:
        print(report.to_json())
    else:
        print(report.summary())
        print(f"report: {os.path.join(args.out, 'report.md')} (and report.json, {len(figures)} plots)")
    if args.fail_on and report.anomalies_at_least(args.fail_on):
        n = len(report.anomalies_at_least(args.fail_on))
        print(f"failing: {n} anomaly(ies) of severity {args.fail_on} or worse", file=sys.stderr)
        return 1
    return 0

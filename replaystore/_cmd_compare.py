"""``replaystore compare BASELINE.json RUN.h5``: exit 1 when the run's audit differs from the baseline.

By default numbers that vary from one run of a setup to the next (another seed, or the same seed
on another machine) are compared with the tolerances measured for that run-to-run noise
(``analysis._compare.RUN_TO_RUN_TOLERANCES``); ``--exact`` compares every number exactly.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("baseline", help="a report.json written by `replaystore audit`")
    p.add_argument("candidate", help="a store to audit now, or another report.json")
    p.add_argument("--tolerance", action="append", default=[], metavar="PATTERN=VALUE",
                   help="absolute tolerance for report paths matching a glob, e.g. "
                        "'composition.*.fractions.*=0.02' (repeatable)")
    p.add_argument("--ignore", action="append", default=[], metavar="PATTERN",
                   help="leave report paths matching a glob out, e.g. 'store.metadata.*' (repeatable)")
    p.add_argument("--tolerances", metavar="FILE", help='JSON file {pattern: abs, {"abs": x, "rel": y} or "ignore"}')
    p.add_argument("--exact", action="store_true",
                   help="no run-to-run default tolerances: every number must match (two audits of one store)")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="print the comparison as one JSON document to stdout (or, given FILE, write it there "
                        "and print the summary)")


def _tolerances(args) -> dict:
    tol = {}
    if args.tolerances:
        with open(args.tolerances, encoding="utf-8") as f:
            try:
                tol.update(json.load(f))
            except json.JSONDecodeError as e:
                raise ValueError(f"--tolerances {args.tolerances} is not JSON: {e}") from None
    for item in args.tolerance:
        pattern, sep, value = item.rpartition("=")
        try:
            tol[pattern] = float(value)
        except ValueError:
            sep = ""
        if not sep or not pattern:
            raise ValueError(f"--tolerance {item!r}: expected PATTERN=NUMBER, e.g. 'rewards.*.mean=0.05'")
    tol.update({pattern: "ignore" for pattern in args.ignore})
    return tol


def run(args) -> int:
    from replaystore.store.errors import StoreError

    try:
        from replaystore.analysis import compare
        from replaystore.analysis._compare import RUN_TO_RUN_TOLERANCES

        c = compare(args.baseline, args.candidate, _tolerances(args),
                    defaults=None if args.exact else RUN_TO_RUN_TOLERANCES)
    except (StoreError, ValueError, TypeError, KeyError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2
    for pattern in c.unmatched:
        print(f"warning: tolerance pattern {pattern!r} matches no value of the reports; check its spelling "
              "against report.json's keys (e.g. 'composition.whole.fractions.*')", file=sys.stderr)
    if args.json == "-":
        print(json.dumps(c.to_dict(), indent=2, default=str))
    else:
        print(c.summary(warnings=False))  # the warnings went to stderr above
        if args.json:
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(c.to_dict(), f, indent=2, default=str)
    return 0 if c.ok else 1

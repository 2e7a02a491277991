"""``replaystore compare BASELINE.json RUN.h5``: exit 1 when the run's audit differs from the baseline."""

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
    p.add_argument("--json", metavar="FILE", help="also write the differences as JSON")


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

        c = compare(args.baseline, args.candidate, _tolerances(args))
    except (StoreError, ValueError, TypeError, KeyError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2
    print(c.summary())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(c.to_dict(), f, indent=2, default=str)
    return 0 if c.ok else 1

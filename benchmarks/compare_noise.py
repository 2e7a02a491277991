"""Run-to-run noise of the audit: what `replaystore compare`'s default tolerances are built on.

Trains runs of one setup (seeds 0, 0, 1, 2 by default), audits them, and prints for each family
of report values the largest difference between two runs of the same seed and of different seeds,
beside the tolerance ``RUN_TO_RUN_TOLERANCES`` gives that family. Last, each pair compared with
the defaults: the number of values beyond them is the figure that must be 0.

    .venv/bin/python benchmarks/compare_noise.py [--steps 6000] [--seeds 0 0 1 2] [--dir DIR]
"""

from __future__ import annotations

import argparse
import collections
import fnmatch
import os
import re
import subprocess
import sys
import tempfile

from replaystore.analysis import audit, compare
from replaystore.analysis._compare import RUN_TO_RUN_TOLERANCES, _check_tolerances, _tolerance_for


def family(path: str, actors=("expert", "dqn")) -> str:
    path = re.sub(r"\[\d+\]", "[*]", path)
    path = re.sub(r"\.(" + "|".join(actors) + r")(?=\.|\[|$)", ".*", path)
    return re.sub(r"quantiles\.[0-9.]+", "quantiles.*", path)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 0, 1, 2])
    p.add_argument("--dir", default=None, help="keep the runs here (default: a temporary folder)")
    args = p.parse_args()
    out = args.dir or tempfile.mkdtemp(prefix="compare_noise_")
    runs = []
    for i, seed in enumerate(args.seeds):
        path = os.path.join(out, f"run{i}_seed{seed}.h5")
        if not os.path.exists(path):
            subprocess.run([sys.executable, "-m", "replaystore", "train", "--steps", str(args.steps), "--seed",
                            str(seed), "--out", path, "--quiet", "--no-tensorboard", "--eval-episodes", "0"],
                           check=True)
        runs.append((seed, audit(path).to_dict()))
    tol = _check_tolerances(RUN_TO_RUN_TOLERANCES)
    for same in (True, False):
        pairs = [(a, b) for i, a in enumerate(runs) for b in runs[i + 1:] if (a[0] == b[0]) == same]
        if not pairs:
            continue
        agg = collections.defaultdict(lambda: [0.0, 0.0, ""])
        for (_, ra), (_, rb) in pairs:
            for d in compare(ra, rb).differences:
                g = agg[family(d.path)]
                if isinstance(d.baseline, (int, float)) and isinstance(d.candidate, (int, float)):
                    diff = abs(d.candidate - d.baseline)
                    g[0] = max(g[0], diff)
                    g[1] = max(g[1], diff / max(abs(d.candidate), abs(d.baseline), 1e-12))
                g[2] = d.path
        print(f"\n== {'same seed' if same else 'different seeds'}: {len(pairs)} pair(s), {args.steps} frames")
        print(f"{'family':58} {'max abs':>10} {'max rel':>8}  default tolerance (ratio)")
        for fam, (ad, rd, example) in sorted(agg.items()):
            t = _tolerance_for(example, tol)
            if any(v.get("ignore") and fnmatch.fnmatchcase(example, k) for k, v in tol.items()):
                shown = "ignored"
            elif t["abs"] or t["rel"]:
                shown = f"abs {t['abs']:g} rel {t['rel']:g}"
            else:
                shown = "exact"
            print(f"{fam:58} {ad:10.4g} {rd:8.3g}  {shown}")
    print("\n== pairs compared with the defaults")
    for i, (sa, ra) in enumerate(runs):
        for sb, rb in runs[i + 1:]:
            c = compare(ra, rb, defaults=RUN_TO_RUN_TOLERANCES)
            print(f"seed {sa} vs seed {sb}: {len(compare(ra, rb).differences)} exact differences, "
                  f"{len(c.differences)} beyond the defaults")
    return 0


if __name__ == "__main__":
    sys.exit(main())

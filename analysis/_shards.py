"""The run audit's check across shards: a shard whose actor shares stand apart from the others'.

An incident confined to one shard (its worker tags every row with one actor while the other
shards are healthy) barely moves the pooled shares; against the other shards it is plain.
"""

from __future__ import annotations

import math

import numpy as np

# A shard whose share of an actor sits this far (absolute) and this many binomial standard errors
# from the median shard's share is flagged: far enough to matter, too far to be chance.
OUTLIER_SHARE = 0.10
OUTLIER_SIGMAS = 5.0


def shard_composition(per_shard: dict, names: list) -> tuple[list, dict]:
    """A shard whose share of an actor is far, and far beyond chance, from the median shard's.

    The median, not the pooled share: one bad shard among few would drag a pooled or
    leave-one-out reference toward itself and make its healthy neighbours look odd.
    """
    live = {sh: s for sh, s in per_shard.items() if s["rows"]}
    if len(live) < 2:
        return [], {}
    out = []
    for sh, s in live.items():
        worst = None
        for a in names:
            ref = float(np.median([o["fractions"][a] for o in live.values()]))
            got = s["fractions"][a]
            se = math.sqrt(max(ref * (1 - ref), 1.0 / s["rows"]) / s["rows"])
            if abs(got - ref) >= OUTLIER_SHARE and abs(got - ref) / se >= OUTLIER_SIGMAS:
                if worst is None or abs(got - ref) > abs(worst[1] - worst[2]):
                    worst = (a, got, ref)
        if worst is not None:
            a, got, ref = worst
            out.append({"shard": sh, "code": "SHARD_COMPOSITION", "severity": "error", "actor": a,
                        "message": f"shard {sh!r}: actor {a!r} holds {got:.4f} of its {s['rows']} rows, the median "
                                   f"shard {ref:.4f}: this shard's worker records actors differently",
                        "details": {"share": got, "median_shard": ref}})
    return out, {}

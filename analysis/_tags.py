"""Do the tags carry the behaviour they claim? Where the run records a scripted, deterministic
policy for an actor (the agent's CartPole expert), rows tagged with that actor must take that
policy's action on their state, and rows of the other actors must not all do so. Swapped or
meaningless tags are caught even when the share of each tag looks right.

The policy comes from ``replaystore.agent``, imported here and only here, lazily: without torch or
gymnasium the check is skipped with the reason."""

from __future__ import annotations

import numpy as np

from ._anomalies import Anomaly, run_setting
from ._context import Context, Skip, evidence

EXPERT_AGREEMENT = 0.98   # a deterministic policy agrees with itself on every row; some slack for edge states
LOOKALIKE = 0.995         # another actor agreeing this much with the expert is indistinguishable from it
MIN_ROWS = 30             # rows of an actor in a segment before its agreement is judged
MIN_LOOKALIKE_ROWS = 200
MIN_DISAGREE = 3          # rows off the policy in a segment before it counts (one edge state is not a swap)


def _policy(ctx: Context, expert: str):
    """The expert's action on every row, vectorized; raises Skip when no policy can be had."""
    env = ctx.env
    if env is None or env.policy is None:
        env_id = run_setting(ctx.meta, "env_id")
        raise Skip(f"no scripted policy is known for env_id {env_id!r}; no policy recorded for actor {expert!r}")
    try:
        from replaystore.agent import CartPoleExpert, EnvSpec
    except ImportError as e:
        raise Skip(f"the policy of {expert!r} ({env.policy}) lives in replaystore.agent, which needs torch and "
                   f"gymnasium (pip install 'replaystore[agent]'): {e}") from None
    width = ctx.rows.width
    if width != env.state_dim:
        raise Skip(f"states have {width} elements; {env.policy} drives {env.state_dim}")
    cdim = ctx.store.schema["continuous_action"].shape[0] if ctx.has("continuous_action") else 0
    policy = CartPoleExpert(EnvSpec((width,), 2, cdim))
    state = ctx.rows.head.astype(np.float64)
    action = (state @ policy.gains > 0).astype(np.int64)
    # The vectorized form must be the policy itself: compare with its own call on a few rows.
    probe = np.linspace(0, ctx.n - 1, min(ctx.n, 32)).astype(int)
    own = np.array([policy(state[i])[0] for i in probe])
    if not np.array_equal(own, action[probe]):
        raise Skip(f"{env.policy}'s decisions could not be reproduced over whole columns (its rule changed)")
    return action, f"replaystore.agent.{env.policy} (scripted, deterministic)"


def tag_policy(ctx: Context):
    expert = str(run_setting(ctx.meta, "expert_actor", "expert"))
    ratio = run_setting(ctx.meta, "expert_ratio")
    if expert not in ctx.names:
        raise Skip(f"the expert actor {expert!r} is not in the vocabulary {list(ctx.names)}")
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or ratio <= 0:
        raise Skip(f"the run declares no expert share (expert_ratio {ratio!r}): no rows should follow its policy")
    action, source = _policy(ctx, expert)
    agree = (ctx.cols["discrete_action"].astype(np.int64) == action)
    e = ctx.names.index(expert)
    known = ctx.codes < ctx.A
    g = ctx.seg[known] * ctx.A + ctx.codes[known].astype(np.intp)
    cnt = np.bincount(g, minlength=ctx.nseg * ctx.A).reshape(ctx.nseg, ctx.A)
    hit = np.bincount(g, weights=agree[known], minlength=ctx.nseg * ctx.A).reshape(ctx.nseg, ctx.A)
    whole = hit.sum(0) / np.maximum(1, cnt.sum(0))
    ev = {"policies": {x: (source if x == expert else "no policy recorded: its rows are only checked not to act "
                           "like the expert") for x in ctx.names},
          "agreement_with_expert": {x: float(whole[i]) for i, x in enumerate(ctx.names)},
          "rows": {x: int(cnt[:, i].sum()) for i, x in enumerate(ctx.names)},
          "threshold_expert": EXPERT_AGREEMENT, "threshold_lookalike": LOOKALIKE}
    out = []
    rate = hit[:, e] / np.maximum(1, cnt[:, e])
    segs = np.flatnonzero((cnt[:, e] >= MIN_ROWS) & (rate < EXPERT_AGREEMENT) & (cnt[:, e] - hit[:, e] >= MIN_DISAGREE))
    if segs.size:
        off = ctx.actor_rows(e, segs[0], segs[-1], ~agree)
        w = ctx.where(off)
        worst = float(rate[segs].min())
        out.append(Anomaly(
            "TAG_POLICY", "error",
            f"rows tagged {expert!r} take the expert's action on only {worst:.1%} of their states in {segs.size} of "
            f"{ctx.nseg} segments (threshold {EXPERT_AGREEMENT:.0%}; the expert is deterministic), rows {w['rows']}: "
            "these tags do not carry the expert's behaviour (swapped or meaningless tags)", actor=expert,
            rows=w["rows"], episodes=w["episodes"],
            details=evidence("share of the expert's rows taking its action, worst segment (under)",
                             worst, EXPERT_AGREEMENT, segments=segs.tolist(),
                             segment_rows=ctx.seg_rows, policy=source, **w)))
    for i, x in enumerate(ctx.names):
        if i == e or cnt[:, i].sum() < MIN_LOOKALIKE_ROWS or whole[i] < LOOKALIKE:
            continue
        rows = np.flatnonzero(ctx.codes == i)
        w = ctx.where(rows)
        out.append(Anomaly(
            "TAG_POLICY", "warning",
            f"rows tagged {x!r} take exactly the expert's action on {whole[i]:.1%} of their states (threshold "
            f"{LOOKALIKE:.1%}): they cannot be told apart from the expert's rows", actor=x, rows=w["rows"],
            episodes=w["episodes"],
            details=evidence("share of the actor's rows taking the expert's action (at least)",
                             float(whole[i]), LOOKALIKE, **w)))
    return out, ev

"""Do the tags carry the behaviour they claim? Where a policy is known for an actor, rows tagged
with that actor must take that policy's action on their state, and rows of the other actors must
not all do so. Swapped or meaningless tags are caught even when the share of each tag looks right.

Policies come from three places: the caller (``audit(policies={"expert": fn})``, ``replaystore audit
--policy expert=package.module:function``); the store's metadata (``env.actors.<actor>.policy``),
imported only when the caller trusts it (``trust_policies=True``, ``--trust-metadata-policies``),
because a store is data and opening one must not run code; and the agent's scripted CartPole expert
for the CartPole family, imported from ``replaystore.agent`` (our own code), lazily.

A policy is called on a batch of states ``(n, *state_shape)`` and returns actions ``(n,)`` (discrete)
or ``(n, k)`` (continuous), or a pair ``(discrete, continuous)``; one that fails on a batch, or returns
something else, is called state by state (on at most ``PER_STATE_ROWS`` rows spread over the store)."""

from __future__ import annotations

import importlib

import numpy as np

from ._anomalies import Anomaly, run_setting
from ._context import Context, Skip, evidence

EXPERT_AGREEMENT = 0.98   # a deterministic policy agrees with itself on every row; some slack for edge states
LOOKALIKE = 0.995         # another actor agreeing this much with the expert is indistinguishable from it
MIN_ROWS = 30             # rows of an actor in a segment before its agreement is judged
MIN_LOOKALIKE_ROWS = 200
MIN_DISAGREE = 3          # rows off the policy in a segment before it counts (one edge state is not a swap)
PER_STATE_ROWS = 20_000   # a policy that only takes one state at a time is judged on this many rows
MAX_ROWS = 1_000_000      # a vectorized policy is judged on every row up to this, on a spread sample beyond
BLOCK_ROWS = 65_536
BLOCK_BYTES = 64 << 20    # states handed to a policy at a time, at most: 65,536 rows of 84x84x4 frames were 1.8 GB
PROBE = 5                 # states a policy is first called on, batch and one by one
CONTINUOUS_ATOL = 1e-3    # continuous actions agree within this share of the action range (or absolute)


class PolicyError(ValueError):
    """A policy given to the audit cannot be loaded or called."""


def check_policies(policies) -> dict:
    """``{actor: callable}`` (or ``"package.module:function"`` strings, imported here: the caller
    named them); None is no policy."""
    if policies is None:
        return {}
    if not isinstance(policies, dict):
        raise TypeError(f"policies must be a dict {{actor: function}}, got {type(policies).__name__}")
    out = {}
    for actor, fn in policies.items():
        if isinstance(fn, str):
            fn = load_policy(fn)
        if not callable(fn):
            raise TypeError(f"policies[{actor!r}] must be callable (or 'package.module:function'), got "
                            f"{type(fn).__name__}")
        out[str(actor)] = fn
    return out


def load_policy(spec: str):
    """Import ``package.module:function`` (the function may be a dotted attribute, e.g. ``mod:Cls.act``)."""
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise PolicyError(f"policy {spec!r}: expected 'package.module:function', e.g. 'mygame.experts:act'")
    mod, attr = spec.split(":")
    try:
        obj = importlib.import_module(mod)
    except ImportError as e:
        raise PolicyError(f"policy {spec!r}: module {mod!r} cannot be imported ({e}); is it on PYTHONPATH?") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise PolicyError(f"policy {spec!r}: {obj.__name__ if hasattr(obj, '__name__') else obj!r} has no "
                              f"attribute {part!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise PolicyError(f"policy {spec!r} is a {type(obj).__name__}, not a function")
    return obj


def _split(out, n: int):
    """A policy's answer for ``n`` states as ``(discrete (n,) or None, continuous (n, k) or None)``."""
    if isinstance(out, tuple) and len(out) == 2:
        d, c = out
        d = None if d is None else np.asarray(d)
        c = None if c is None else np.asarray(c, np.float64).reshape(n, -1)
        return (d.reshape(n) if d is not None else None), c
    a = np.asarray(out)
    if a.dtype.kind in "iub":
        return a.reshape(n), None
    if a.dtype.kind == "f":
        return None, a.astype(np.float64).reshape(n, -1)
    raise PolicyError(f"a policy returned {type(out).__name__} of dtype {a.dtype}: expected integer actions, "
                      "float actions, or a pair (discrete, continuous)")


def _mode(fn, probe: np.ndarray, actor: str) -> str:
    """"batch" when ``fn`` answers a batch as it answers each state, else "state"."""
    n = len(probe)
    one = None
    try:
        one = [_split(fn(s), 1) for s in probe]
    except Exception:  # noqa: BLE001 - a batch-only policy may refuse a single state
        one = None
    try:
        d, c = _split(fn(probe), n)
        batch_ok = True
    except Exception:  # noqa: BLE001 - a per-state policy may fail on a batch
        batch_ok = False
    if batch_ok and one is not None:
        same = all((d is None or int(d[i]) == int(o[0][0])) and (c is None or np.allclose(c[i], o[1][0]))
                   for i, o in enumerate(one) if (o[0] is None) == (d is None))
        return "batch" if same else "state"
    if batch_ok:
        return "batch"
    if one is not None:
        return "state"
    raise PolicyError(f"the policy of {actor!r} fails both on a batch of states {probe.shape} and on one state "
                      f"{probe[0].shape}: it must take states shaped like the store's 'state' column")


def _states(ctx: Context, rows: np.ndarray | None, lo: int = 0, hi: int = 0) -> np.ndarray:
    shape = ctx.store.schema["state"].shape
    if rows is None:
        x = ctx.store.read(["state"], lo, hi)["state"]
    else:
        x = ctx.store.gather(rows, ["state"])["state"]
    return np.asarray(x).reshape(len(x), *shape)


def evaluate(ctx: Context, fn, actor: str) -> tuple[np.ndarray, np.ndarray, str]:
    """``(rows, agree, mode)``: the rows judged and whether each takes the policy's action."""
    probe_rows = np.linspace(0, ctx.n - 1, min(ctx.n, PROBE)).astype(np.int64)
    mode = _mode(fn, _states(ctx, probe_rows), actor)
    cap = MAX_ROWS if mode == "batch" else PER_STATE_ROWS
    rows = np.arange(ctx.n) if ctx.n <= cap else np.unique(np.linspace(0, ctx.n - 1, cap).astype(np.int64))
    agree = np.zeros(rows.size, bool)
    s0 = ctx.store.schema["state"]
    block = max(1, min(BLOCK_ROWS, BLOCK_BYTES // max(1, int(np.prod(s0.shape)) * s0.dtype.itemsize)))
    for lo in range(0, rows.size, block):
        r = rows[lo:lo + block]
        s = _states(ctx, None, int(r[0]), int(r[-1]) + 1) if rows.size == ctx.n else _states(ctx, r)
        if mode == "batch":
            d, c = _split(fn(s), len(r))
        else:
            parts = [_split(fn(x), 1) for x in s]
            d = None if parts[0][0] is None else np.concatenate([p[0] for p in parts])
            c = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
        agree[lo:lo + r.size] = _agree(ctx, r, d, c)
    return rows, agree, mode


def _agree(ctx: Context, rows: np.ndarray, d, c) -> np.ndarray:
    if d is not None and "discrete_action" in ctx.cols:
        return ctx.cols["discrete_action"][rows].astype(np.int64) == d.astype(np.int64)
    if c is not None and ctx.has("continuous_action"):
        stored = ctx.store.gather(rows, ["continuous_action"])["continuous_action"].astype(np.float64)
        stored = stored.reshape(len(rows), -1)
        env = ctx.env
        atol = np.full(c.shape[1], CONTINUOUS_ATOL)
        if env is not None and env.action_low is not None and env.action_low.size == c.shape[1]:
            lo, hi = env.action_low, env.action_high
            c = np.clip(c, lo, hi)  # the environment clips what the policy asks for; the store keeps that
            atol = np.where(np.isfinite(hi - lo), CONTINUOUS_ATOL * (hi - lo), CONTINUOUS_ATOL)
        atol = np.maximum(atol, float(ctx.expected.get("policy_atol", 0.0)))
        return (np.abs(stored - c) <= atol + 1e-5 * np.abs(c)).all(axis=1)
    raise Skip("the policy returns " + ("discrete" if d is not None else "continuous")
               + " actions but the store has no such action column")


def _builtin(ctx: Context, expert: str):
    """The agent's scripted CartPole expert, vectorized; raises Skip when it cannot be had."""
    env = ctx.env
    ratio = run_setting(ctx.meta, "expert_ratio")
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or ratio <= 0:
        raise Skip(f"the run declares no expert share (expert_ratio {ratio!r}): no rows should follow its policy")
    try:
        from replaystore.agent import CartPoleExpert, EnvSpec
    except ImportError as e:
        raise Skip(f"the policy of {expert!r} ({env.policy}) lives in replaystore.agent, which needs torch and "
                   f"gymnasium (pip install 'replaystore[agent]'): {e}") from None
    if "discrete_action" not in ctx.cols:
        raise Skip(f"{env.policy} takes discrete actions; the store has no discrete_action column")
    width = ctx.rows.width
    if width != env.state_dim:
        raise Skip(f"states have {width} elements; {env.policy} drives {env.state_dim}")
    cdim = ctx.store.schema["continuous_action"].shape[0] if ctx.has("continuous_action") else 0
    policy = CartPoleExpert(EnvSpec((width,), 2, cdim))
    # The vectorized form must be the policy itself: compare with its own call on a few rows.
    probe = np.linspace(0, ctx.n - 1, min(ctx.n, 32)).astype(np.int64)
    state = ctx.heads(probe)[0].astype(np.float64)
    own = np.array([policy(x)[0] for x in state])
    if not np.array_equal(own, (state @ policy.gains > 0).astype(np.int64)):
        raise Skip(f"{env.policy}'s decisions could not be reproduced over whole columns (its rule changed)")
    stored, agree = ctx.cols["discrete_action"], np.empty(ctx.n, bool)
    for lo, hi, head in ctx.head_blocks("state"):  # every row, block by block: no per-row copy of the states
        np.equal(stored[lo:hi], head.astype(np.float64) @ policy.gains > 0, out=agree[lo:hi])
    return np.arange(ctx.n), agree, f"replaystore.agent.{env.policy} (scripted, deterministic)"


def resolve(ctx: Context) -> tuple[dict, dict]:
    """``({actor: fn or "builtin"}, {actor: why not})``: the policies to check, and those named but not used."""
    out, why = dict(ctx.policies), {}
    unknown = sorted(set(out) - set(ctx.names))
    if unknown:
        raise PolicyError(f"policies given for {unknown}, which are not in the store's vocabulary {list(ctx.names)}")
    env = ctx.env
    for actor, d in (env.actors.items() if env is not None else ()):
        spec = d.get("policy")
        if actor in out or not spec or actor not in ctx.names:
            continue
        if ctx.trust_policies:
            try:
                out[actor] = load_policy(spec)
            except PolicyError as e:  # the store names it; a bad name is the store's finding, not a crash
                why[actor] = f"the store's metadata names policy {spec!r} for {actor!r}, trusted, but {e}"
        else:
            why[actor] = (f"the store's metadata names policy {spec!r} for {actor!r}; it is not imported (a store "
                          f"is data): pass --trust-metadata-policies (audit(trust_policies=True)) or "
                          f"--policy {actor}={spec}")
    expert = str(run_setting(ctx.meta, "expert_actor", "expert"))
    if not out and env is not None and env.policy is not None and expert in ctx.names:
        out[expert] = "builtin"
    return out, why


def tag_policy(ctx: Context):
    policies, unused = resolve(ctx)
    if not policies:
        env_id = run_setting(ctx.meta, "env_id")
        expert = run_setting(ctx.meta, "expert_actor", "expert")
        raise Skip("; ".join(unused.values()) if unused else
                   f"no policy recorded for actor {expert!r} nor any other (env_id {env_id!r}): pass "
                   "audit(policies={actor: fn}) or --policy ACTOR=package.module:function")
    out, ev = [], {"policies": {}, "agreement": {}, "threshold_expert": EXPERT_AGREEMENT,
                   "threshold_lookalike": LOOKALIKE, "not_imported": unused}
    for actor, fn in policies.items():
        if fn == "builtin":
            rows, agree, source = _builtin(ctx, actor)
        else:
            rows, agree, mode = evaluate(ctx, fn, actor)
            name = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
            source = f"{name} (given by the caller; called {'on batches' if mode == 'batch' else 'state by state'})"
        found, e = _judge(ctx, actor, rows, agree, source)
        out += found
        ev["policies"][actor] = source
        ev["agreement"][actor] = e
    for x in ctx.names:
        if x not in policies:
            ev["policies"][x] = ("no policy recorded: its rows are only checked not to act like "
                                 + " or ".join(repr(a) for a in policies))
    if len(policies) == 1:  # the report's older layout: one policy, the expert's
        (actor,) = policies
        ev["agreement_with_expert"] = ev["agreement"][actor]["per_actor"]
        ev["rows"] = ev["agreement"][actor]["rows"]
    return out, ev


def _judge(ctx: Context, p_actor: str, rows: np.ndarray, agree: np.ndarray, source: str):
    e = ctx.names.index(p_actor)
    codes, seg = ctx.codes[rows], ctx.seg[rows]
    known = codes < ctx.A
    g = seg[known] * ctx.A + codes[known].astype(np.intp)
    cnt = np.bincount(g, minlength=ctx.nseg * ctx.A).reshape(ctx.nseg, ctx.A)
    hit = np.bincount(g, weights=agree[known], minlength=ctx.nseg * ctx.A).reshape(ctx.nseg, ctx.A)
    whole = hit.sum(0) / np.maximum(1, cnt.sum(0))
    seg_rate = hit / np.maximum(1, cnt)
    lookalike = {x: np.flatnonzero((cnt[:, i] >= MIN_ROWS) & (seg_rate[:, i] >= EXPERT_AGREEMENT)).tolist()
                 for i, x in enumerate(ctx.names) if i != e and whole[i] < LOOKALIKE}
    ev = {"per_actor": {x: float(whole[i]) for i, x in enumerate(ctx.names)},
          "rows": {x: int(cnt[:, i].sum()) for i, x in enumerate(ctx.names)},
          "judged_rows": int(rows.size), "segments_acting_like_it": {x: v for x, v in lookalike.items() if v}}
    out = []
    rate = seg_rate[:, e]
    segs = np.flatnonzero((cnt[:, e] >= MIN_ROWS) & (rate < EXPERT_AGREEMENT) & (cnt[:, e] - hit[:, e] >= MIN_DISAGREE))
    if segs.size:
        mask = np.zeros(ctx.n, bool)
        mask[rows[~agree]] = True
        off = ctx.actor_rows(e, segs[0], segs[-1], mask)
        w = ctx.where(off)
        worst = float(rate[segs].min())
        out.append(Anomaly(
            "TAG_POLICY", "error",
            f"rows tagged {p_actor!r} take its policy's action on only {worst:.1%} of their states in {segs.size} "
            f"of {ctx.nseg} segments (threshold {EXPERT_AGREEMENT:.0%}; the policy is {source}), rows "
            f"{w['rows']}: these tags do not carry {p_actor!r}'s behaviour (swapped or meaningless tags)",
            actor=p_actor, rows=w["rows"], episodes=w["episodes"],
            details=evidence("share of the actor's rows taking its policy's action, worst segment (under)",
                             worst, EXPERT_AGREEMENT, segments=segs.tolist(),
                             segment_rows=ctx.seg_rows, policy=source,
                             other_actors_acting_like_it=ev["segments_acting_like_it"], **w)))
    for i, x in enumerate(ctx.names):
        if i == e or cnt[:, i].sum() < MIN_LOOKALIKE_ROWS or whole[i] < LOOKALIKE:
            continue
        mine = np.flatnonzero(ctx.codes == i)
        w = ctx.where(mine)
        out.append(Anomaly(
            "TAG_POLICY", "warning",
            f"rows tagged {x!r} take exactly {p_actor!r}'s action on {whole[i]:.1%} of their states (threshold "
            f"{LOOKALIKE:.1%}): they cannot be told apart from {p_actor!r}'s rows", actor=x, rows=w["rows"],
            episodes=w["episodes"],
            details=evidence(f"share of the actor's rows taking {p_actor!r}'s action (at least)",
                             float(whole[i]), LOOKALIKE, **w)))
    return out, ev

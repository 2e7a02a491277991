"""What the fit checks learn from: a bounded sample of rows with their state, state change, action
and reward, and the few environment facts they use (action bounds, discrete action count).

Everything comes from what the audit already holds: the scalar columns read in full and the first
``HEAD`` state elements of every row from the shared row pass (``Context.rows``), so the fit checks
add no pass over the state columns; only ``continuous_action`` is read (one small column). A run of
N rows is learned from at most ``SAMPLE`` of them, spread evenly, so the cost and memory stay
bounded as stores grow; a finding is then refined on the rows around the sampled ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._anomalies import run_setting
from ._context import Context

SAMPLE = 8192  # rows the fit checks learn from and score (evenly spread; every row below this)


@dataclass
class ActionFacts:
    """What the environment's action space is, and where that was read (for the report)."""

    n_actions: int | None      # discrete action count
    low: np.ndarray | None     # continuous action bounds, one per element
    high: np.ndarray | None
    source: str


def action_facts(meta: dict) -> ActionFacts | None:
    """The action space of the run's environment: the metadata ``env`` block (``n_actions``,
    ``action_low``, ``action_high``) first, else gymnasium's registry for a registered ``env_id``
    (the environment is made to read its spaces, never stepped). None when neither knows.

    The one place the fit checks read environment facts: to be rewired to the env-facts module."""
    block = meta.get("env") if isinstance(meta.get("env"), dict) else {}
    n = block.get("n_actions")
    low, high = block.get("action_low"), block.get("action_high")
    if n is not None or (low is not None and high is not None):
        return ActionFacts(int(n) if n is not None else None,
                           None if low is None else np.asarray(low, np.float64).reshape(-1),
                           None if high is None else np.asarray(high, np.float64).reshape(-1),
                           "the store's metadata 'env' block")
    env_id = run_setting(meta, "env_id")
    if not isinstance(env_id, str) or not env_id:
        return None
    try:
        import gymnasium as gym
    except ImportError:
        return None
    if env_id not in gym.registry:
        return None
    try:
        env = gym.make(env_id, disable_env_checker=True)
    except gym.error.Error:  # registered, but its dependencies are missing here
        return None
    try:
        space = env.action_space
        if isinstance(space, gym.spaces.Discrete):
            return ActionFacts(int(space.n), None, None, f"gymnasium's {env_id} action space")
        if isinstance(space, gym.spaces.Box):
            return ActionFacts(None, np.asarray(space.low, np.float64).reshape(-1),
                               np.asarray(space.high, np.float64).reshape(-1), f"gymnasium's {env_id} action space")
        return None
    finally:
        env.close()


@dataclass
class FitData:
    """Per-row arrays the fit checks share. ``sample``: the rows learned from (sorted)."""

    sample: np.ndarray
    state: np.ndarray        # (n, h) first state elements of every row (a view of the row pass)
    delta: np.ndarray        # (n, h) next_state - state, same elements
    action: np.ndarray       # (n, k) the actions as floats: discrete first (if any varies), then continuous
    discrete: np.ndarray | None
    reward: np.ndarray       # (n,) float64


def fit_data(ctx: Context) -> FitData:
    """The shared arrays, made once per audit (kept on the context)."""
    got = getattr(ctx, "_fit_data", None)
    if got is not None:
        return got
    rp = ctx.rows
    n = ctx.n
    state = rp.head
    delta = rp.next_head - rp.head
    parts, disc = [], None
    if ctx.has("discrete_action"):
        d = ctx.cols["discrete_action"]
        if d.size and d.min() != d.max():
            disc = d.astype(np.int64)
            parts.append(disc[:, None].astype(np.float64))
    if ctx.has("continuous_action") and ctx.store.schema["continuous_action"].shape \
            and ctx.store.schema["continuous_action"].shape[0]:
        c = ctx.store.read(["continuous_action"])["continuous_action"]
        parts.append(c.reshape(n, -1).astype(np.float64))
    action = np.concatenate(parts, axis=1) if parts else np.zeros((n, 0))
    reward = ctx.cols["reward"].astype(np.float64)
    sample = np.arange(n) if n <= SAMPLE else np.unique(np.linspace(0, n - 1, SAMPLE).astype(np.int64))
    out = FitData(sample, state, delta, action, disc, reward)
    ctx._fit_data = out
    return out


def standardize(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``x`` scaled per column by its spread over ``rows`` (columns that do not vary keep scale 1)."""
    x = np.asarray(x, np.float64)
    ref = x[rows]
    mu = ref.mean(axis=0)
    sd = ref.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    return (x - mu) / sd


def finite_rows(*arrays) -> np.ndarray:
    ok = np.ones(len(arrays[0]), bool)
    for a in arrays:
        a = np.asarray(a)
        ok &= np.isfinite(a.reshape(len(a), -1)).all(axis=1)
    return ok

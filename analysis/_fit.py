"""What the fit checks learn from: a bounded sample of rows with their state, state change, action
and reward, and the few environment facts they use (action bounds, discrete action count).

The scalar columns come from what the audit already holds; the first ``HEAD`` state elements are
gathered from the store for the rows a check asks for (``Context.heads``), so the fit checks add no
pass over the state columns and hold no per-row copy of them; only ``continuous_action`` is read
(one small column). A run of N rows is learned from at most ``SAMPLE`` of them, spread evenly, so
the cost and memory stay bounded as stores grow; a finding is then refined on the rows around the
sampled ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._anomalies import run_setting
from ._context import GATHER_ROWS, Context, release_pages

SAMPLE = 8192  # rows the fit checks learn from and score (evenly spread; every row below this)


@dataclass
class ActionFacts:
    """What the environment's action space is, and where that was read (for the report)."""

    n_actions: int | None      # discrete action count
    low: np.ndarray | None     # continuous action bounds, one per element
    high: np.ndarray | None
    source: str
    problem: str | None = None  # why a declared space cannot be used (malformed)
    first_action: int = 0       # gymnasium's Discrete(n, start=s): codes s .. s + n - 1


def action_facts(meta: dict) -> ActionFacts | None:
    """The action space of the run's environment: the metadata ``env`` block (``n_actions``,
    ``action_low``, ``action_high``) first, else gymnasium's registry for a registered ``env_id``
    (the environment is made to read its spaces, never stepped). None when neither knows.

    The one place the fit checks read environment facts: to be rewired to the env-facts module."""
    block = meta.get("env") if isinstance(meta.get("env"), dict) else {}
    n = block.get("n_actions")
    low, high = block.get("action_low"), block.get("action_high")
    if n is not None or (low is not None and high is not None):
        return _declared(n, low, high)
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
    except (gym.error.Error, ImportError):  # registered, but its dependencies are missing here
        return None
    try:
        space = env.action_space
        if isinstance(space, gym.spaces.Discrete):
            return ActionFacts(int(space.n), None, None, f"gymnasium's {env_id} action space",
                               first_action=int(space.start))
        if isinstance(space, gym.spaces.Box):
            return ActionFacts(None, np.asarray(space.low, np.float64).reshape(-1),
                               np.asarray(space.high, np.float64).reshape(-1), f"gymnasium's {env_id} action space")
        return None
    finally:
        env.close()


class FitData:
    """What the fit checks read, by row: nothing per row is copied until a check asks for rows.
    ``sample``: the rows learned from (sorted, evenly spread)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.n = ctx.n
        self._last = (None, None, None)  # the rows last gathered: state() and next_state() often ask twice
        self.discrete = None
        if ctx.has("discrete_action"):
            d = ctx.cols["discrete_action"]
            if d.size and d.min() != d.max():
                self.discrete = d
        shape = ctx.store.schema["continuous_action"].shape if ctx.has("continuous_action") else ()
        # the continuous elements, gathered for the rows asked for (never held whole); 0: none
        self.continuous = int(np.prod(shape)) if shape and shape[0] else 0
        self.reward = ctx.cols["reward"]
        n = ctx.n
        self.sample = np.arange(n) if n <= SAMPLE else np.unique(np.linspace(0, n - 1, SAMPLE).astype(np.int64))

    def _heads(self, rows) -> tuple[np.ndarray, np.ndarray]:
        rows = np.asarray(rows, np.int64)
        key = rows.tobytes()
        if self._last[0] != key:
            self._last = (key, *self.ctx.heads(rows))
        return self._last[1], self._last[2]

    def state(self, rows) -> np.ndarray:
        return self._heads(rows)[0].astype(np.float64)

    def next_state(self, rows) -> np.ndarray:
        return self._heads(rows)[1].astype(np.float64)

    def delta(self, rows) -> np.ndarray:
        return self.next_state(rows) - self.state(rows)

    def action(self, rows) -> np.ndarray:
        """The actions as floats: the discrete code (where it varies), then the continuous elements."""
        parts = [] if self.discrete is None else [self.discrete[rows].astype(np.float64)[:, None]]
        if self.continuous:
            rows = np.asarray(rows, np.int64)
            c = np.empty((rows.size, self.continuous))
            for lo in range(0, rows.size, GATHER_ROWS):  # in parts, each part's mapped pages dropped after it
                part = rows[lo:lo + GATHER_ROWS]
                c[lo:lo + part.size] = self.ctx.store.gather(part, ["continuous_action"])["continuous_action"].reshape(
                    part.size, self.continuous)
                release_pages(self.ctx.store)
            parts.append(c)
        return np.concatenate(parts, axis=1) if parts else np.zeros((len(rows), 0))

    def rewards(self, rows) -> np.ndarray:
        return self.reward[rows].astype(np.float64)[:, None]


def _declared(n, low, high) -> ActionFacts:
    """The action space a metadata ``env`` block declares; a malformed one is reported, not used."""
    source = "the store's metadata 'env' block"
    bad = []
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        bad.append(f"n_actions {n!r} (expected a positive integer)")
    bounds = []
    for name, v in (("action_low", low), ("action_high", high)):
        try:
            arr = None if v is None else np.asarray(v, np.float64).reshape(-1)
        except (TypeError, ValueError):
            arr = None
            bad.append(f"{name} {str(v)[:40]!r} (expected a number or a list of numbers)")
        bounds.append(arr)
    lo, hi = bounds
    if lo is not None and hi is not None and not bad and (lo.size != hi.size or np.isnan(lo).any()
                                                            or np.isnan(hi).any() or (lo > hi).any()):
        bad.append(f"action_low {lo.tolist()[:8]} and action_high {hi.tolist()[:8]} (expected equal lengths, "
                   "low <= high)")
    if bad:
        return ActionFacts(None, None, None, source, f"{source} is malformed: " + "; ".join(bad))
    return ActionFacts(None if n is None else int(n), lo, hi, source)


def spread(rows: np.ndarray, k: int) -> np.ndarray:
    """At most ``k`` of ``rows``, evenly spread (all of them when there are fewer)."""
    return rows if rows.size <= k else rows[np.unique(np.linspace(0, rows.size - 1, k).astype(np.int64))]


def fit_data(ctx: Context) -> FitData:
    """The shared reader, made once per audit (kept on the context)."""
    got = getattr(ctx, "_fit_data", None)
    if got is None:
        got = ctx._fit_data = FitData(ctx)
    return got


class Scaler:
    """Per-column centre and spread of a reference matrix (columns that do not vary keep scale 1)."""

    def __init__(self, ref: np.ndarray):
        self.mu = ref.mean(axis=0)
        sd = ref.std(axis=0)
        self.sd = np.where(sd > 1e-12, sd, 1.0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mu) / self.sd


def finite(x: np.ndarray) -> np.ndarray:
    """Rows of a matrix whose values are all finite."""
    return np.isfinite(x).all(axis=1)

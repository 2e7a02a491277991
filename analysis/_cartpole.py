"""Realistic CartPole-v1 runs without torch or gymnasium, for the planted-defect tests and the
recorded buffers in tests/data. Not public.

The physics is gymnasium's CartPole-v1 (Euler integration, the same constants, termination past
12 degrees or 2.4 units, time limit 500, resets uniform in [-0.05, 0.05]); the tests check it
against gymnasium step by step. Actors alternate frame by frame as in the agent: the scripted
expert (the agent's PD controller, deterministic) decides with probability ``expert_ratio``,
otherwise an epsilon-greedy learner whose greedy rule is another linear controller. Rows are laid
out as the agent writes them: one environment, episode after episode.

The ``plant_*`` functions damage a run's columns the way replay bugs do, and return where.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from replaystore.store import Column, ReplayStore, Schema

GRAVITY, MASSCART, MASSPOLE, LENGTH, FORCE, TAU = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
TOTAL_MASS = MASSCART + MASSPOLE
POLEMASS_LENGTH = MASSPOLE * LENGTH
THETA_LIMIT = 12 * 2 * math.pi / 360
X_LIMIT = 2.4
EXPERT_GAINS = (0.1, 0.5, 10.0, 2.0)     # replaystore.agent.CartPoleExpert's defaults
LEARNER_GAINS = (0.0, 0.0, 1.0, 0.005)  # a mediocre learner: balances tens to hundreds of frames
ACTORS = ("expert", "dqn")


def cartpole_step(s: tuple, action: int) -> tuple:
    """gymnasium CartPole-v1's Euler step on the float64 state ``(x, x_dot, theta, theta_dot)``."""
    x, x_dot, theta, theta_dot = s
    force = FORCE if action == 1 else -FORCE
    cos, sin = math.cos(theta), math.sin(theta)
    temp = (force + POLEMASS_LENGTH * theta_dot ** 2 * sin) / TOTAL_MASS
    theta_acc = (GRAVITY * sin - cos * temp) / (LENGTH * (4.0 / 3.0 - MASSPOLE * cos ** 2 / TOTAL_MASS))
    x_acc = temp - POLEMASS_LENGTH * theta_acc * cos / TOTAL_MASS
    return (x + TAU * x_dot, x_dot + TAU * x_acc, theta + TAU * theta_dot, theta_dot + TAU * theta_acc)


def terminated(s: tuple) -> bool:
    return s[0] < -X_LIMIT or s[0] > X_LIMIT or s[2] < -THETA_LIMIT or s[2] > THETA_LIMIT


@dataclass
class CartPoleRun:
    rows: int = 3000
    expert_ratio: float = 0.26
    seed: int = 0
    eps_start: float = 1.0
    eps_end: float = 0.02
    eps_fraction: float = 0.3
    max_steps: int = 500
    collapse_after: int | None = None   # from this row on the learner always pushes left (action 0)
    metadata: dict = field(default_factory=dict)


def simulate(run: CartPoleRun) -> dict:
    """The run's columns: actor codes (0 expert, 1 dqn), states, actions, rewards, done, truncated,
    episode and step numbered as the store numbers them."""
    rng = np.random.default_rng(run.seed)
    n = run.rows
    state = np.empty((n, 4), np.float32)
    next_state = np.empty((n, 4), np.float32)
    action = np.empty(n, np.int32)
    actor = np.empty(n, np.uint8)
    done = np.zeros(n, bool)
    trunc = np.zeros(n, bool)
    who = rng.random(n) < run.expert_ratio
    coin = rng.random(n)
    random_action = rng.integers(0, 2, n)
    span = run.eps_fraction * n
    s = tuple(rng.uniform(-0.05, 0.05, 4))
    t = 0
    for i in range(n):
        obs = np.asarray(s, np.float32)
        state[i] = obs
        u_e = sum(g * v for g, v in zip(EXPERT_GAINS, (float(v) for v in obs)))
        if who[i]:
            a, actor[i] = int(u_e > 0), 0
        else:
            actor[i] = 1
            eps = run.eps_end + (run.eps_start - run.eps_end) * max(0.0, 1.0 - i / span) if span > 0 else run.eps_end
            if run.collapse_after is not None and i >= run.collapse_after:
                a = 0
            elif coin[i] < eps:
                a = int(random_action[i])
            else:
                a = int(sum(g * v for g, v in zip(LEARNER_GAINS, s)) > 0)
        action[i] = a
        s = cartpole_step(s, a)
        t += 1
        next_state[i] = np.asarray(s, np.float32)
        term = terminated(s)
        if term or t >= run.max_steps:
            done[i] = True
            trunc[i] = not term
            s = tuple(rng.uniform(-0.05, 0.05, 4))
            t = 0
    cols = {"actor": actor, "state": state, "next_state": next_state, "discrete_action": action,
            "continuous_action": np.zeros((n, 0), np.float32), "reward": np.ones(n, np.float32),
            "done": done, "truncated": trunc}
    renumber(cols)
    return cols


def renumber(cols: dict) -> None:
    """episode and step as the store fills them: a new episode after each done row."""
    done = cols["done"]
    n = len(done)
    ep = np.zeros(n, np.int64)
    ep[1:] = np.cumsum(done[:-1])
    first = np.flatnonzero(np.r_[True, ep[1:] != ep[:-1]])
    cols["episode"] = ep
    cols["step"] = np.arange(n, dtype=np.int64) - first[ep]


def metadata(run: CartPoleRun) -> dict:
    """What the agent records (``agent.run_metadata``), plus the generator."""
    return {"env_id": "CartPole-v1", "seed": run.seed, "expert_ratio": run.expert_ratio,
            "config": {"env_id": "CartPole-v1", "seed": run.seed, "expert_ratio": run.expert_ratio,
                       "actors": list(ACTORS), "expert_actor": "expert", "dqn_actor": "dqn",
                       "eps_start": run.eps_start, "eps_end": run.eps_end, "eps_fraction": run.eps_fraction},
            "generator": "analysis._cartpole", **run.metadata}


def write(path, cols: dict, meta: dict, *, window: int | None = None) -> None:
    """A new store at ``path`` holding ``cols`` (committed, closed)."""
    cdim = cols["continuous_action"].shape[1] if "continuous_action" in cols else 0
    schema = Schema.transition((4,), cdim, extra=(Column("truncated", np.dtype("bool")),))
    n = len(cols["actor"])
    t0 = 1_700_000_000.0
    with ReplayStore.create(path, schema, actors=ACTORS, window=window or max(1, n), metadata=meta,
                            commit_every=1 << 20, commit_seconds=3600.0) as s:
        s.extend({**cols, "time": t0 + 0.001 * np.arange(n)})


# ---------------------------------------------------------------- planted defects
def _rows(cols, actor: str, start: int) -> np.ndarray:
    code = ACTORS.index(actor)
    return np.flatnonzero(cols["actor"][start:] == code) + start


def plant_negated_rewards(cols, actor="expert", start=0):
    rows = _rows(cols, actor, start)
    cols["reward"][rows] *= -1
    return rows


def plant_scaled_rewards(cols, actor="dqn", start=0, factor=100.0):
    rows = _rows(cols, actor, start)
    cols["reward"][rows] *= factor
    return rows


def plant_next_state_copy(cols, actor="expert", start=0):
    rows = _rows(cols, actor, start)
    cols["next_state"][rows] = cols["state"][rows]
    return rows


def plant_broken_chain(cols, actor="dqn", start=0):
    """The actor's rows store the observation one frame too late (an off-by-one in a frame ring)."""
    rows = _rows(cols, actor, start)
    rows = rows[(rows + 1 < len(cols["done"]))]
    rows = rows[~cols["done"][rows] & ~cols["done"][rows + 1]]
    cols["next_state"][rows] = cols["next_state"][rows + 1]
    return rows


def plant_reset_as_next_state(cols, start=0):
    """Episode ends from ``start`` on store the next episode's reset state as next_state: the
    terminal observation lost to an auto-resetting environment (the classic vector-env bug)."""
    ends = np.flatnonzero(cols["done"][start:-1]) + start
    cols["next_state"][ends] = cols["state"][ends + 1]
    return ends


def plant_duplicate_block(cols, first_episode: int, episodes: int):
    """Episodes ``[first, first + episodes)`` appended a second time right after themselves."""
    ep = cols["episode"]
    sel = np.flatnonzero((ep >= first_episode) & (ep < first_episode + episodes))
    at = sel[-1] + 1
    for k, v in cols.items():
        cols[k] = np.concatenate([v[:at], v[sel], v[at:]])
    renumber(cols)
    return np.arange(at, at + sel.size)


def plant_done_never_set(cols):
    cols["done"][:] = False
    cols["truncated"][:] = False
    renumber(cols)
    return np.arange(len(cols["done"]))


def plant_done_always(cols, actor="expert", start=0):
    """The actor's rows all set done (a wrapper that reports its own step as the episode's end)."""
    rows = _rows(cols, actor, start)
    cols["done"][rows] = True
    renumber(cols)
    return rows


def plant_terminated_dropped(cols, actor="expert"):
    """Episodes whose pole falls on the actor's frame lose their done: its code path passes
    ``truncated`` as done and forgets ``terminated``."""
    rows = np.flatnonzero(cols["done"] & ~cols["truncated"] & (cols["actor"] == ACTORS.index(actor)))
    cols["done"][rows] = False
    cols["truncated"][rows] = False
    renumber(cols)
    return rows


def plant_reused_episode_ids(cols, start: int, back: int = 5):
    """From row ``start`` (an episode start) on, episode ids restart ``back`` episodes earlier."""
    rows = np.arange(start, len(cols["done"]))
    cols["episode"][rows] -= back
    return rows


def plant_step_stuck(cols, start: int):
    """From ``start`` on, step stays 0 (a writer that forgot to count)."""
    rows = np.arange(start, len(cols["done"]))
    cols["step"][rows] = 0
    return rows


def plant_truncated_at_terminal(cols, start: int = 0):
    """Every episode end from ``start`` on flagged truncated, falls of the pole included."""
    rows = np.flatnonzero(cols["done"][start:]) + start
    cols["truncated"][rows] = True
    return rows[np.flatnonzero(np.abs(cols["next_state"][rows, 2]) > THETA_LIMIT - 1e-5)]


def plant_swapped_tags(cols, start: int = 0):
    rows = np.arange(start, len(cols["actor"]))
    cols["actor"][rows] = 1 - cols["actor"][rows]
    return rows


def plant_shuffled_tags(cols, seed: int = 0, start: int = 0):
    rows = np.arange(start, len(cols["actor"]))
    cols["actor"][rows] = np.random.default_rng(seed).permutation(cols["actor"][rows])
    return rows


def plant_scaled_states(cols, actor="expert", factor=100.0):
    rows = _rows(cols, actor, 0)
    cols["state"][rows] *= factor
    cols["next_state"][rows] *= factor
    return rows

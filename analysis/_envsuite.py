"""Realistic runs of environments other than CartPole, for the fit checks' planted suite and their
calibration (benchmarks/calibrate_fit.py). Not public.

Acrobot-v1, MountainCar-v0 and Pendulum-v1 are real gymnasium rollouts (its time limits end episodes
as truncation); ``PointMass`` is a small environment of our own that gymnasium does not know, declared
only by the store's metadata ``env`` block. Actors mix frame by frame as in the agent: a scripted,
deterministic expert with probability ``expert_ratio``, otherwise a noisy learner (epsilon-random
for discrete actions, Gaussian noise clipped to the action space for continuous ones). Metadata
carries the agent's keys (``env_id``, ``seed``, ``expert_ratio``, ``config``).

The ``plant_*`` functions damage a run's columns the way replay bugs do and return
``(code, actor, rows)``: the finding the audit should raise, the actor it should name (None: any)
and the rows it should name (their min and max + 1 are the expected range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from replaystore.store import Column, ReplayStore, Schema

from ._cartpole import plant_duplicate_block, renumber  # CartPole-free helpers on columns

ACTORS = ("expert", "dqn")


# ----------------------------------------------------------------------------- scripted experts
def acrobot_expert(obs: np.ndarray) -> int:
    """Pump energy: torque along the first link's angular velocity (deterministic)."""
    return 2 if obs[4] > 0 else 0


def mountaincar_expert(obs: np.ndarray) -> int:
    """Push along the velocity (solves in about 100-120 steps; deterministic)."""
    return 2 if obs[1] >= 0 else 0


def pendulum_expert(obs: np.ndarray) -> float:
    """Pump energy along the velocity until the pendulum can reach the top, then a PD controller
    near it (deterministic, clipped to [-2, 2]). Energy 0.5 thdot^2 + 15 cos(th) is 15 at rest on top."""
    cos, sin, dth = float(obs[0]), float(obs[1]), float(obs[2])
    th = math.atan2(sin, cos)
    if cos > 0.85:
        u = -10.0 * th - 2.0 * dth
    elif 0.5 * dth * dth + 15.0 * cos < 15.0:
        u = 2.0 if dth >= 0 else -2.0
    else:
        u = 0.0
    return float(np.clip(u, -2.0, 2.0))


def pointmass_expert(obs: np.ndarray) -> float:
    """PD to the origin, clipped to [-1, 1]."""
    return float(np.clip(-2.0 * obs[0] - 1.5 * obs[1], -1.0, 1.0))


# ----------------------------------------------------------------------------- the custom environment
POINTMASS_LIMIT = 100
POINTMASS_META = {"id": "PointMass-v0", "max_episode_steps": POINTMASS_LIMIT, "action_low": [-1.0],
                  "action_high": [1.0], "reward_range": [-50.0, 0.0], "random_reset": True}


class PointMass:
    """A unit mass on a line: state (x, v), force in [-1, 1], reward -(x^2 + 0.1 u^2), dt 0.1.
    Never terminates; the time limit (100 steps) truncates."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.s = np.zeros(2)
        self.t = 0

    def reset(self):
        self.s = self.rng.uniform([-2.0, -0.5], [2.0, 0.5])
        self.t = 0
        return self.s.astype(np.float32), {}

    def step(self, u):
        u = float(np.clip(np.asarray(u, np.float64).reshape(-1)[0], -1.0, 1.0))
        x, v = self.s
        r = -(x * x + 0.1 * u * u)
        v = v + 0.1 * u
        x = x + 0.1 * v
        self.s = np.array([x, v])
        self.t += 1
        return self.s.astype(np.float32), float(r), False, self.t >= POINTMASS_LIMIT, {}


# ----------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class EnvSpec:
    env_id: str
    expert: object
    n_actions: int        # discrete action count; 0 for continuous actions
    low: float = 0.0      # continuous action bounds (one element)
    high: float = 0.0
    noise: float = 0.0    # the learner's Gaussian noise on the expert's action (continuous)
    custom: bool = False  # not registered in gymnasium: facts come from metadata only


ENVS = {
    "Acrobot-v1": EnvSpec("Acrobot-v1", acrobot_expert, 3),
    "MountainCar-v0": EnvSpec("MountainCar-v0", mountaincar_expert, 3),
    "Pendulum-v1": EnvSpec("Pendulum-v1", pendulum_expert, 0, -2.0, 2.0, noise=1.0),
    "PointMass-v0": EnvSpec("PointMass-v0", pointmass_expert, 0, -1.0, 1.0, noise=0.5, custom=True),
}


@dataclass(frozen=True)
class Run:
    env_id: str
    rows: int = 4000
    expert_ratio: float = 0.3
    seed: int = 0
    eps: float = 0.3  # the learner's share of random actions (discrete)
    declared_ratio: float | None = None  # the expert share the metadata declares (default: expert_ratio)
    whole_episodes: bool = False  # the expert plays whole demonstration episodes instead of single frames


def _make(spec: EnvSpec, seed: int):
    if spec.custom:
        return PointMass(seed)
    import gymnasium as gym

    env = gym.make(spec.env_id, disable_env_checker=True)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env


def simulate(run: Run) -> dict:
    """The run's columns (actor codes 0 expert, 1 dqn), with the raw, unclipped learner action kept
    under ``_raw_action`` for the planter of pre-clip actions (not written to the store)."""
    spec = ENVS[run.env_id]
    env = _make(spec, run.seed)
    rng = np.random.default_rng(run.seed + 1000)
    n = run.rows
    obs, _ = env.reset()
    dim = len(obs)
    state = np.empty((n, dim), np.float32)
    next_state = np.empty((n, dim), np.float32)
    actor = (rng.random(n) >= run.expert_ratio).astype(np.uint8)
    demo = np.random.default_rng(run.seed + 2000)  # its own stream: frame-mixed runs stay as they were
    episode_actor = int(demo.random() >= run.expert_ratio)
    disc = np.zeros(n, np.int32)
    cont = np.zeros((n, 0 if spec.n_actions else 1), np.float32)
    raw = np.zeros(n, np.float32)
    reward = np.empty(n, np.float32)
    done = np.zeros(n, bool)
    trunc = np.zeros(n, bool)
    for i in range(n):
        state[i] = obs
        if run.whole_episodes:
            actor[i] = episode_actor
        a = spec.expert(obs)
        if spec.n_actions:
            if actor[i] and rng.random() < run.eps:
                a = int(rng.integers(spec.n_actions))
            disc[i] = a
            act = a
        else:
            if actor[i]:
                a = a + spec.noise * rng.standard_normal()
            raw[i] = a
            cont[i, 0] = np.clip(a, spec.low, spec.high)
            act = cont[i].astype(np.float32)
        obs, r, term, tr, _ = env.step(act)
        next_state[i] = obs
        reward[i] = r
        if term or tr:
            done[i], trunc[i] = True, bool(tr and not term)
            obs, _ = env.reset()
            episode_actor = int(demo.random() >= run.expert_ratio)
    cols = {"actor": actor, "state": state, "next_state": next_state, "discrete_action": disc,
            "continuous_action": cont, "reward": reward, "done": done, "truncated": trunc, "_raw_action": raw}
    renumber(cols)
    return cols


def episode_start_after(cols, row: int) -> int:
    """The first row at or after ``row`` that starts an episode."""
    starts = np.flatnonzero(cols["step"] == 0)
    return int(starts[starts >= row][0])


def metadata(run: Run) -> dict:
    """What the agent records (``agent.run_metadata``); the custom environment adds its ``env`` block."""
    spec = ENVS[run.env_id]
    ratio = run.expert_ratio if run.declared_ratio is None else run.declared_ratio
    meta = {"env_id": run.env_id, "seed": run.seed, "expert_ratio": ratio,
            "config": {"env_id": run.env_id, "seed": run.seed, "expert_ratio": ratio,
                       "actors": list(ACTORS), "expert_actor": "expert", "dqn_actor": "dqn",
                       "gamma": 0.99, "n_step": 3, "sampler_strategy": "uniform", "eps_start": run.eps,
                       "eps_end": run.eps, "eps_fraction": 0.0},
            "generator": "analysis._envsuite"}
    if spec.custom:
        meta["env"] = dict(POINTMASS_META)
    return meta


def write(path, cols: dict, meta: dict, *, allow_nonfinite: bool = False) -> None:
    """A new store at ``path`` holding ``cols`` (committed, closed)."""
    dim = cols["state"].shape[1]
    schema = Schema.transition((dim,), cols["continuous_action"].shape[1], allow_nonfinite=allow_nonfinite,
                               extra=(Column("truncated", np.dtype("bool")),))
    n = len(cols["actor"])
    body = {k: v for k, v in cols.items() if not k.startswith("_")}
    with ReplayStore.create(path, schema, actors=ACTORS, window=max(1, n), metadata=meta,
                            commit_every=1 << 20, commit_seconds=3600.0) as s:
        s.extend({**body, "time": 1_700_000_000.0 + 0.001 * np.arange(n)})


# ----------------------------------------------------------------------------- planters: the fit checks
def _rows(cols, actor: str, start: int = 0) -> np.ndarray:
    return np.flatnonzero(cols["actor"][start:] == ACTORS.index(actor)) + start


def plant_shifted_actions(cols, actor="dqn", n_actions=3):
    """One actor's discrete actions stored as ``(a + 1) mod n`` (an off-by-one in its action table)."""
    rows = _rows(cols, actor)
    cols["discrete_action"][rows] = (cols["discrete_action"][rows] + 1) % n_actions
    return "ACTION_FIT", actor, rows


def plant_late_rewards(cols, actor="dqn"):
    """The actor's rows store the reward of the previous transition (its episode's first row keeps
    its own: there is no previous one)."""
    rows = _rows(cols, actor)
    rows = rows[(rows > 0)]
    rows = rows[cols["episode"][rows - 1] == cols["episode"][rows]]
    cols["reward"][rows] = cols["reward"][rows - 1]
    return "REWARD_LAG", actor, rows


def plant_foreign_block(cols, at: int, length: int = 150, seed: int = 0, actor="dqn"):
    """``length`` rows of another environment (CartPole's: a balanced pole, reward +1, its 4-float
    state zero-padded to this state width) inserted at row ``at``, an episode start, as one episode
    tagged ``actor``."""
    from ._cartpole import cartpole_step

    dim = cols["state"].shape[1]
    rng = np.random.default_rng(seed)
    st = tuple(rng.uniform(-0.05, 0.05, 4))
    s = np.zeros((length + 1, dim), np.float32)
    acts = np.zeros(length, np.int32)
    for t in range(length + 1):
        s[t, :min(4, dim)] = np.asarray(st, np.float32)[:min(4, dim)]
        if t < length:
            acts[t] = int(0.1 * st[0] + 0.5 * st[1] + 10 * st[2] + 2 * st[3] > 0)
            st = cartpole_step(st, acts[t])
    block = {"actor": np.full(length, ACTORS.index(actor), np.uint8), "state": s[:-1], "next_state": s[1:],
             "discrete_action": acts,
             "continuous_action": np.zeros((length, cols["continuous_action"].shape[1]), np.float32),
             "reward": np.ones(length, np.float32), "done": np.r_[np.zeros(length - 1, bool), True],
             "truncated": np.r_[np.zeros(length - 1, bool), True], "_raw_action": np.zeros(length, np.float32)}
    for k in block:
        cols[k] = np.concatenate([cols[k][:at], block[k], cols[k][at:]])
    renumber(cols)
    return "FOREIGN_ROWS", actor, np.arange(at, at + length)


def plant_clipped_rewards(cols, actor="dqn", low=-1.0, high=1.0):
    """The actor's rewards clipped to ``[low, high]`` (a reward-clipping wrapper on one code path)."""
    rows = _rows(cols, actor)
    r = cols["reward"][rows]
    changed = rows[(r < low) | (r > high)]
    cols["reward"][rows] = np.clip(r, low, high)
    return "REWARD_CLIPPED", actor, changed


def plant_preclip_actions(cols, actor="dqn", low=-2.0, high=2.0):
    """The actor's continuous actions stored before clipping to the action space ``[low, high]``."""
    rows = _rows(cols, actor)
    cols["continuous_action"][rows, 0] = cols["_raw_action"][rows]
    a = cols["continuous_action"][rows, 0]
    return "ACTION_BOUNDS", actor, rows[(a < low) | (a > high)]


# ----------------------------------------------------------------------------- planters: facts' families
def plant_mislabelled_learner(cols, share=0.1, seed=0):
    """``share`` of the rows, learner rows, relabelled 'expert': a run whose expert acted on 20% of
    the frames and declares 30% reaches its share this way (the learner's actions are not the
    expert's on many of them)."""
    dqn = _rows(cols, "dqn")
    pick = np.sort(np.random.default_rng(seed).choice(dqn, int(share * len(cols["actor"])), replace=False))
    cols["actor"][pick] = ACTORS.index("expert")
    return "TAG_POLICY", "expert", pick


def plant_timelimit_as_done(cols, actor="dqn"):
    """Time-limit ends on the actor's rows stored as terminal (truncated lost)."""
    rows = np.flatnonzero(cols["truncated"] & (cols["actor"] == ACTORS.index(actor)))
    cols["truncated"][rows] = False
    return "BOOTSTRAP_FLAGS", actor, rows


def plant_swapped_segment(cols, start: int, stop: int):
    """Tags swapped between the two actors in rows ``[start, stop)``."""
    rows = np.arange(start, stop)
    cols["actor"][rows] = 1 - cols["actor"][rows]
    return "TAG_POLICY", None, rows


def plant_negated_rewards(cols, actor="dqn"):
    rows = _rows(cols, actor)
    cols["reward"][rows] *= -1
    return "REWARD_SIGN", actor, rows


def plant_duplicated_rows(cols, first_episode: int, episodes: int = 1):
    """Episodes ``[first, first + episodes)`` appended a second time right after themselves."""
    return "DUPLICATE_BLOCK", None, plant_duplicate_block(cols, first_episode, episodes)

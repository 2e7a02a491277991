"""Small real gymnasium runs (Acrobot-v1, MountainCar-v0, Pendulum-v1) for the tests, the notebook
and the calibration of the checks on environments other than CartPole. Not public; needs gymnasium.

Each run mixes, frame by frame as the agent does, a scripted deterministic expert (``EXPERTS``,
vectorized over a batch of states: the policies a user would hand to the audit) and a noisy
learner (the expert's action with probability ``1 - eps``, else a random one; for continuous
actions the expert's torque plus Gaussian noise). Time-limit ends are stored as truncated, the
way the agent stores them. Rows are written with the store's public API.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from replaystore.store import Column, ReplayStore, Schema

ACTORS = ("expert", "dqn")


def acrobot_expert(states):
    """Pump energy: torque along the first link's angular velocity (vectorized)."""
    s = np.asarray(states, np.float64)
    return np.where(s[..., 4] > 0, 2, 0).astype(np.int64)


def mountaincar_expert(states):
    """Push along the velocity (left when at rest): the first swing often ends against the left wall,
    where gymnasium sets the state to exactly (-1.2, 0), so the rest of the episode repeats exactly."""
    s = np.asarray(states, np.float64)
    return np.where(s[..., 1] > 0, 2, 0).astype(np.int64)


def pendulum_expert(states):
    """Swing up by pumping energy, then a PD hold near the top; torque clipped to [-2, 2]."""
    s = np.atleast_2d(np.asarray(states, np.float64))
    cos, sin, w = s[:, 0], s[:, 1], s[:, 2]
    theta = np.arctan2(sin, cos)
    energy = 0.5 * w ** 2 / 3.0 + 10.0 * (cos - 1.0) / 2.0
    pump = np.sign(w * cos + 1e-9) * 2.0 * np.sign(-energy)
    hold = -10.0 * theta - 2.0 * w
    u = np.where(cos > 0.9, hold, pump)
    return np.clip(u, -2.0, 2.0).reshape(-1, 1)


EXPERTS = {"Acrobot-v1": acrobot_expert, "MountainCar-v0": mountaincar_expert, "Pendulum-v1": pendulum_expert}


@dataclass
class GymRun:
    env_id: str = "MountainCar-v0"
    rows: int = 3000
    expert_ratio: float = 0.3
    eps: float = 0.25          # the learner's share of random actions (discrete)
    noise: float = 0.6         # the learner's torque noise (continuous)
    seed: int = 0
    metadata: dict = field(default_factory=dict)


def simulate(run: GymRun) -> dict:
    """The run's columns: actor codes (0 expert, 1 dqn), states, actions, rewards, done, truncated."""
    import gymnasium

    env = gymnasium.make(run.env_id)
    rng = np.random.default_rng(run.seed)
    expert = EXPERTS[run.env_id]
    continuous = not hasattr(env.action_space, "n")
    n = run.rows
    obs_dim = int(np.prod(env.observation_space.shape))
    cols = {"state": np.empty((n, obs_dim), np.float32), "next_state": np.empty((n, obs_dim), np.float32),
            "discrete_action": np.zeros(n, np.int32), "continuous_action": np.zeros((n, 1 if continuous else 0),
                                                                                   np.float32),
            "reward": np.empty(n, np.float32), "done": np.zeros(n, bool), "truncated": np.zeros(n, bool),
            "actor": np.empty(n, np.uint8)}
    who = rng.random(n) < run.expert_ratio
    obs, _ = env.reset(seed=run.seed)
    for i in range(n):
        a_exp = expert(obs[None])[0]
        if who[i]:
            a = a_exp
        elif continuous:
            a = np.clip(a_exp + rng.normal(0, run.noise, 1), -2.0, 2.0)
        else:
            a = rng.integers(env.action_space.n) if rng.random() < run.eps else a_exp
        nxt, r, term, trunc, _ = env.step(np.asarray(a, np.float32) if continuous else int(a))
        cols["state"][i], cols["next_state"][i] = obs, nxt
        if continuous:
            cols["continuous_action"][i] = a
        else:
            cols["discrete_action"][i] = a
        cols["reward"][i], cols["actor"][i] = r, 0 if who[i] else 1
        cols["done"][i], cols["truncated"][i] = term or trunc, trunc and not term
        obs = env.reset()[0] if term or trunc else nxt
    env.close()
    return cols


def metadata(run: GymRun, *, declare=True) -> dict:
    """What the agent records, plus an ``env`` block declaring the expert deterministic (``declare``)."""
    meta = {"env_id": run.env_id, "seed": run.seed, "expert_ratio": run.expert_ratio,
            "config": {"env_id": run.env_id, "expert_ratio": run.expert_ratio, "actors": list(ACTORS),
                       "expert_actor": "expert"}, "generator": "analysis._gymruns"}
    if declare:
        meta["env"] = {"actors": {"expert": {"deterministic": True}}}
    return {**meta, **run.metadata}


def write(path, cols: dict, meta: dict) -> None:
    """A new store at ``path`` holding ``cols`` (episode and step numbered by the store)."""
    obs = cols["state"].shape[1:]
    schema = Schema.transition(obs, cols["continuous_action"].shape[1],
                               extra=(Column("truncated", np.dtype("bool")),))
    n = len(cols["actor"])
    with ReplayStore.create(path, schema, actors=ACTORS, window=max(1, n), metadata=meta,
                            commit_every=1 << 20, commit_seconds=3600.0) as s:
        s.extend({k: v for k, v in cols.items() if k not in ("episode", "step")}
                 | {"time": 1_700_000_000.0 + 0.001 * np.arange(n)})


def episodes(cols: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(episode id, step)`` of every row, as the store numbers them."""
    done = cols["done"]
    ep = np.zeros(len(done), np.int64)
    ep[1:] = np.cumsum(done[:-1])
    first = np.flatnonzero(np.r_[True, ep[1:] != ep[:-1]])
    return ep, np.arange(len(done)) - first[ep]


# ---------------------------------------------------------------- planted defects
def plant_fake_expert(cols, share: float = 0.1, seed: int = 0) -> np.ndarray:
    """Learner rows tagged 'expert' (``share`` of all rows): the declared share reached by relabelling."""
    learner = np.flatnonzero(cols["actor"] == 1)
    rows = np.sort(np.random.default_rng(seed).choice(learner, int(share * len(cols["actor"])), replace=False))
    cols["actor"][rows] = 0
    return rows


def plant_swapped_tags(cols, start: int, stop: int) -> np.ndarray:
    """Tags swapped between the two actors in rows ``[start, stop)`` (shares unchanged in a 50/50 run)."""
    cols["actor"][start:stop] = 1 - cols["actor"][start:stop]
    return np.arange(start, stop)


def plant_negated_rewards(cols, actor: int = 1) -> np.ndarray:
    rows = np.flatnonzero(cols["actor"] == actor)
    cols["reward"][rows] *= -1
    return rows


def plant_limit_as_terminal(cols, actor: int = 1) -> np.ndarray:
    """Time-limit ends of ``actor``'s rows stored as terminal (done, truncated dropped)."""
    rows = np.flatnonzero(cols["truncated"] & (cols["actor"] == actor))
    cols["truncated"][rows] = False
    return rows


def plant_appended_twice(cols, start: int, length: int) -> np.ndarray:
    """Rows ``[start, start + length)`` appended a second time right after themselves."""
    at = start + length
    for k, v in cols.items():
        cols[k] = np.concatenate([v[:at], v[start:at], v[at:]])
    return np.arange(at, at + length)


def plant_shuffled_tags(cols, seed: int = 0) -> np.ndarray:
    """Tags permuted at random over the whole run: shares unchanged, no information about behaviour."""
    cols["actor"][:] = np.random.default_rng(seed).permutation(cols["actor"])
    return np.arange(len(cols["actor"]))

"""The planted suite beyond CartPole: clean controls and planted bugs on Acrobot-v1, MountainCar-v0,
Pendulum-v1 (real gymnasium rollouts) and PointMass-v0 (declared by metadata only). Each case is
simulated once per test session (the simulations are cached here) and audited once."""

from __future__ import annotations

import functools

import numpy as np

from replaystore.analysis import _envsuite as es

ROWS = 3000

# name -> Run settings
CONTROLS = {
    "acrobot_s0": dict(env_id="Acrobot-v1", seed=0),
    "acrobot_s1_r05": dict(env_id="Acrobot-v1", seed=1, expert_ratio=0.5),
    "mountaincar_s0": dict(env_id="MountainCar-v0", seed=0),
    "mountaincar_s1": dict(env_id="MountainCar-v0", seed=1),
    "pendulum_s0": dict(env_id="Pendulum-v1", seed=0),
    "pendulum_s1_r05": dict(env_id="Pendulum-v1", seed=1, expert_ratio=0.5),
    "pointmass_s0": dict(env_id="PointMass-v0", seed=0),
}

# name -> (run settings, planter, keyword arguments; "at": None = the first episode start past the middle),
# and how far the reported range may miss the planted one at each end: 0 (row-exact), or "segment"
FIT_DEFECTS = {
    "acrobot_shifted_actions": (CONTROLS["acrobot_s0"], "shifted_actions", {}, "segment"),
    "mountaincar_shifted_actions": (CONTROLS["mountaincar_s1"], "shifted_actions", {}, "segment"),
    "acrobot_foreign_block": (CONTROLS["acrobot_s0"], "foreign_block", {"at": None}, 0),
    "pendulum_late_rewards": (CONTROLS["pendulum_s0"], "late_rewards", {}, "segment"),
    "pointmass_late_rewards": (CONTROLS["pointmass_s0"], "late_rewards", {}, "segment"),
    "pendulum_clipped_rewards": (CONTROLS["pendulum_s0"], "clipped_rewards", {}, 0),
    "pendulum_preclip_actions": (CONTROLS["pendulum_s1_r05"], "preclip_actions", {}, 0),
    "pointmass_preclip_actions": (CONTROLS["pointmass_s0"], "preclip_actions", {"low": -1.0, "high": 1.0}, 0),
}

# facts' families (their checks are built on another branch): same layout
FACTS_DEFECTS = {
    "acrobot_mislabelled_learner": (dict(env_id="Acrobot-v1", seed=2, expert_ratio=0.2, declared_ratio=0.3),
                                    # relabelled rows are spread over the whole run: the finding spans the ones
                                    # it caught, which can stop short of the last planted row
                                    "mislabelled_learner", {}, 300),
    "pendulum_timelimit_as_done": (CONTROLS["pendulum_s0"], "timelimit_as_done", {}, 0),
    "pendulum_swapped_segment": (CONTROLS["pendulum_s1_r05"], "swapped_segment", {"start": 1200, "stop": 1800},
                                 "segment"),
    "acrobot_negated_rewards": (CONTROLS["acrobot_s1_r05"], "negated_rewards", {}, 0),
    "mountaincar_duplicated_rows": (CONTROLS["mountaincar_s0"], "duplicated_rows", {"first_episode": 8}, 0),
}


@functools.lru_cache(maxsize=None)
def _simulated(settings: tuple) -> dict:
    return es.simulate(es.Run(rows=ROWS, **dict(settings)))


def build(root, name: str, settings: dict, plant: str | None = None, kw: dict | None = None):
    """Write the case to ``root/name.h5``: ``(path, columns, (code, actor, rows) or None)``."""
    cols = {k: v.copy() for k, v in _simulated(tuple(sorted(settings.items()))).items()}
    planted = None
    if plant is not None:
        kw = dict(kw or {})
        if kw.get("at", 0) is None:
            kw["at"] = es.episode_start_after(cols, len(cols["step"]) // 2)
        planted = getattr(es, f"plant_{plant}")(cols, **kw)
    path = root / f"{name}.h5"
    es.write(path, cols, es.metadata(es.Run(rows=ROWS, **settings)))
    return str(path), cols, planted


def localized(finding, rows: np.ndarray, slack) -> bool:
    """The finding's row range is the planted rows' [min, max + 1], within ``slack`` rows at each end."""
    s = finding.details["segment_rows"] if slack == "segment" else slack
    lo, hi = int(rows.min()), int(rows.max()) + 1
    return lo - s <= finding.rows[0] <= lo + s and hi - s <= finding.rows[1] <= hi + s

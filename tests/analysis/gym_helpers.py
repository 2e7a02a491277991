"""Real gymnasium runs for the analysis tests (a uniquely named helper module), audited once per session.

Each case: (env id, GymRun settings, metadata over the run's, plant function of analysis._gymruns and
its keyword arguments, or None for a clean control)."""

from __future__ import annotations

import pytest

CASES = {
    "acrobot_clean": ("Acrobot-v1", {}, {}, None),
    "mountaincar_clean": ("MountainCar-v0", {}, {}, None),
    "pendulum_clean": ("Pendulum-v1", {}, {}, None),
    "mountaincar_fake_expert": ("MountainCar-v0", {"expert_ratio": 0.2}, {"expert_ratio": 0.3},
                                ("plant_fake_expert", {"share": 0.1})),
    "pendulum_fake_expert": ("Pendulum-v1", {"expert_ratio": 0.2}, {"expert_ratio": 0.3},
                             ("plant_fake_expert", {"share": 0.1})),
    "acrobot_swapped": ("Acrobot-v1", {"expert_ratio": 0.5}, {}, ("plant_swapped_tags", {"start": 1500, "stop": 2100})),
    "acrobot_negated": ("Acrobot-v1", {}, {}, ("plant_negated_rewards", {"actor": 1})),
    "pendulum_limit_terminal": ("Pendulum-v1", {}, {}, ("plant_limit_as_terminal", {"actor": 1})),
    "mountaincar_appended_twice": ("MountainCar-v0", {}, {}, ("plant_appended_twice", {"start": 1200, "length": 64})),
    "mountaincar_pure_expert": ("MountainCar-v0", {"expert_ratio": 1.0}, {}, None),
    "mountaincar_shuffled": ("MountainCar-v0", {"expert_ratio": 0.5}, {}, ("plant_shuffled_tags", {})),
}
CLEAN = ("acrobot_clean", "mountaincar_clean", "pendulum_clean")


def make(tmp, name: str, rows: int = 3000, seed: int = 1, meta=None) -> tuple[str, object]:
    """Simulate, plant and write case ``name``: ``(path, planted rows or None)``."""
    from replaystore.analysis import _gymruns as g

    env, settings, extra, plant = CASES[name]
    run = g.GymRun(env_id=env, rows=rows, seed=seed, **settings)
    cols = g.simulate(run)
    planted = getattr(g, plant[0])(cols, **plant[1]) if plant else None
    path = str(tmp / f"{name}.h5")
    g.write(path, cols, {**g.metadata(run), **extra, **(meta or {})})
    return path, planted


@pytest.fixture(scope="session")
def gym_runs(tmp_path_factory):
    """``{name: (path, planted rows or None)}`` for every case (gymnasium is a test dependency)."""
    tmp = tmp_path_factory.mktemp("gym")
    return {name: make(tmp, name) for name in CASES}


@pytest.fixture(scope="session")
def gym_audits(gym_runs):
    """``{name: (report, planted rows or None)}``: each case audited once with what its store declares."""
    from replaystore.analysis import audit

    return {name: (audit(path), planted) for name, (path, planted) in gym_runs.items()}

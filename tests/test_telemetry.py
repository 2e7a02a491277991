"""``replaystore.Telemetry``: telemetry from a user's own training loop, with numpy only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import replaystore as rs
from replaystore.store import TRAIN_SAMPLES, TRAIN_STEPS

HERE = os.path.dirname(os.path.abspath(__file__))
HEALTHY = os.path.join(HERE, "data", "healthy.h5")  # recorded by the demo agent

# A user's own loop: its own "network" (a linear Q in numpy), the store's numpy sampler, and the
# two telemetry calls. torch is made unimportable first, so the loop proves it needs none.
CUSTOM_LOOP = textwrap.dedent("""
    import sys
    sys.modules["torch"] = None
    import numpy as np
    import replaystore as rs

    path, fault = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(0)
    n = 4000
    store = rs.ReplayStore.create(path, rs.Schema.transition((4,), 0), actors=("expert", "dqn"),
                                  metadata={"expert_ratio": 0.25})
    actor = np.where(rng.random(n) < 0.25, "expert", "dqn")
    state = rng.normal(size=(n, 4)).astype("f4")
    store.extend({"state": state, "next_state": state, "discrete_action": rng.integers(0, 2, n),
                  "continuous_action": np.zeros((n, 0), "f4"), "reward": np.ones(n, "f4"),
                  "done": (np.arange(n) % 50) == 49, "actor": actor})
    store.commit()
    w = rng.normal(size=(4, 2))
    sampler = rs.Sampler(store, 64, seed=1, columns=["state", "discrete_action", "reward", "actor"])
    tel = rs.Telemetry(store, block=16)
    for step in range(1, 201):
        b = sampler.sample()
        q = (b["state"] @ w)[np.arange(64), b["discrete_action"]]
        target = b["reward"] + 0.9 * q.mean()
        td = target - q
        if fault == "td_imbalance":
            td = np.where(b["actor"] == 0, td * 50.0, td)
        loss = float(np.mean(td ** 2)) if not (fault == "nan_loss" and step == 100) else float("nan")
        batch_actors = b["actor"] if fault != "batch_skew" else np.ones(64, np.uint8)  # all "dqn"
        tel.log_step(step, loss=loss, actors=batch_actors, td=td, reward=b["reward"], q=q,
                     grad_norm={"dqn": 1.0, "expert": 0.5} if step % 10 == 0 else None)
        if step % 10 == 0:
            codes = b["actor"] if fault != "actor_mismatch" else 1 - b["actor"]
            tel.log_samples(step, b["row"], codes, td, q, np.full(64, target))
    tel.close()
    sampler.close()
    store.close()
""")


def _custom_run(tmp_path, fault="none") -> str:
    path = str(tmp_path / f"custom_{fault}.h5")
    script = tmp_path / "loop.py"
    script.write_text(CUSTOM_LOOP)
    r = subprocess.run([sys.executable, str(script), path, fault], capture_output=True, text=True, timeout=120)
    assert 0 == r.returncode, r.stderr
    return path


def _shape(x):
    """The keys of a nested report section (its structure, not its numbers)."""
    if isinstance(x, dict):
        return {k: _shape(v) for k, v in x.items() if not isinstance(v, dict) or k not in ("per_actor",)}
    return None


def test_custom_loop_gets_every_audit_section_the_agent_gets(tmp_path):
    """A numpy-only loop using Telemetry has the demo agent's training sections in its audit, filled."""
    mine = rs.audit(_custom_run(tmp_path)).to_dict()
    agent = rs.audit(HEALTHY).to_dict()
    for section in ("training", "samples", "batch_vs_buffer"):
        assert set(agent[section]) == set(mine[section]), section
        assert agent[section].get("status") == mine[section].get("status"), section
    assert "NO_TELEMETRY" not in [a["code"] for a in mine["anomalies"]]
    assert 200 == mine["store"]["tables"][TRAIN_STEPS]
    assert 20 * 64 == mine["store"]["tables"][TRAIN_SAMPLES]


@pytest.mark.parametrize("fault,code", [("nan_loss", "NONFINITE_LOSS"), ("actor_mismatch", "SAMPLE_ACTOR_MISMATCH"),
                                        ("td_imbalance", "TD_IMBALANCE"), ("batch_skew", "BATCH_COMPOSITION")])
def test_custom_loop_faults_are_flagged_by_the_audit(tmp_path, fault, code):
    """The audit's telemetry checks fire on a custom loop's telemetry as they do on the agent's."""
    codes = [a["code"] for a in rs.audit(_custom_run(tmp_path, fault)).to_dict()["anomalies"]]
    assert code in codes
    assert code not in [a["code"] for a in rs.audit(_custom_run(tmp_path)).to_dict()["anomalies"]]


@pytest.fixture
def store(tmp_path):
    s = rs.ReplayStore.create(tmp_path / "t.h5", rs.Schema.transition((2,), 0), actors=("expert", "dqn", "human"))
    yield s
    s.close()


def test_per_sample_form_computes_per_actor_counts_and_means(store):
    """Counts, mean |TD|, reward and Q per actor match values computed here; an absent actor's means are NaN."""
    tel = rs.Telemetry(store)
    actors = np.array(["dqn", "expert", "dqn", "dqn"])
    td, rew, q = np.array([1.0, -2.0, -3.0, 0.5]), np.array([1.0, 0.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0, 7.0])
    tel.log_step(7, loss=1.5, actors=actors, td=td, reward=rew, q=q)
    tel.close()
    store.commit()
    t = store.read_table(TRAIN_STEPS)
    assert [7] == t["step"].tolist() and [1.5] == t["loss"].tolist()
    assert [[1, 3, 0]] == t["batch_count"].tolist()
    np.testing.assert_allclose([2.0, 4.5 / 3], t["td_abs_mean"][0, :2], rtol=1e-6)
    np.testing.assert_allclose([0.0, 2.0], t["reward_mean"][0, :2], rtol=1e-6)
    np.testing.assert_allclose([5.0, 17.0 / 3], t["q_mean"][0, :2], rtol=1e-6)
    assert np.isnan(t["td_abs_mean"][0, 2]) and np.isnan(t["grad_norm"][0]).all()


def test_per_actor_form_and_dicts(store):
    """Per-actor values in vocabulary order or as {actor: value} land in the columns as given."""
    tel = rs.Telemetry(store)
    tel.log_step(1, loss=0.1, batch_count={"dqn": 6, "expert": 2}, td_abs_mean=[0.3, 0.2, np.nan],
                 reward_mean=[1, 1, np.nan], q_mean=[2, 3, np.nan], grad_norm={"dqn": 9.0})
    tel.flush()
    store.commit()
    t = store.read_table(TRAIN_STEPS)
    assert [[2, 6, 0]] == t["batch_count"].tolist()
    assert 9.0 == t["grad_norm"][0, 1] and np.isnan(t["grad_norm"][0, [0, 2]]).all()


def test_samples_rows_and_codes(store):
    """log_samples writes one row per sample with the actor as a code."""
    tel = rs.Telemetry(store)
    tel.log_samples(3, [0, 5], ["human", "dqn"], [0.5, -0.5], [1.0, 2.0], [1.5, 1.5])
    store.commit()
    t = store.read_table(TRAIN_SAMPLES)
    assert ([3, 3], [0, 5], [2, 1]) == (t["step"].tolist(), t["row"].tolist(), t["actor"].tolist())


def test_bad_calls_raise_with_the_fix(store):
    """Mixed forms, missing actors, wrong lengths, unknown actors and non-integer steps are refused."""
    tel = rs.Telemetry(store)
    with pytest.raises(rs.TelemetryError, match="both actors=.*pass one form"):
        tel.log_step(1, loss=0.0, actors=["dqn"], td=[1.0], batch_count=[0, 1, 0])
    with pytest.raises(rs.TelemetryError, match="need actors="):
        tel.log_step(1, loss=0.0, td=[1.0])
    with pytest.raises(rs.TelemetryError, match="actors are missing"):
        tel.log_step(1, loss=0.0)
    with pytest.raises(rs.errors.ShapeError, match="td has 2 values but actors has 1"):
        tel.log_step(1, loss=0.0, actors=["dqn"], td=[1.0, 2.0])
    with pytest.raises(rs.errors.ShapeError, match=r"batch_count has shape \(2,\), expected \(3,\)"):
        tel.log_step(1, loss=0.0, batch_count=[1, 2])
    with pytest.raises(rs.TelemetryError, match=r"names \['robot'\], not in the vocabulary"):
        tel.log_step(1, loss=0.0, batch_count={"robot": 1})
    with pytest.raises(rs.errors.UnknownActorError, match="robot"):
        tel.log_step(1, loss=0.0, actors=["robot"])
    with pytest.raises(rs.TelemetryError, match="expected an integer training step"):
        tel.log_step(1.5, loss=0.0, batch_count=[1, 0, 0])
    with pytest.raises(rs.errors.ShapeError, match="rows has 2 values"):
        tel.log_samples(1, [0, 1], ["dqn"], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0])
    tel.close()
    assert 0 == store.tables.get(TRAIN_STEPS, 0)


def test_agent_writes_through_telemetry():
    """The demo agent's TrainLog is a Telemetry: one code path writes the tables."""
    from replaystore.agent._trainlog import TrainLog

    assert issubclass(TrainLog, rs.Telemetry)
    assert json.loads(json.dumps(sorted(rs.__all__))) and "Telemetry" in rs.__all__


def test_own_scalars_go_to_their_table_and_tensorboard(store, tmp_path):
    """**scalars land in train_scalars (same names every step) and in TensorBoard, live and exported."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from replaystore.common.telemetry import TRAIN_SCALARS
    from replaystore.cli import main

    tel = rs.Telemetry(store, tensorboard=tmp_path / "live")
    tel.log_step(1, loss=0.5, batch_count=[1, 1, 0], lr=1e-3, epsilon=0.5)
    tel.log_step(2, loss=0.4, batch_count=[1, 1, 0], lr=5e-4, epsilon=float("nan"))
    with pytest.raises(rs.TelemetryError, match=r"scalars \['lr'\] but earlier steps gave \['epsilon', 'lr'\]"):
        tel.log_step(3, loss=0.3, batch_count=[1, 1, 0], lr=1e-4)
    tel.close()
    store.close()
    with rs.ReplayStore.open(store.path) as r:
        t = r.read_table(TRAIN_SCALARS)
    assert [1, 2] == t["step"].tolist()
    np.testing.assert_array_equal(np.array([1e-3, 5e-4], np.float32), t["lr"])
    assert 0.5 == t["epsilon"][0] and np.isnan(t["epsilon"][1])
    assert 0 == main(["tensorboard", store.path, "--out", str(tmp_path / "exported")])
    for d in ("live", "exported"):
        acc = EventAccumulator(str(tmp_path / d))
        acc.Reload()
        got = [(e.step, np.float32(e.value)) for e in acc.Scalars("lr")]
        assert [(1, np.float32(1e-3)), (2, np.float32(5e-4))] == got


def test_own_scalar_named_like_a_column_is_refused(store):
    """A scalar that shadows a train_steps column (e.g. q_mean passed through **scalars by mistake) is refused."""
    tel = rs.Telemetry(store)
    with pytest.raises(rs.TelemetryError, match=r"scalars \['time'\] are train_steps columns"):
        tel.log_step(1, loss=0.1, batch_count=[1, 0, 0], time=3.0)


def test_torch_tensors_are_accepted(store):
    """A torch loop passes its tensors as they are (detached and moved to the CPU here)."""
    import torch  # the [agent] extra, installed with the tests; the numpy path is tested without torch
    tel = rs.Telemetry(store)
    td = torch.tensor([0.5, -1.5], requires_grad=True)
    tel.log_step(torch.tensor(4), loss=(td ** 2).mean(), actors=torch.tensor([1, 0]), td=td,
                 reward=torch.ones(2), q=torch.tensor([2.0, 4.0]))
    tel.log_samples(4, torch.tensor([3, 7]), torch.tensor([1, 0]), td, torch.zeros(2), torch.ones(2))
    tel.close()
    store.commit()
    t = store.read_table(TRAIN_STEPS)
    assert ([4], [[1, 1, 0]]) == (t["step"].tolist(), t["batch_count"].tolist())
    np.testing.assert_allclose([1.5, 0.5], t["td_abs_mean"][0, :2])
    np.testing.assert_allclose([1.25], t["loss"])
    assert [3, 7] == store.read_table(TRAIN_SAMPLES)["row"].tolist()

"""TensorBoard scalars: ``replaystore tensorboard RUN --out DIR`` and the live files of ``train``,
read back with TensorBoard's own EventAccumulator and checked against the store's tables."""

from __future__ import annotations

import os

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from replaystore.cli import main
from replaystore.store import TRAIN_STEPS, ReplayStore

HEALTHY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "healthy.h5")


def _scalars(logdir) -> dict[str, tuple[list[int], np.ndarray]]:
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})  # 0: keep every event
    acc.Reload()
    return {t: ([e.step for e in acc.Scalars(t)], np.array([e.value for e in acc.Scalars(t)]))
            for t in acc.Tags()["scalars"]}


def test_export_equals_the_store_tables(tmp_path, capsys):
    """Every step's loss, batch shares and per-actor means, and every episode's return, as in the store."""
    assert 0 == main(["tensorboard", HEALTHY, "--out", str(tmp_path / "tb")])
    assert "wrote 200 training steps" in capsys.readouterr().out
    got = _scalars(tmp_path / "tb")
    with ReplayStore.open(HEALTHY) as s:
        t = s.read_table(TRAIN_STEPS)
        actors = s.actors.names
        tr = s.read(["reward", "done", "actor", "time"])
    steps = t["step"].tolist()
    assert (steps, t["loss"].astype(np.float32).tolist()) == (got["train/loss"][0], got["train/loss"][1].tolist())
    for i, a in enumerate(actors):
        frac = t["batch_count"][:, i] / t["batch_count"].sum(axis=1)
        np.testing.assert_allclose(frac, got[f"batch/fraction/{a}"][1], rtol=1e-6)
        present = t["batch_count"][:, i] > 0
        assert np.array(steps)[present].tolist() == got[f"td_abs_mean/{a}"][0]
        np.testing.assert_array_equal(t["td_abs_mean"][present, i], got[f"td_abs_mean/{a}"][1].astype(np.float32))
        np.testing.assert_array_equal(t["q_mean"][present, i], got[f"q_mean/{a}"][1].astype(np.float32))
        measured = ~np.isnan(t["grad_norm"][:, i])
        assert np.array(steps)[measured].tolist() == got.get(f"grad_norm/{a}", ([], None))[0]
    ends = np.flatnonzero(tr["done"])
    starts = np.concatenate(([0], ends[:-1] + 1))
    returns = [float(tr["reward"][a:b + 1].astype(np.float64).sum()) for a, b in zip(starts, ends)]
    assert (ends + 1).tolist() == got["episode/return"][0]
    np.testing.assert_allclose(returns, got["episode/return"][1], rtol=1e-6)
    # the buffer's composition when each step was taken: rows recorded up to the step's time
    k = int(np.searchsorted(tr["time"], t["time"][-1], side="right"))
    last = np.bincount(tr["actor"][:k], minlength=len(actors))
    assert k == got["buffer/rows"][1][-1]
    np.testing.assert_allclose(last / k, [got[f"buffer/fraction/{a}"][1][-1] for a in actors], rtol=1e-6)


def test_export_of_a_store_without_telemetry_and_bad_input(tmp_path, capsys):
    """A store with no train_steps gives episodes only; a missing store is exit 2."""
    from replaystore.store import Schema

    p = tmp_path / "bare.h5"
    with ReplayStore.create(p, Schema.transition((2,), 0), actors=("expert", "dqn")) as s:
        s.extend({"state": np.zeros((4, 2), "f4"), "next_state": np.zeros((4, 2), "f4"),
                  "discrete_action": np.zeros(4, int), "continuous_action": np.zeros((4, 0), "f4"),
                  "reward": np.array([1, 2, 3, 4], "f4"), "done": np.array([0, 1, 0, 1], bool),
                  "actor": ["dqn"] * 4})
    assert 0 == main(["tensorboard", str(p), "--out", str(tmp_path / "tb")])
    got = _scalars(tmp_path / "tb")
    assert ([2, 4], [3.0, 7.0]) == (got["episode/return"][0], got["episode/return"][1].tolist())
    assert "train/loss" not in got
    assert 2 == main(["tensorboard", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "tb2")])
    assert "error: " in capsys.readouterr().err


def test_train_writes_the_same_scalars_live(tmp_path):
    """replaystore train writes <store>.tb/ as it trains: its step scalars equal the store's tables."""
    out = tmp_path / "run.h5"
    assert 0 == main(["train", "--steps", "400", "--out", str(out), "--quiet", "--eval-episodes", "0",
                      "--set", "learning_starts=200", "--set", "batch_size=8", "--set", "hidden=[8]"])
    live = _scalars(tmp_path / "run.tb")
    with ReplayStore.open(out) as s:
        t = s.read_table(TRAIN_STEPS)
        n_eps = int(s.read(["done"])["done"].sum())
    assert t["step"].tolist() == live["train/loss"][0]
    np.testing.assert_array_equal(t["loss"], live["train/loss"][1].astype(np.float32))
    for a in ("expert", "dqn"):
        assert len(t["step"]) == len(live[f"batch/fraction/{a}"][0])
        assert len(t["step"]) == len(live[f"buffer/fraction/{a}"][0])
    assert n_eps == len(live["episode/return"][0]) and n_eps > 0
    exported = tmp_path / "exported"
    assert 0 == main(["tensorboard", str(out), "--out", str(exported)])
    assert set(live) == set(_scalars(exported))


@pytest.mark.parametrize("argv", [["--no-tensorboard"], ["--tensorboard", "custom_tb"]])
def test_train_tensorboard_flags(tmp_path, monkeypatch, argv):
    """--no-tensorboard writes no event files; --tensorboard DIR puts them in DIR."""
    monkeypatch.chdir(tmp_path)
    assert 0 == main(["train", "--steps", "150", "--out", "run.h5", "--quiet", "--eval-episodes", "0",
                      "--set", "learning_starts=100", "--set", "batch_size=8", "--set", "hidden=[8]", *argv])
    assert not os.path.exists("run.tb")
    assert os.path.isdir("custom_tb") == ("custom_tb" in argv)

"""recompute_td: TD errors and Q of the replay window under a saved agent checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from analysis_helpers import rows_block

from replaystore.analysis import recompute_td
from replaystore.store import ReplayStore, Schema

GAMMA, N = 0.9, 3


@pytest.fixture
def checkpoint(tmp_path):
    from replaystore.agent import HybridDQN, save_checkpoint

    torch.manual_seed(0)
    net = HybridDQN((4,), n_discrete=3, continuous_dim=1, hidden=(8,))
    path = save_checkpoint(tmp_path / "ck.pt", net, None, None,
                           {"gamma": GAMMA, "n_step": N, "step": 7, "config": {}})
    return path, net


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "run.h5"
    with ReplayStore.create(path, Schema.transition((4,), continuous_dim=1), actors=("expert", "dqn"),
                            window=40) as s:
        s.extend(rows_block(30, "expert"))
        s.extend(rows_block(30, "dqn", seed=1))
    return str(path)


def test_matches_a_direct_computation(store, checkpoint):
    """q, target and td_error of every window row equal an n-step computation done by hand."""
    path, net = checkpoint
    df = recompute_td(store, path, batch_size=7, progress=False)
    with ReplayStore.open(store) as s:
        d = s.read()
    assert list(range(20, 60)) == df["row"].tolist()
    assert ["expert"] * 10 + ["dqn"] * 30 == df["actor"].astype(str).tolist()
    net.eval()
    for r in (20, 27, 28, 29, 59):
        ret, k = 0.0, 0
        while True:  # the return stops after a done row, at N rows, or at the last row
            ret += GAMMA ** k * float(d["reward"][r + k])
            if d["done"][r + k] or k + 1 == N or r + k + 1 == 60:
                break
            k += 1
        with torch.no_grad():
            q = net(torch.from_numpy(d["state"][r:r + 1]))[0][0, d["discrete_action"][r]].item()
            boot = net(torch.from_numpy(d["next_state"][r + k:r + k + 1]))[0].max().item()
        target = ret + (0.0 if d["done"][r + k] else GAMMA ** (k + 1) * boot)
        row = df[df["row"] == r].iloc[0]
        assert pytest.approx(q, abs=1e-5) == row["q"]
        assert pytest.approx(target, abs=1e-5) == row["target"]
        assert pytest.approx(target - q, abs=1e-5) == row["td_error"]
    assert (7, 3) == (df.attrs["checkpoint_step"], df.attrs["n_step"])


def test_checkpoint_of_another_shape_is_refused(tmp_path, checkpoint):
    """A checkpoint whose network takes other states than the store holds raises, naming both shapes."""
    path = tmp_path / "wide.h5"
    with ReplayStore.create(path, Schema.transition((6,), continuous_dim=1), actors=("dqn",), window=10) as s:
        s.extend({"actor": ["dqn"] * 3, "state": np.zeros((3, 6), "f4"), "next_state": np.zeros((3, 6), "f4"),
                  "discrete_action": np.zeros(3, "i4"), "continuous_action": np.zeros((3, 1), "f4"),
                  "reward": np.zeros(3, "f4"), "done": np.zeros(3, bool)})
    with pytest.raises(ValueError, match=r"states of shape \(4,\).*shape \(6,\)"):
        recompute_td(str(path), checkpoint[0], progress=False)


def test_bad_arguments(store, checkpoint, tmp_path):
    """A bad batch size and a missing checkpoint raise clear errors."""
    with pytest.raises(ValueError, match="batch_size=0"):
        recompute_td(store, checkpoint[0], batch_size=0)
    with pytest.raises(ValueError, match="no checkpoint.*does not exist"):  # agent.errors.CheckpointError
        recompute_td(store, tmp_path / "none.pt")


def test_checkpoint_by_recorded_step(tmp_path, checkpoint):
    """An int picks the checkpoint recorded in the store at that step; an unrecorded step is refused."""
    path = tmp_path / "rec.h5"
    with ReplayStore.create(path, Schema.transition((4,), continuous_dim=1), actors=("expert", "dqn"), window=20) as s:
        s.extend(rows_block(25, "dqn"))
        s.record_checkpoint(7, checkpoint[0])
    by_step = recompute_td(str(path), 7, progress=False)
    by_path = recompute_td(str(path), checkpoint[0], progress=False)
    assert by_path["td_error"].tolist() == by_step["td_error"].tolist()
    assert list(range(5, 25)) == by_step["row"].tolist()
    with pytest.raises(ValueError, match=r"no checkpoint at training step 8.*recorded steps: \[7\]"):
        recompute_td(str(path), 8, progress=False)

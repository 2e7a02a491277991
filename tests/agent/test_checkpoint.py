"""Checkpoints round-trip exactly through torch.save / torch.load(weights_only=True)."""

from __future__ import annotations

import torch
import pytest

from replaystore.agent import load_network, save_checkpoint
from replaystore.agent.errors import CheckpointError

from agent_helpers import HYBRID, fill, make_agent


def _state_equal(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_state_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_state_equal(x, y) for x, y in zip(a, b))
    return a == b


def test_save_load_round_trip_exact(tmp_path):
    """Weights, target and optimizer state (Adam moments, step counts) come back bit for bit."""
    a = make_agent(tmp_path, spec=HYBRID)
    fill(a, 200)
    for _ in range(5):
        a.train_step()
    path = a.save_checkpoint(tmp_path / "ck" / "c.pt")
    b = make_agent(tmp_path, spec=HYBRID, name="other.h5", seed=123)
    assert not _state_equal(a.net.state_dict(), b.net.state_dict())
    meta = b.load_checkpoint(path)
    assert _state_equal(a.net.state_dict(), b.net.state_dict())
    assert _state_equal(a.learner.target.state_dict(), b.learner.target.state_dict())
    assert _state_equal(a.learner.optimizer.state_dict(), b.learner.optimizer.state_dict())
    assert (5, 200, 5) == (meta["step"], meta["frames"], b.train_steps)
    assert [{"step": 5, "path": path}] == [{k: c[k] for k in ("step", "path")} for c in a.store.checkpoints]
    a.store.close()
    b.store.close()


def test_load_network_contract(tmp_path):
    """load_network gives an eval-mode HybridDQN with the saved outputs and meta gamma/n_step/step/config."""
    a = make_agent(tmp_path, spec=HYBRID, gamma=0.97, n_step=2)
    fill(a, 100)
    a.train_step()
    path = a.save_checkpoint(tmp_path / "c.pt")
    net, meta = load_network(path)
    assert not net.training
    x = torch.randn(5, 4)
    with torch.no_grad():
        q0, c0 = a.net(x)
        q1, c1 = net(x)
    assert torch.equal(q0, q1) and torch.equal(c0, c1)
    assert (0.97, 2, 1) == (meta["gamma"], meta["n_step"], meta["step"])
    assert 0.97 == meta["config"]["gamma"]
    a.store.close()


def test_meta_must_be_json(tmp_path):
    """Meta that is not JSON data (which would need pickle) is refused."""
    a = make_agent(tmp_path)
    with pytest.raises(CheckpointError, match="JSON-able"):
        save_checkpoint(tmp_path / "x.pt", a.net, None, None,
                        {"gamma": 0.9, "n_step": 1, "step": 0, "config": {}, "bad": object()})
    a.store.close()


def test_foreign_or_missing_file_fails(tmp_path):
    """A missing file, a non-checkpoint torch file and a pickled object all fail with CheckpointError."""
    with pytest.raises(CheckpointError, match="does not exist"):
        load_network(tmp_path / "nope.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a replaystore agent checkpoint"):
        load_network(tmp_path / "other.pt")
    torch.save({"format": "replaystore-agent-checkpoint", "obj": ValueError("x")}, tmp_path / "pickled.pt")
    with pytest.raises(CheckpointError, match="could not be read"):
        load_network(tmp_path / "pickled.pt")


def test_checkpoint_goes_through_the_store_file_layer(tmp_path):
    """A checkpoint is written by the store's one atomic replace: a fresh temporary file, fsync,
    rename, fsync of the folder, in that order, and nothing is left beside it."""
    from replaystore.store import FileLayer, use_file_layer

    class Logged(FileLayer):
        def __init__(self):
            self.ops = []

        def create_new(self, path):
            self.ops.append(("create", path))
            return super().create_new(path)

        def fsync(self, fd):
            self.ops.append(("fsync",))
            super().fsync(fd)

        def replace(self, src, dst):
            self.ops.append(("rename", dst))
            super().replace(src, dst)

        def fsync_dir(self, path):
            self.ops.append(("fsync_dir",))
            super().fsync_dir(path)

    a = make_agent(tmp_path, spec=HYBRID)
    log = Logged()
    with use_file_layer(log):
        path = save_checkpoint(tmp_path / "ck" / "c.pt", a.net, a.learner.target, a.learner.optimizer,
                               {"gamma": 0.9, "n_step": 3, "step": 7, "config": {}})
    kinds = [op[0] for op in log.ops]
    assert ["create", "fsync", "rename", "fsync_dir"] == kinds
    assert ("rename", path) == log.ops[2]
    assert ["c.pt"] == sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert 7 == load_network(path)[1]["step"]

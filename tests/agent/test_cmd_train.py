"""The ``replaystore train`` command."""

from __future__ import annotations

import json

from replaystore.cli import main
from replaystore.store import ReplayStore


def test_train_command_writes_a_store(tmp_path, capsys):
    """The documented flags produce a store with those settings and a JSON summary."""
    out = tmp_path / "demo.h5"
    rc = main(["train", "--env", "CartPole-v1", "--steps", "300", "--expert-ratio", "0.4", "--out", str(out),
               "--seed", "5", "--set", "learning_starts=200", "--set", "batch_size=8", "--set", "hidden=[8]",
               "--eval-episodes", "0", "--quiet", "--json"])
    assert 0 == rc
    summary = json.loads(capsys.readouterr().out)
    assert (300, 101) == (summary["frames"], summary["train_steps"])
    with ReplayStore.open(out) as r:
        assert (0.4, 5, 8) == (r.metadata["expert_ratio"], r.metadata["seed"], r.metadata["config"]["batch_size"])


def test_train_command_resume_keeps_recorded_config(tmp_path, capsys):
    """--resume takes the recorded config (env included), changes only what is passed, and appends."""
    out = tmp_path / "demo.h5"
    common = ["--set", "learning_starts=200", "--set", "batch_size=8", "--eval-episodes", "0", "--quiet"]
    assert 0 == main(["train", "--env", "HybridCartPole-v1", "--steps", "250", "--out", str(out), *common])
    assert 0 == main(["train", "--steps", "300", "--out", str(out), "--resume", "--quiet", "--eval-episodes", "0"])
    with ReplayStore.open(out) as r:
        assert 300 == len(r)
        assert (300, 1) == r.read(["continuous_action"])["continuous_action"].shape
        assert 8 == r.get_extra("resumes")[0]["config"]["batch_size"]
        assert [51, 101] == [c["step"] for c in r.checkpoints]


def test_train_command_errors_are_reported(tmp_path, capsys):
    """A bad flag value is a one-line error and exit status 2, not a traceback."""
    rc = main(["train", "--out", str(tmp_path / "x.h5"), "--expert-ratio", "2", "--quiet"])
    assert 2 == rc
    assert "expert_ratio=2.0: expected a number in [0, 1]" in capsys.readouterr().err

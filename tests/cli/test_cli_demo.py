"""`replaystore demo` (the README's main job, scripts/demo): trains, writes the store, audits it, and can run again."""

from __future__ import annotations

import json
import os

from replaystore.cli import main
from replaystore.store import ReplayStore


def test_demo_trains_audits_and_runs_again_in_the_same_folder(tmp_path, capsys):
    """Two short demos in one folder: each exits 0, the second replaces the first's store (segments included)."""
    out = str(tmp_path / "demo")
    argv = ["demo", "--out", out, "--steps", "600", "--eval-episodes", "1", "--quiet"]
    for _ in range(2):
        assert 0 == main(argv), capsys.readouterr().err
        with ReplayStore.open(os.path.join(out, "run.h5")) as s:
            assert len(s) == 600
            assert set(s.actor_composition(window=False)["counts"]) == {"expert", "dqn"}
        with open(os.path.join(out, "audit", "report.json"), encoding="utf-8") as f:
            report = json.load(f)
        assert report["store"]["rows"] == 600
        assert not [a for a in report["anomalies"] if a["severity"] == "error"]
    printed = capsys.readouterr().out
    assert "== audit of" in printed and "inspect it with" in printed

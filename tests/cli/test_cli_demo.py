"""`replaystore demo` (the README's main job, scripts/demo): trains, writes the store, audits it; the same
seed gives the same store; a second run into the same folder needs --overwrite; its logs are summarised."""

from __future__ import annotations

import json
import logging
import os

import numpy as np

from replaystore._cmd_demo import SHOWN_LINES, _summary_filter
from replaystore.cli import main
from replaystore.store import ReplayStore

# Past the agent's learning_starts (1000 frames), so the two runs also train (200 steps) and
# write telemetry: the part where wall-clock commits used to change which rows a batch drew.
STEPS = 1200
# What legitimately differs between two runs of one seed: when things happened and where files are.
#   transitions.time, train_steps.time: the wall-clock time of each row / training step;
#   the store's uuid; each checkpoint entry's absolute path and time.
WALL_CLOCK_COLUMNS = {("transitions", "time"), ("train_steps", "time")}


def _demo(out: str, *extra: str) -> int:
    return main(["demo", "--out", out, "--steps", str(STEPS), "--eval-episodes", "0", "--quiet", *extra])


def _tables(path: str) -> dict[str, dict[str, np.ndarray]]:
    with ReplayStore.open(path) as s:
        return {t: (s.read() if t == "transitions" else s.read_table(t)) for t in s.tables}


def test_same_seed_same_store_and_a_second_run_needs_overwrite(tmp_path, capsys):
    """Two demos of seed 0 into two folders give the same store bit for bit (every column of every
    table, the metadata, the checkpoints) but for wall-clock fields; a demo into a folder that holds
    one is refused (exit 2) with the folder untouched, and --overwrite replaces it."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert 0 == _demo(a), capsys.readouterr().err
    assert 0 == _demo(b), capsys.readouterr().err
    ta, tb = _tables(os.path.join(a, "run.h5")), _tables(os.path.join(b, "run.h5"))
    assert {"transitions", "train_steps", "train_samples"} <= set(ta) and set(ta) == set(tb)
    assert STEPS == len(ta["transitions"]["actor"])
    for table in ta:
        assert set(ta[table]) == set(tb[table]), table
        for col in ta[table]:
            same = np.array_equal(ta[table][col], tb[table][col], equal_nan=ta[table][col].dtype.kind == "f")
            assert same != ((table, col) in WALL_CLOCK_COLUMNS), (table, col)  # the clock columns do differ
    with ReplayStore.open(os.path.join(a, "run.h5")) as sa, ReplayStore.open(os.path.join(b, "run.h5")) as sb:
        assert sa.metadata == sb.metadata and sa.metadata["seed"] == 0
        assert sa.uuid != sb.uuid
        keep = ("step", "frames", "relpath")
        assert [{k: c[k] for k in keep} for c in sa.checkpoints] == [{k: c[k] for k in keep} for c in sb.checkpoints]
    with open(os.path.join(a, "audit", "report.json"), encoding="utf-8") as f:
        assert not [x for x in json.load(f)["anomalies"] if x["severity"] == "error"]

    before = {n: os.stat(os.path.join(a, n)).st_mtime_ns for n in os.listdir(a)}
    capsys.readouterr()
    assert 2 == _demo(a)
    err = capsys.readouterr().err
    assert "holds an earlier demo run; pass --overwrite to replace it, or --out NEW_FOLDER" in err
    assert before == {n: os.stat(os.path.join(a, n)).st_mtime_ns for n in os.listdir(a)}
    assert 0 == main(["demo", "--out", a, "--steps", "300", "--eval-episodes", "0", "--quiet", "--overwrite"])
    with ReplayStore.open(os.path.join(a, "run.h5")) as s:
        assert 300 == len(s)
    printed = capsys.readouterr().out
    assert "== audit of" in printed and "inspect it with" in printed


def test_demo_refuses_a_folder_it_did_not_make(tmp_path, capsys):
    """Even with --overwrite, a folder holding other files is left alone."""
    (tmp_path / "notes.txt").write_text("mine")
    assert 2 == main(["demo", "--out", str(tmp_path), "--steps", "100", "--quiet", "--overwrite"])
    assert "was not made by `replaystore demo`" in capsys.readouterr().err
    assert ["notes.txt"] == os.listdir(tmp_path)


def test_batch_and_buffer_lines_are_summarised_with_their_format_kept():
    """Of the default demo's 290 [BATCH] and 29 [BUFFER] lines, ten of each pass, unchanged, from
    the first on, spread over the run; the closing line says how many were shown."""
    summary = _summary_filter(None)  # the demo's own setting: 30,000 frames
    log = logging.getLogger("test.demo.summary")
    passed = []
    for step in range(100, 29_001, 100):
        for msg in ([f"[BATCH] Step {step}: 98 DQN (76.6%) / 30 expert (23.4%)"]
                    + ([f"[BUFFER] Step {step}: {step} total, ..."] if step % 1000 == 0 else [])):
            record = log.makeRecord(log.name, logging.INFO, __file__, 0, msg, None, None)
            if summary.filter(record):
                passed.append(msg)
    batch = [m for m in passed if m.startswith("[BATCH] Step ")]
    buffer = [m for m in passed if m.startswith("[BUFFER] Step ")]
    assert SHOWN_LINES == len(batch) == len(buffer)
    assert batch[0].startswith("[BATCH] Step 100: ") and batch[-1].startswith("[BATCH] Step 26200: ")
    assert "10 of 290 [BATCH], 10 of 29 [BUFFER]" in summary.line() and "--verbose" in summary.line()
    other = log.makeRecord(log.name, logging.INFO, __file__, 0, "evaluating", None, None)
    assert summary.filter(other)

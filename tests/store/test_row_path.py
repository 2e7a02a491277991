"""One row's way from ``append`` to a sampled batch passes through few store modules (issue 15:
at most 6; 13 before store v3), so a newcomer can follow a row by reading six files.

The path is measured, not declared: the store modules whose code runs while ``append`` takes the
row, the store modules on the call stack when the row's bytes are written (the file layer's
``pwrite`` of a buffer holding them), and those on the stack when a batch that must hold the row is
copied out of the mapped segments (numpy's ``take``/``copyto``, called from store code). Commit
bookkeeping that never touches the row's bytes (the record, checksums) is not on the row's path.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from replaystore.store import Column, ReplayStore, Sampler, Schema
from replaystore.store.files._fileio import FileLayer

MARK = np.float32(1234.5678)  # the row's state values: found in a written buffer, nothing else has them
COPIES = {"take", "copyto", "concatenate", "compress"}
LIMIT = 6


def _store_module(filename: str) -> str | None:
    parts = filename.replace("\\", "/").split("/store/")
    return parts[-1] if len(parts) > 1 and "/tests/" not in filename else None


def _stack_modules(frame) -> set[str]:
    got = set()
    while frame is not None:
        m = _store_module(frame.f_code.co_filename)
        if m:
            got.add(m)
        frame = frame.f_back
    return got


def _row_path(tmp_path, schema: Schema, row: dict) -> tuple[set, dict]:
    seen: dict[str, set] = {"append": set(), "write": set(), "batch": set()}
    phase = [None]
    marker = np.full(4, MARK).tobytes()

    def profile(frame, event, arg):
        if phase[0] == "append" and event == "call":
            m = _store_module(frame.f_code.co_filename)
            if m:
                seen["append"].add(m)
        elif phase[0] == "write" and event == "call" and frame.f_code is FileLayer.pwrite.__code__:
            if marker in memoryview(frame.f_locals["data"]).cast("B").tobytes():
                seen["write"] |= _stack_modules(frame)
        elif phase[0] == "batch" and event == "c_call" and getattr(arg, "__name__", "") in COPIES:
            mods = _stack_modules(frame)
            if mods:
                seen["batch"] |= mods

    path = tmp_path / "run.h5"
    w = ReplayStore.create(path, schema, actors=("expert", "dqn"), commit_every=10**6, commit_seconds=1e9)
    r = None
    sys.setprofile(profile)
    try:
        phase[0] = "append"
        w.append(actor="dqn", **row)
        phase[0] = "write"
        w.commit()
        phase[0] = None
        r = ReplayStore.open(path)
        sampler = Sampler(r, batch_size=4, seed=0)  # one row in the store: every draw is that row
        phase[0] = "batch"
        batch = sampler.sample()
    finally:
        sys.setprofile(None)
        w.close()
        if r is not None:
            r.close()
    np.testing.assert_array_equal(batch["state"], np.full((4, 4), MARK))
    for what, mods in seen.items():  # each part of the path was observed: the probe cannot pass by missing it
        assert mods, f"no store module seen for {what}: the probe no longer sees that step"
    return set().union(*seen.values()), seen


def test_a_transition_row_passes_at_most_six_store_modules(tmp_path):
    row = dict(state=np.full(4, MARK), next_state=np.zeros(4, "f4"), discrete_action=1,
               continuous_action=np.zeros(0, "f4"), reward=1.0, done=False)
    path, seen = _row_path(tmp_path, Schema.transition((4,)), row)
    assert len(path) <= LIMIT, f"{len(path)} store modules on one row's path: {seen}"


def test_a_row_of_any_schema_passes_at_most_six_store_modules(tmp_path):
    """The general path (columns of the user's own naming, numpy scalars) is no longer."""
    schema = Schema((Column("state", np.dtype("f4"), (4,)), Column("score", np.dtype("f8")),
                     Column("actor", np.dtype("u1")), Column("flag", np.dtype("bool"))))
    row = dict(state=np.full(4, MARK), score=np.float64(2.0), flag=np.bool_(True))
    path, seen = _row_path(tmp_path, schema, row)
    assert len(path) <= LIMIT, f"{len(path)} store modules on one row's path: {seen}"

"""Loaders: transitions, train_steps and train_samples as DataFrames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from replaystore.analysis import load_train_samples, load_train_steps, load_transitions
from replaystore.store import ReplayStore, Schema, errors

from analysis_helpers import recorded, rows_block


def test_transitions_columns_and_actor_categorical():
    """Default columns, row ids, and actor as a Categorical whose categories are the vocabulary."""
    path = recorded("healthy")
    df = load_transitions(path)
    with ReplayStore.open(path) as s:
        raw = s.read(["actor", "reward", "episode"])
        names = list(s.actors.names)
    assert ["row", "actor", "actor_code", "episode", "step", "reward", "done", "time"] == list(df.columns)
    assert isinstance(df["actor"].dtype, pd.CategoricalDtype)
    assert names == list(df["actor"].cat.categories)
    assert np.array_equal(np.arange(len(raw["actor"])), df["row"].to_numpy())
    assert np.array_equal(raw["actor"], df["actor"].cat.codes.to_numpy())
    assert np.array_equal(raw["reward"], df["reward"].to_numpy())
    assert {} == df.attrs["unknown_actor_codes"]


def test_array_columns_only_when_asked_and_flattened():
    """state is absent by default; asked for, it comes as state_0..state_3 equal to the stored rows."""
    path = recorded("healthy")
    assert not any(c.startswith("state") for c in load_transitions(path).columns)
    df = load_transitions(path, ["state", "reward"], start=10, stop=20)
    with ReplayStore.open(path) as s:
        st = s.read(["state"], 10, 20)["state"]
    assert ["row", "state_0", "state_1", "state_2", "state_3", "reward", "actor_code"] == list(df.columns)
    assert np.array_equal(st, df[[f"state_{i}" for i in range(4)]].to_numpy())
    assert list(range(10, 20)) == df["row"].tolist()


def test_unknown_column_is_refused():
    """A column the store does not have raises with the list of its columns."""
    with pytest.raises(KeyError, match="unknown column.*'nope'.*the store has"):
        load_transitions(recorded("healthy"), ["nope"])


def test_codes_outside_vocabulary_do_not_crash():
    """Code 7 in a 2-actor store loads as a missing actor, keeps its raw code and is counted."""
    df = load_transitions(recorded("corrupt"))
    bad = df[df["actor_code"] == 7]
    assert [500, 501] == bad["row"].tolist()
    assert bad["actor"].isna().all()
    assert {7: 2} == df.attrs["unknown_actor_codes"]
    assert 2 == int(df["actor"].isna().sum())


def test_train_steps_expanded_per_actor():
    """Per-actor arrays become <column>_<actor> columns in vocabulary order."""
    path = recorded("healthy")
    df = load_train_steps(path)
    with ReplayStore.open(path) as s:
        raw = s.read_table("train_steps")
    for col in ("batch_count", "td_abs_mean", "reward_mean", "q_mean", "grad_norm"):
        assert np.array_equal(raw[col][:, 0], df[f"{col}_expert"].to_numpy(), equal_nan=True)
        assert np.array_equal(raw[col][:, 1], df[f"{col}_dqn"].to_numpy(), equal_nan=True)
    assert df.attrs["table_present"] is True
    assert len(raw["step"]) == len(df)


def test_train_samples_actor_categorical():
    """train_samples rows carry their actor as a Categorical over the vocabulary."""
    df = load_train_samples(recorded("healthy"))
    assert ["step", "row", "actor", "actor_code", "td_error", "q", "target"] == list(df.columns)
    assert ["expert", "dqn"] == list(df["actor"].cat.categories)
    assert 0 == int(df["actor"].isna().sum())
    assert len(df) > 0


def test_no_telemetry_gives_empty_frames(make_run):
    """A store without telemetry tables gives empty frames that say the table is absent."""
    path = make_run(telemetry=False)
    steps, samples = load_train_steps(path), load_train_samples(path)
    assert (0, False) == (len(steps), steps.attrs["table_present"])
    assert "batch_count_dqn" in steps.columns
    assert (0, False) == (len(samples), samples.attrs["table_present"])


def test_store_being_written_gives_committed_prefix(tmp_path):
    """A reader loads exactly the committed rows while the writer keeps appending."""
    path = tmp_path / "live.h5"
    w = ReplayStore.create(path, Schema.transition((4,), continuous_dim=1), actors=("expert", "dqn"),
                           window=1000, commit_every=10_000, commit_seconds=3600)
    try:
        w.extend(rows_block(50, "expert"))
        w.commit()
        w.extend(rows_block(30, "dqn", seed=1))  # staged, not committed
        df = load_transitions(str(path))
        assert 50 == len(df)
        assert {"expert"} == set(df["actor"].astype(str))
        w.extend(rows_block(5, "dqn", seed=2))  # the writer is not blocked by the reader
        assert 85 == w.commit()
        assert 85 == len(load_transitions(str(path)))
    finally:
        w.close()


def test_open_store_is_used_and_left_open():
    """An open ReplayStore may be passed instead of a path; the loader leaves it open."""
    with ReplayStore.open(recorded("incident")) as s:
        df = load_transitions(s, ["actor"])
        assert not s.closed
        assert {"dqn"} == set(df["actor"].astype(str))


def test_bad_paths(tmp_path):
    """A missing path and a file that is not a store raise the store's clear errors."""
    with pytest.raises(errors.StoreNotFoundError, match="does not exist"):
        load_transitions(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(errors.NotAStoreError, match="not an HDF5 file"):
        load_transitions(junk)
    with pytest.raises(TypeError, match="expected a store path"):
        load_transitions(42)

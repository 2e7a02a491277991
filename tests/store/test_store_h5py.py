"""The file is plain HDF5: other tools (a stock ``h5py.File``) read what ``store.read`` returns."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from replaystore.store import FORMAT_VERSION, TRAIN_STEPS, Column, ReplayStore, Schema, train_steps_schema

import writer_proc
from store_helpers import append_writer_rows

METADATA = {"env_id": "CartPole-v1", "seed": 7, "expert_ratio": 0.25, "git": None, "tags": ["a", "b"]}


@pytest.fixture
def closed_store(store_path):
    """A closed store with 5,000 writer rows, an extra 2-D column and a telemetry table."""
    schema = writer_proc.SCHEMA.with_columns(Column("obs_img", np.dtype("uint8"), (2, 3)))
    rng = np.random.default_rng(0)
    with ReplayStore.create(store_path, schema, actors=writer_proc.ACTORS, window=777, metadata=METADATA,
                            chunk_bytes=8192) as s:
        for start in range(0, 5000, 1000):
            b = writer_proc.given(writer_proc.make_rows(start, start + 1000))
            b["obs_img"] = rng.integers(0, 256, size=(1000, 2, 3), dtype=np.uint8)
            s.extend(b)
        s.create_table(TRAIN_STEPS, train_steps_schema(len(writer_proc.ACTORS)))
        a = len(writer_proc.ACTORS)
        s.extend_table(TRAIN_STEPS, {
            "step": np.arange(10), "time": np.linspace(0, 1, 10), "loss": np.linspace(1, 0, 10, dtype="f4"),
            "batch_count": np.ones((10, a), "i4"), "td_abs_mean": np.full((10, a), np.nan, "f4"),
            "reward_mean": np.zeros((10, a), "f4"), "q_mean": np.zeros((10, a), "f4"),
            "grad_norm": np.full((10, a), np.nan, "f4")})
    return store_path, schema


def test_stock_h5py_reads_the_same_values(closed_store):
    """Every stored column read by h5py equals store.read(), bit for bit, with the committed length."""
    path, schema = closed_store
    with ReplayStore.open(path, "r") as r:
        want = r.read()
        table = r.read_table(TRAIN_STEPS)
    assert len(want["state"]) == 5000
    with h5py.File(path, "r") as f:
        for c in schema:
            if c.row_bytes == 0:
                continue
            d = f["transitions"][c.name]
            assert d.dtype == c.dtype and d.shape == (5000, *c.shape), c.name
            assert d[:].tobytes() == want[c.name].tobytes(), c.name
        for name, v in table.items():
            assert f["tables"][TRAIN_STEPS][name][:].tobytes() == v.tobytes(), name


def test_root_attributes_describe_the_store(closed_store):
    """Root attributes carry format, format_version, schema JSON, actors JSON, window and metadata JSON."""
    path, schema = closed_store
    with h5py.File(path, "r") as f:
        a = f.attrs
        assert a["format"] == "replaystore"
        assert int(a["format_version"]) == FORMAT_VERSION == 2
        assert Schema.from_json(a["schema"]) == schema
        assert json.loads(a["actors"]) == {"0": "expert", "1": "dqn", "2": "random"}
        assert int(a["window"]) == 777
        assert json.loads(a["metadata"]) == METADATA
        assert isinstance(a["created"], str) and a["created"][:2] == "20"


def test_h5py_holding_the_file_does_not_block_readers(closed_store):
    """A store reader opens and reads while a stock h5py handle holds the file (and the other way round)."""
    path, _ = closed_store
    with h5py.File(path, "r") as f:
        with ReplayStore.open(path, "r") as r:
            assert r.read(["row_id"], start=-3)["row_id"].tolist() == [4997, 4998, 4999]
            assert f["transitions/row_id"][-1] == 4999


def test_width_zero_column_is_declared(store_path):
    """A continuous_action of width 0 is declared in the schema attribute and reads as (n, 0) arrays."""
    schema = Schema.transition((2,), continuous_dim=0)
    with ReplayStore.create(store_path, schema, actors=("x",)) as s:
        s.extend({"actor": np.zeros(4, np.uint8), "state": np.zeros((4, 2), "f4"), "next_state": np.zeros((4, 2), "f4"),
                  "discrete_action": np.arange(4), "continuous_action": np.zeros((4, 0), "f4"),
                  "reward": np.zeros(4, "f4"), "done": np.zeros(4, bool)})
    with ReplayStore.open(store_path) as r:
        got = r.read()
    assert got["continuous_action"].shape == (4, 0) and got["continuous_action"].dtype == np.float32
    with h5py.File(store_path, "r") as f:
        declared = {c["name"]: c for c in json.loads(f.attrs["schema"])}
        assert declared["continuous_action"]["shape"] == [0]
        assert f["transitions/discrete_action"][:].tolist() == [0, 1, 2, 3]


def test_reopened_append_is_visible_to_h5py(store_path):
    """Rows appended after reopening with 'a' are in the HDF5 datasets, in order."""
    with ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS) as s:
        append_writer_rows(s, 0, 100)
    with ReplayStore.open(store_path, "a") as s:
        append_writer_rows(s, 100, 250)
    with h5py.File(store_path, "r") as f:
        assert f["transitions/row_id"][:].tolist() == list(range(250))
        assert f["transitions/episode"][:].tolist() == (np.arange(250) // writer_proc.EPISODE_LEN).tolist()


def test_each_segment_is_plain_hdf5(store_path):
    """A segment file opened alone by stock h5py holds its committed rows at their place, and says
    which store, table and rows it belongs to."""
    with ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, segment_rows=1024) as s:
        append_writer_rows(s, 0, 2500)
    with h5py.File(f"{store_path}.d/transitions-000001.h5", "r") as f:
        assert (f.attrs["table"], int(f.attrs["first_row"]), int(f.attrs["rows"])) == ("transitions", 1024, 1024)
        assert f["row_id"][:].tolist() == list(range(1024, 2048))
        assert f["state"].chunks is None  # contiguous: its space was allocated when the segment was made
    with h5py.File(f"{store_path}.d/transitions-000002.h5", "r") as f:
        assert f["row_id"][:2500 - 2048].tolist() == list(range(2048, 2500))


@pytest.mark.parametrize("every", [0.0, 3600.0])
def test_manifest_follows_segment_rolls_at_most_every_manifest_seconds(store_path, monkeypatch, every):
    """While a writer is open, new segments reach the manifest (stock h5py's view) at most every
    MANIFEST_SECONDS; with 0 it follows every roll. Closing always writes it whole."""
    from replaystore.store.write import _writer

    monkeypatch.setattr(_writer, "MANIFEST_SECONDS", every)
    monkeypatch.setattr(_writer, "MANIFEST_SHARE", 0.0 if every == 0 else 0.02)
    written = []
    real = _writer.write_manifest
    monkeypatch.setattr(_writer, "write_manifest", lambda *a: (written.append(a[2]), real(*a))[1])
    with ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, segment_rows=1024) as s:
        append_writer_rows(s, 0, 1024)
        s.commit()  # the first commit of rows marks the manifest "writer open" (test_faults), whatever the time
        opened = len(written)
        for start in range(1024, 5120, 1024):
            append_writer_rows(s, start, start + 1024)
            s.commit()
        rolls = len(written) - opened
        with h5py.File(store_path, "r") as f:
            seen = len(f["transitions/row_id"])
    assert (rolls, seen) == ((4, 5120) if every == 0 else (0, 0))  # segments 1 to 4 were new; 0 rows when marked
    with h5py.File(store_path, "r") as f:
        assert f["transitions/row_id"][:].tolist() == list(range(5120))

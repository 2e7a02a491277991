"""Parquet export: the same rows back through pyarrow, pandas, Dask and DuckDB, locally and on S3."""

from __future__ import annotations

import socket

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from replaystore.analysis import export_parquet, provenance
from replaystore.cli import main
from replaystore.store import Column, ReplayStore, Run, Schema

ACTORS = ("expert", "dqn", "random")
SCHEMA = Schema.transition((3,), continuous_dim=0, extra=[Column("frame", np.dtype("float32"), (2, 2))])


def rows(start: int, stop: int) -> dict:
    i = np.arange(start, stop)
    f = i.astype(np.float32)
    return {"state": np.stack([f, f + 0.5, -f], 1), "next_state": np.stack([f + 1, f, f], 1),
            "discrete_action": (i % 4).astype(np.int32), "continuous_action": np.zeros((len(i), 0), np.float32),
            "reward": f * 0.5, "done": i % 9 == 8, "actor": [ACTORS[k % 3] for k in i],
            "frame": np.repeat(f, 4).reshape(-1, 2, 2), "episode": i // 9, "step": i % 9,
            "time": 1.7e9 + f}


def make_store(path, n: int) -> str:
    with ReplayStore.create(path, SCHEMA, actors=ACTORS, window=10_000, commit_seconds=3600.0) as s:
        s.extend(rows(0, n))
    return str(path)


def expected_frame(start: int, stop: int) -> pd.DataFrame:
    r = rows(start, stop)
    return pd.DataFrame({"state": list(r["state"]), "actor": r["actor"], "reward": r["reward"],
                         "episode": r["episode"], "frame": list(r["frame"].reshape(-1, 4))})


def check_frame(got: pd.DataFrame, start: int, stop: int) -> None:
    """``got`` (any order) holds exactly rows [start, stop)."""
    got = got.sort_values(["episode", "reward"]).reset_index(drop=True)
    want = expected_frame(start, stop)
    assert len(got) == len(want)
    assert got["actor"].astype(str).tolist() == want["actor"].tolist()
    assert np.array_equal(got["reward"].to_numpy(np.float32), want["reward"].to_numpy())
    assert np.array_equal(np.stack(got["state"].to_numpy()), np.stack(want["state"].to_numpy()))


def test_store_round_trip_through_four_readers(tmp_path):
    """pyarrow, pandas, Dask and DuckDB each read back exactly the store's committed rows."""
    src = make_store(tmp_path / "s.h5", 500)
    files = export_parquet(src, tmp_path / "out")
    assert [(f.start, f.stop, f.shard) for f in files] == [(0, 500, None)]
    t = pq.read_table(tmp_path / "out")
    assert t.schema.field("actor").type == pa.dictionary(pa.uint8(), pa.string())
    assert t.schema.field("state").type == pa.list_(pa.float32(), 3)
    assert "continuous_action" not in t.schema.names  # width 0: no data to write
    with ReplayStore.open(src) as s:
        want = s.read()
    assert np.array_equal(np.stack(t.column("frame").combine_chunks().to_numpy_ndarray()), want["frame"])
    assert t.column("actor").to_pylist() == [ACTORS[k] for k in want["actor"]]
    for c in ("discrete_action", "done", "episode", "step", "time", "reward"):
        assert np.array_equal(t.column(c).to_numpy(), want[c]), c
    check_frame(pd.read_parquet(tmp_path / "out"), 0, 500)
    import dask.dataframe as dd
    check_frame(dd.read_parquet(str(tmp_path / "out")).compute(), 0, 500)
    import duckdb
    con = duckdb.connect()
    got = con.sql(f"select state, actor, reward, episode, frame from read_parquet('{tmp_path}/out/*.parquet')").df()
    check_frame(got, 0, 500)
    assert con.sql(f"select count(*) from read_parquet('{tmp_path}/out/*.parquet') where actor = 'dqn'").fetchall()[0][0] \
        == int((want["actor"] == 1).sum())


def test_files_and_row_groups_split_by_size_with_provenance(tmp_path):
    """Small limits split the rows into several files of several row groups, each naming its rows."""
    src = make_store(tmp_path / "s.h5", 1000)
    row_bytes = sum(c.row_bytes for c in SCHEMA)  # 117: the width-0 column adds nothing
    files = export_parquet(src, tmp_path / "out", row_group_bytes=100 * row_bytes, file_bytes=300 * row_bytes)
    assert [(f.start, f.stop) for f in files] == [(0, 300), (300, 600), (600, 900), (900, 1000)]
    meta = pq.ParquetFile(files[1].path).metadata
    assert (meta.num_row_groups, meta.num_rows) == (3, 300)
    with ReplayStore.open(src) as s:
        p = provenance(files[1].path)
        assert p["rows"] == [300, 600] and p["store_path"] == s.path and p["store_uuid"] == s.uuid
        assert p["actors"] == list(ACTORS) and Schema.from_json(__import__("json").dumps(p["schema"])) == SCHEMA
        assert p["omitted_columns"] == ["continuous_action"]


def test_run_gives_one_file_set_per_shard(tmp_path):
    """A run exports each shard under shard=<name>/, read back with a shard column."""
    run = Run.create(tmp_path / "run", SCHEMA, actors=ACTORS, window=10_000)
    for name, (a, z) in {"w0": (0, 120), "w1": (120, 300)}.items():
        with run.create_shard(name) as s:
            s.extend(rows(a, z))
    files = export_parquet(run.path, tmp_path / "out")
    assert [(f.shard, f.start, f.stop) for f in files] == [("w0", 0, 120), ("w1", 0, 180)]
    df = pd.read_parquet(tmp_path / "out")
    check_frame(df, 0, 300)
    assert df.groupby(df["shard"].astype(str)).size().to_dict() == {"w0": 120, "w1": 180}
    assert provenance(files[1].path)["run_uuid"] == run.uuid


def test_refuses_a_folder_that_holds_files(tmp_path):
    """Exporting into a non-empty folder is refused: nothing there is overwritten."""
    src = make_store(tmp_path / "s.h5", 10)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        export_parquet(src, tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_cli_export(tmp_path, capsys):
    """`replaystore export PATH --format parquet --out DEST` writes the files and says how many rows."""
    src = make_store(tmp_path / "s.h5", 50)
    assert main(["export", src, "--format", "parquet", "--out", str(tmp_path / "out")]) == 0
    assert "exported 50 rows to 1 Parquet file(s)" in capsys.readouterr().out
    assert pq.read_table(tmp_path / "out").num_rows == 50
    assert main(["export", src, "--format", "parquet", "--out", str(tmp_path / "out")]) == 2
    assert "already exists" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3(monkeypatch):
    """A moto S3 server on 127.0.0.1 (random free port), with one bucket; stopped after the test."""
    from moto.server import ThreadedMotoServer

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    opts = {"endpoint_url": f"http://127.0.0.1:{port}", "key": "testing", "secret": "testing"}
    import s3fs
    fs = s3fs.S3FileSystem(**opts)
    fs.mkdir("exports")
    try:
        yield opts
    finally:
        server.stop()


def test_export_to_s3(tmp_path, s3):
    """An s3:// destination (a local moto server) gets the files; pandas reads them back from there."""
    run = Run.create(tmp_path / "run", SCHEMA, actors=ACTORS, window=10_000)
    with run.create_shard("w0") as s:
        s.extend(rows(0, 64))
    files = export_parquet(run, "s3://exports/run1", storage_options=s3)
    assert [f.path for f in files] == ["s3://exports/run1/shard=w0/part-00000.parquet"]
    check_frame(pd.read_parquet("s3://exports/run1", storage_options=s3), 0, 64)
    assert provenance(files[0].path, storage_options=s3)["shard"] == "w0"
